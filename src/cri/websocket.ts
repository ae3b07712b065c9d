/**
 * The little of WebSocket (RFC 6455) that the CRI streaming server needs: the opening handshake's accept key, and
 * frames written unmasked (server to client) and read masked or not, with fragmented messages put back together.
 */
import type { Duplex } from 'node:stream';
import { createHash } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** Opcodes of RFC 6455. */
export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** One frame, unmasked (what a server sends); `mask` masks it (what a client sends). */
export function encodeFrame(opcode: number, payload: Buffer, mask = false): Buffer {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.alloc(head + (mask ? 4 : 0) + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = len;
  else if (len < 65536) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  if (mask) {
    out[1]! |= 0x80;
    const key = Buffer.from([Math.random() * 256, Math.random() * 256, Math.random() * 256, Math.random() * 256].map(Math.floor));
    key.copy(out, head);
    for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i]! ^ key[i % 4]!;
  } else payload.copy(out, head);
  return out;
}

/** A whole message (or control frame) as read. */
export interface Message {
  opcode: number;
  data: Buffer;
}

/** Reads frames from chunks of a socket; returns whole messages (control frames as they come). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentOpcode = 0;

  /** Adds a chunk; the messages it completed, in order. Throws on a frame larger than `maxBytes`. */
  push(chunk: Buffer, maxBytes = 16 * 1024 * 1024): Message[] {
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Message[] = [];
    for (;;) {
      if (this.buf.length < 2) break;
      const fin = (this.buf[0]! & 0x80) !== 0;
      const opcode = this.buf[0]! & 0x0f;
      const masked = (this.buf[1]! & 0x80) !== 0;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) break;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) break;
        const big = this.buf.readBigUInt64BE(2);
        if (big > BigInt(maxBytes)) throw new Error(`a WebSocket frame of ${big} bytes is too large`);
        len = Number(big);
        off = 10;
      }
      if (len > maxBytes) throw new Error(`a WebSocket frame of ${len} bytes is too large`);
      const keyOff = off;
      if (masked) off += 4;
      if (this.buf.length < off + len) break;
      const data = Buffer.from(this.buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) data[i] = data[i]! ^ this.buf[keyOff + (i % 4)]!;
      this.buf = this.buf.subarray(off + len);
      if (opcode >= 8) out.push({ opcode, data });
      else {
        if (opcode !== Opcode.continuation) this.fragmentOpcode = opcode;
        this.fragments.push(data);
        if (fin) {
          out.push({ opcode: this.fragmentOpcode, data: Buffer.concat(this.fragments) });
          this.fragments = [];
        }
      }
    }
    return out;
  }
}

/**
 * Reads the channel protocol's messages from `socket`: answers close and ping itself, ends a socket that sends a
 * malformed or oversized frame, and hands each binary message with a payload to `onMessage` as its channel (the
 * first byte) and its data (the rest).
 */
export function onChannelMessages(socket: Duplex, onMessage: (channel: number, data: Buffer) => void): void {
  const reader = new FrameReader();
  socket.on('data', (chunk: Buffer) => {
    let messages;
    try {
      messages = reader.push(chunk);
    } catch {
      socket.destroy();
      return;
    }
    for (const msg of messages) {
      if (msg.opcode === Opcode.close) {
        if (!socket.destroyed) socket.end(encodeFrame(Opcode.close, Buffer.alloc(0)));
      } else if (msg.opcode === Opcode.ping) {
        socket.write(encodeFrame(Opcode.pong, msg.data));
      } else if (msg.opcode === Opcode.binary && msg.data.length > 0) {
        onMessage(msg.data[0]!, Buffer.from(msg.data.subarray(1)));
      }
    }
  });
}
