/**
 * A CRI client for the tests, generated at run time from the same proto the server loads (src/cri/api/api.proto,
 * with the same loader options): crictl cannot be installed here, so this plays kubelet's part. Each RPC is a
 * promise; a refusal rejects with grpc-js's ServiceError (its `code` is the gRPC status).
 */
import * as grpc from '@grpc/grpc-js';
import { criServices } from '../src/cri/index.ts';

/** A unary RPC as a promise (messages as the proto loader shapes them). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the proto's messages have no static types here
export type Rpc = (request?: Record<string, unknown>) => Promise<any>;

/** Both services of one CRI socket, by RPC name; `close` ends the channels. */
export interface CriClient {
  runtime: Record<string, Rpc>;
  image: Record<string, Rpc>;
  /** The raw clients (for streaming RPCs). */
  raw: { runtime: grpc.Client; image: grpc.Client };
  close(): void;
}

function promisify(client: grpc.Client, service: grpc.ServiceDefinition, deadlineMs: number): Record<string, Rpc> {
  const out: Record<string, Rpc> = {};
  for (const name of Object.keys(service)) {
    const method = (client as unknown as Record<string, Function>)[name]!.bind(client);
    out[name] = (request = {}) =>
      new Promise((resolve, reject) =>
        method(request, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, response: unknown) =>
          err ? reject(err) : resolve(response),
        ),
      );
  }
  return out;
}

/** Connects to the CRI server on `socketPath` (a unary call waits `deadlineMs` at most). */
export function criClient(socketPath: string, deadlineMs = 120_000): CriClient {
  const { RuntimeService, ImageService } = criServices();
  const runtime = new RuntimeService(`unix://${socketPath}`, grpc.credentials.createInsecure());
  const image = new ImageService(`unix://${socketPath}`, grpc.credentials.createInsecure());
  return {
    runtime: promisify(runtime, RuntimeService.service, deadlineMs),
    image: promisify(image, ImageService.service, deadlineMs),
    raw: { runtime, image },
    close: () => {
      runtime.close();
      image.close();
    },
  };
}

/** Rejects unless `call` fails with gRPC status `code`; returns the error's details. */
export async function expectStatus(call: Promise<unknown>, code: grpc.status): Promise<string> {
  try {
    await call;
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (e.code !== code) throw new Error(`expected gRPC status ${grpc.status[code]}, got ${grpc.status[e.code] ?? e.code}: ${e.details}`);
    return e.details;
  }
  throw new Error(`expected gRPC status ${grpc.status[code]}, but the call succeeded`);
}

/** What a streamed exec produced: its output per channel, and the final status (channel 3). */
export interface StreamedExec {
  protocol: string;
  stdout: string;
  stderr: string;
  status: { status: string; reason?: string; details?: { causes?: Array<{ reason: string; message: string }> } } | null;
}

/**
 * Opens an Exec URL as kubectl does (a WebSocket with the channel protocol `protocols` offer), sends `stdin` on
 * channel 0 and then closes it (v5's [255, 0]), and collects the output until the server closes.
 */
export async function streamExec(
  url: string,
  stdin: string | null,
  protocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
): Promise<StreamedExec> {
  const { default: http } = await import('node:http');
  const { randomBytes } = await import('node:crypto');
  const { FrameReader, Opcode, encodeFrame } = await import('../src/cri/websocket.ts');
  const key = randomBytes(16).toString('base64');
  const req = http.request(url, {
    headers: {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Protocol': protocols.join(', '),
    },
  });
  const { res, socket } = await new Promise<{ res: import('node:http').IncomingMessage; socket: import('node:net').Socket }>(
    (resolve, reject) => {
      req.on('upgrade', (res, socket) => resolve({ res, socket }));
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => reject(new Error(`no upgrade: ${res.statusCode} ${body}`)));
      });
      req.on('error', reject);
      req.end();
    },
  );
  const protocol = String(res.headers['sec-websocket-protocol']);
  const out: StreamedExec = { protocol, stdout: '', stderr: '', status: null };
  const reader = new FrameReader();
  const done = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      for (const m of reader.push(chunk)) {
        if (m.opcode === Opcode.close) socket.end();
        if (m.opcode !== Opcode.binary || m.data.length === 0) continue;
        const text = m.data.subarray(1).toString();
        if (m.data[0] === 1) out.stdout += text;
        else if (m.data[0] === 2) out.stderr += text;
        else if (m.data[0] === 3) out.status = JSON.parse(text);
      }
    });
    socket.on('close', () => resolve());
  });
  if (stdin !== null) {
    socket.write(encodeFrame(Opcode.binary, Buffer.concat([Buffer.from([0]), Buffer.from(stdin)]), true));
    if (protocol === 'v5.channel.k8s.io') socket.write(encodeFrame(Opcode.binary, Buffer.from([255, 0]), true));
  }
  await done;
  return out;
}

/** An open channel-protocol stream, driven step by step (an attach with a tty, a conversation over stdin). */
export interface OpenStream {
  protocol: string;
  /** Output so far, per channel (1 stdout, 2 stderr). */
  stdout: string;
  stderr: string;
  /** The final status (channel 3) once it came. */
  status: StreamedExec['status'];
  /** Sends `data` on `channel` (0 stdin, 4 resize). */
  send(channel: number, data: string | Buffer): void;
  /** v5's close of stdin ([255, 0]). */
  closeStdin(): void;
  /** Resolves once `predicate` holds for the stream (checked on each message), or rejects after `ms`. */
  until(predicate: (s: OpenStream) => boolean, ms: number, what: string): Promise<void>;
  /** Closes the WebSocket from this side. */
  close(): void;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
}

/** Opens an Exec or Attach URL as kubectl does (WebSocket, channel protocol `protocols`) and keeps it open. */
export async function openStream(url: string, protocols = ['v5.channel.k8s.io', 'v4.channel.k8s.io']): Promise<OpenStream> {
  const { default: http } = await import('node:http');
  const { randomBytes } = await import('node:crypto');
  const { FrameReader, Opcode, encodeFrame } = await import('../src/cri/websocket.ts');
  const req = http.request(url, {
    headers: {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Protocol': protocols.join(', '),
    },
  });
  const { res, socket } = await new Promise<{ res: import('node:http').IncomingMessage; socket: import('node:net').Socket }>(
    (resolve, reject) => {
      req.on('upgrade', (res, socket) => resolve({ res, socket }));
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => reject(new Error(`no upgrade: ${res.statusCode} ${body}`)));
      });
      req.on('error', reject);
      req.end();
    },
  );
  const waiters = new Set<() => void>();
  const reader = new FrameReader();
  const s: OpenStream = {
    protocol: String(res.headers['sec-websocket-protocol']),
    stdout: '',
    stderr: '',
    status: null,
    send: (channel, data) => socket.write(encodeFrame(Opcode.binary, Buffer.concat([Buffer.from([channel]), Buffer.from(data)]), true)),
    closeStdin: () => socket.write(encodeFrame(Opcode.binary, Buffer.from([255, 0]), true)),
    until: (predicate, ms, what) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (!predicate(s)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}: stdout ${JSON.stringify(s.stdout)}, stderr ${JSON.stringify(s.stderr)}`));
        }, ms);
        waiters.add(check);
        check();
      }),
    close: () => socket.end(encodeFrame(Opcode.close, Buffer.from([0x03, 0xe8]), true)),
    closed: new Promise<void>((resolve) => socket.on('close', () => resolve())),
  };
  socket.on('data', (chunk: Buffer) => {
    for (const m of reader.push(chunk)) {
      if (m.opcode === Opcode.close) socket.end();
      if (m.opcode !== Opcode.binary || m.data.length === 0) continue;
      const text = m.data.subarray(1).toString();
      if (m.data[0] === 1) s.stdout += text;
      else if (m.data[0] === 2) s.stderr += text;
      else if (m.data[0] === 3) s.status = JSON.parse(text);
    }
    for (const w of [...waiters]) w();
  });
  socket.on('close', () => {
    for (const w of [...waiters]) w();
  });
  return s;
}
