/**
 * Host side of the boson-init wire protocol (docs/guest-protocol.md): frame encoding, an incremental frame
 * decoder, the SPEC and EXEC record encoders, and the decoder of log-port records. Pure functions over bytes; no
 * I/O.
 */
import { BosonError } from '../common/index.ts';

/** Protocol version this host speaks. */
export const PROTOCOL_VERSION = 2;
/** Largest payload either side may send in one frame. */
export const MAX_PAYLOAD = 1024 * 1024;
/** Size of the fixed frame header. */
export const HEADER_SIZE = 8;

/** Frame types, as numbered in docs/guest-protocol.md. */
export const FrameType = {
  HELLO: 0x01,
  STARTED: 0x02,
  STDOUT: 0x03,
  STDERR: 0x04,
  EXIT: 0x05,
  ERROR: 0x06,
  LOG: 0x07,
  SYNCED: 0x08,
  SPEC: 0x81,
  STDIN: 0x82,
  STDIN_EOF: 0x83,
  SIGNAL: 0x84,
  RESIZE: 0x85,
  EXEC: 0x86,
  CLOCK: 0x87,
  SYNC: 0x88,
} as const;

/** Reasons in an ERROR frame. */
export const GuestErrorReason = {
  SPEC_INVALID: 1,
  MOUNT_FAILED: 2,
  USER_UNKNOWN: 3,
  CWD_FAILED: 4,
  NOT_FOUND: 5,
  NOT_EXECUTABLE: 6,
  INTERNAL: 7,
  /** An EXEC named a session a live exec holds (one an earlier host started, before a daemon restart). */
  SESSION_IN_USE: 8,
} as const;

/** One decoded frame. */
export interface Frame {
  type: number;
  session: number;
  payload: Buffer;
}

/** Encodes one frame; throws GUEST_PROTOCOL if the payload is too large. */
export function encodeFrame(type: number, payload: Uint8Array = Buffer.alloc(0), session = 0): Buffer {
  if (payload.length > MAX_PAYLOAD) {
    throw new BosonError('GUEST_PROTOCOL', `frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  }
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame.writeUInt8(type, 0);
  frame.writeUInt8(0, 1);
  frame.writeUInt16BE(session, 2);
  frame.writeUInt32BE(payload.length, 4);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/** Splits `data` into frames of at most MAX_PAYLOAD bytes each (for STDIN). */
export function encodeChunked(type: number, data: Buffer, session = 0): Buffer[] {
  const frames: Buffer[] = [];
  for (let off = 0; off < data.length; off += MAX_PAYLOAD) {
    frames.push(encodeFrame(type, data.subarray(off, off + MAX_PAYLOAD), session));
  }
  return frames;
}

/**
 * Incremental decoder: feed it chunks as they arrive, get back every complete frame. Throws GUEST_PROTOCOL on a
 * header announcing a payload larger than MAX_PAYLOAD.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** Adds `chunk` and returns the frames it completed, in order. */
  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    let buf = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    let off = 0;
    while (buf.length - off >= HEADER_SIZE) {
      const length = buf.readUInt32BE(off + 4);
      if (length > MAX_PAYLOAD) {
        throw new BosonError('GUEST_PROTOCOL', `guest announced a ${length}-byte frame (limit ${MAX_PAYLOAD})`);
      }
      if (buf.length - off < HEADER_SIZE + length) break;
      frames.push({
        type: buf.readUInt8(off),
        session: buf.readUInt16BE(off + 2),
        payload: buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + length),
      });
      off += HEADER_SIZE + length;
    }
    buf = buf.subarray(off);
    this.pending = buf.length > 0 ? [buf] : [];
    this.pendingBytes = buf.length;
    return frames;
  }

  /** Bytes received that do not yet form a whole frame. */
  get buffered(): number {
    return this.pendingBytes;
  }
}

/** One network interface of the guest (NET_IF record). */
export interface GuestInterface {
  /** MAC address of the virtio-net device, aa:bb:cc:dd:ee:ff. */
  mac: string;
  /** IPv4 address. */
  address: string;
  /** Prefix length, 0..32. */
  prefixLen: number;
  /** Default gateway (only the first interface with one gets the default route). */
  gateway?: string;
  mtu: number;
}

/** The KIND field of a MOUNT record (proto.h's enum mount_kind, in its order). */
export const MOUNT_KINDS = ['disk', '9p', 'virtiofs'] as const;

/** One volume mounted into the container (MOUNT record). */
export interface GuestMount {
  /** `disk`: source is a virtio-blk serial; `9p` / `virtiofs`: source is the share's mount tag. */
  kind: (typeof MOUNT_KINDS)[number];
  source: string;
  /** Absolute path inside the container; created if missing. */
  target: string;
  fstype: string;
  readOnly: boolean;
}

/** What the guest needs to run the container's process. */
export interface RunSpec {
  argv: string[];
  env: string[];
  cwd?: string;
  user?: string;
  hostname?: string;
  tty?: boolean;
  stdin?: boolean;
  winsize?: { rows: number; cols: number };
  rootDisk: string;
  rootFstype?: string;
  scratchDisk?: string;
  /** CLOCK_REALTIME on the host in ns; the guest sets its clock to it first. */
  clockNs?: bigint;
  interfaces?: GuestInterface[];
  /** Nameservers for /etc/resolv.conf. */
  dns?: string[];
  /** Search domains for /etc/resolv.conf. */
  dnsSearch?: string[];
  /** Resolver options for /etc/resolv.conf's options line (e.g. "ndots:5"). */
  dnsOptions?: string[];
  /** Extra /etc/hosts lines, e.g. "10.88.0.5\tweb". */
  hosts?: string[];
  mounts?: GuestMount[];
  /** Write the main process's output to the boson.log port (timestamped records) instead of boson.ctl. */
  logPort?: boolean;
  /** The writable layer goes with the container (--rm): without volumes, the guest does not sync when it ends. */
  ephemeral?: boolean;
  /**
   * 16 to 64 random bytes from the host, mixed into the guest's entropy pool (credited) before the generator is
   * reseeded: a VM booted ahead of its container, or cloned from a snapshot, gets random state of its own.
   */
  entropy?: Buffer;
}

/** A further process in the running container (EXEC frame; the frame's session names it). */
export interface ExecSpec {
  argv: string[];
  /** The whole environment (the caller merges the container's with the exec's). */
  env: string[];
  cwd?: string;
  user?: string;
  tty?: boolean;
  stdin?: boolean;
  winsize?: { rows: number; cols: number };
  /**
   * The process's root directory, a path inside the container's root (a pod's container, whose own root filesystem
   * the host put there): the guest runs it in its own mount namespace with /proc, /sys, /dev and the VM's
   * /etc/hosts and /etc/resolv.conf, chrooted there; its user comes from that root's /etc/passwd.
   */
  root?: string;
  /** With `root`: that root is read-only for the process (its /proc, /sys, /dev stay as they are). */
  readOnlyRoot?: boolean;
  /** With `root`: paths of the VM bound into that root (after /proc, /sys, /dev, hosts and resolv.conf), in order. */
  mounts?: Array<{ source: string; target: string; readOnly: boolean }>;
  /** With `root`: a cgroup of the guest (relative to /sys/fs/cgroup, made if missing) the process joins first. */
  cgroup?: string;
  /** With `root`: supplementary group ids of the process, added to its user's. */
  groups?: number[];
  /** With `root`: the capability bounding set of the process (bit N: capability N); every one when absent. */
  capabilities?: bigint;
  /** With `root`: no_new_privs is set for the process. */
  noNewPrivileges?: boolean;
}

/** Tags of SPEC and EXEC records. */
export const SpecTag = {
  ARG: 1,
  ENV: 2,
  CWD: 3,
  USER: 4,
  HOSTNAME: 5,
  TTY: 6,
  STDIN: 7,
  WINSIZE: 8,
  ROOT_DISK: 9,
  ROOT_FSTYPE: 10,
  SCRATCH_DISK: 11,
  CLOCK: 12,
  NET_IF: 13,
  DNS: 14,
  DNS_SEARCH: 15,
  HOSTS: 16,
  MOUNT: 17,
  LOG_PORT: 18,
  EXEC_ROOT: 19,
  EXEC_READONLY: 20,
  EXEC_MOUNT: 21,
  ENTROPY: 22,
  DNS_OPTION: 41,
  EXEC_CGROUP: 42,
  EXEC_GROUPS: 43,
  EXEC_CAPS: 44,
  EXEC_NO_NEW_PRIVS: 45,
  EPHEMERAL: 46,
} as const;

/** Builds a sequence of SPEC records. */
class RecordWriter {
  private readonly records: Buffer[] = [];

  add(tag: number, value: Buffer): void {
    const head = Buffer.allocUnsafe(5);
    head.writeUInt8(tag, 0);
    head.writeUInt32BE(value.length, 1);
    this.records.push(head, value);
  }

  /** Adds a UTF-8 string record; throws INVALID_ARGUMENT if it holds a NUL. */
  addString(tag: number, value: string): void {
    if (value.includes('\0')) throw new BosonError('INVALID_ARGUMENT', `value contains a NUL byte: ${JSON.stringify(value)}`);
    this.add(tag, Buffer.from(value, 'utf8'));
  }

  /** The process records shared by SPEC and EXEC. */
  addProcess(p: ExecSpec): void {
    for (const arg of p.argv) this.addString(SpecTag.ARG, arg);
    for (const kv of p.env) this.addString(SpecTag.ENV, kv);
    if (p.cwd !== undefined) this.addString(SpecTag.CWD, p.cwd);
    if (p.user !== undefined) this.addString(SpecTag.USER, p.user);
  }

  addTerminal(p: ExecSpec): void {
    if (p.tty) this.add(SpecTag.TTY, Buffer.from([1]));
    if (p.stdin) this.add(SpecTag.STDIN, Buffer.from([1]));
    if (p.winsize) this.add(SpecTag.WINSIZE, encodeWinsize(p.winsize.rows, p.winsize.cols));
  }

  done(): Buffer {
    return Buffer.concat(this.records);
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** The NET_IF text of an interface; throws INVALID_ARGUMENT on a value the guest would refuse. */
function netIfText(i: GuestInterface): string {
  const bad = (what: string): never => {
    throw new BosonError('INVALID_ARGUMENT', `network interface ${i.mac}: invalid ${what}`);
  };
  if (!MAC.test(i.mac)) bad(`MAC address ${JSON.stringify(i.mac)}`);
  if (!IPV4.test(i.address)) bad(`IPv4 address ${JSON.stringify(i.address)}`);
  if (!Number.isInteger(i.prefixLen) || i.prefixLen < 0 || i.prefixLen > 32) bad(`prefix length ${i.prefixLen}`);
  if (i.gateway !== undefined && !IPV4.test(i.gateway)) bad(`gateway ${JSON.stringify(i.gateway)}`);
  if (!Number.isInteger(i.mtu) || i.mtu < 68 || i.mtu > 65535) bad(`MTU ${i.mtu}`);
  return `${i.mac.toLowerCase()} ${i.address}/${i.prefixLen} ${i.gateway ?? '-'} ${i.mtu}`;
}

/** The MOUNT text of a volume; throws INVALID_ARGUMENT on a value the guest would refuse. */
function mountText(m: GuestMount): string {
  const bad = (what: string): never => {
    throw new BosonError('INVALID_ARGUMENT', `mount on ${JSON.stringify(m.target)}: ${what}`);
  };
  if (!(MOUNT_KINDS as readonly string[]).includes(m.kind)) bad(`unknown kind ${JSON.stringify(m.kind)}`);
  for (const [name, v] of [
    ['source', m.source],
    ['target', m.target],
    ['fstype', m.fstype],
  ] as const) {
    if (v.length === 0 || /[\t\n\0]/.test(v)) bad(`${name} is empty or holds a tab, newline or NUL`);
  }
  if (!m.target.startsWith('/')) bad('target is not absolute');
  if (m.target.split('/').includes('..')) bad('target contains ..');
  return [m.kind, m.source, m.target, m.fstype, m.readOnly ? 'ro' : 'rw'].join('\t');
}

/**
 * Encodes a RunSpec as SPEC records; throws INVALID_ARGUMENT if argv is empty, a string holds a NUL, or a network
 * interface or mount is malformed.
 */
export function encodeSpec(spec: RunSpec): Buffer {
  if (spec.argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'no command given and the image has none');
  const w = new RecordWriter();
  w.addProcess(spec);
  if (spec.hostname !== undefined) w.addString(SpecTag.HOSTNAME, spec.hostname);
  w.addTerminal(spec);
  w.addString(SpecTag.ROOT_DISK, spec.rootDisk);
  if (spec.rootFstype !== undefined) w.addString(SpecTag.ROOT_FSTYPE, spec.rootFstype);
  if (spec.scratchDisk !== undefined) w.addString(SpecTag.SCRATCH_DISK, spec.scratchDisk);
  if (spec.clockNs !== undefined) {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(spec.clockNs);
    w.add(SpecTag.CLOCK, b);
  }
  for (const i of spec.interfaces ?? []) w.addString(SpecTag.NET_IF, netIfText(i));
  for (const [tag, list] of [
    [SpecTag.DNS, spec.dns],
    [SpecTag.DNS_SEARCH, spec.dnsSearch],
  ] as const)
    for (const d of list ?? []) {
      // One word each: resolv.conf is a list of words per line.
      if (d === '' || /\s/.test(d))
        throw new BosonError('INVALID_ARGUMENT', `DNS server or search domain ${JSON.stringify(d)} is empty or holds a space`);
      w.addString(tag, d);
    }
  for (const d of spec.dnsOptions ?? []) {
    if (d === '' || /\s/.test(d)) throw new BosonError('INVALID_ARGUMENT', `DNS option ${JSON.stringify(d)} is empty or holds a space`);
    w.addString(SpecTag.DNS_OPTION, d);
  }
  for (const h of spec.hosts ?? []) w.addString(SpecTag.HOSTS, h);
  for (const m of spec.mounts ?? []) w.addString(SpecTag.MOUNT, mountText(m));
  if (spec.logPort) w.add(SpecTag.LOG_PORT, Buffer.from([1]));
  if (spec.ephemeral) w.add(SpecTag.EPHEMERAL, Buffer.from([1]));
  if (spec.entropy !== undefined) {
    if (spec.entropy.length < 16 || spec.entropy.length > 64)
      throw new BosonError('INVALID_ARGUMENT', `ENTROPY must be 16 to 64 bytes, not ${spec.entropy.length}`);
    w.add(SpecTag.ENTROPY, spec.entropy);
  }
  return w.done();
}

/** Encodes the payload of an EXEC frame; throws INVALID_ARGUMENT if argv is empty or a string holds a NUL. */
export function encodeExec(spec: ExecSpec): Buffer {
  if (spec.argv.length === 0) throw new BosonError('INVALID_ARGUMENT', 'exec needs a command');
  const w = new RecordWriter();
  w.addProcess(spec);
  w.addTerminal(spec);
  if (spec.root !== undefined) {
    if (!spec.root.startsWith('/') || spec.root.includes('..'))
      throw new BosonError('INVALID_ARGUMENT', `exec root ${JSON.stringify(spec.root)} is not absolute or contains ..`);
    w.addString(SpecTag.EXEC_ROOT, spec.root);
    if (spec.readOnlyRoot) w.add(SpecTag.EXEC_READONLY, Buffer.from([1]));
    for (const m of spec.mounts ?? []) {
      for (const p of [m.source, m.target])
        if (!p.startsWith('/') || p.includes('..') || /[\t\n]/.test(p))
          throw new BosonError('INVALID_ARGUMENT', `exec mount path ${JSON.stringify(p)} is not absolute, or contains .. or a tab`);
      w.addString(SpecTag.EXEC_MOUNT, `${m.source}\t${m.target}\t${m.readOnly ? 'ro' : 'rw'}`);
    }
    if (spec.cgroup !== undefined) {
      if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(spec.cgroup) || spec.cgroup.split('/').some((p) => p === '.' || p === '..'))
        throw new BosonError('INVALID_ARGUMENT', `exec cgroup ${JSON.stringify(spec.cgroup)} is not a relative path of plain names`);
      w.addString(SpecTag.EXEC_CGROUP, spec.cgroup);
    }
    if (spec.groups !== undefined && spec.groups.length > 0) {
      if (spec.groups.length > 32 || spec.groups.some((g) => !Number.isInteger(g) || g < 0 || g > 4294967294))
        throw new BosonError('INVALID_ARGUMENT', `exec groups ${JSON.stringify(spec.groups)}: at most 32 ids of 0 to 4294967294`);
      w.addString(SpecTag.EXEC_GROUPS, spec.groups.join(','));
    }
    if (spec.capabilities !== undefined) {
      if (spec.capabilities < 0n || spec.capabilities >= 1n << 64n)
        throw new BosonError('INVALID_ARGUMENT', `exec capabilities ${spec.capabilities} are not a 64-bit mask`);
      const b = Buffer.allocUnsafe(8);
      b.writeBigUInt64BE(spec.capabilities);
      w.add(SpecTag.EXEC_CAPS, b);
    }
    if (spec.noNewPrivileges) w.add(SpecTag.EXEC_NO_NEW_PRIVS, Buffer.from([1]));
  } else if (
    spec.mounts?.length ||
    spec.cgroup !== undefined ||
    spec.groups?.length ||
    spec.capabilities !== undefined ||
    spec.noNewPrivileges
  ) {
    throw new BosonError('INVALID_ARGUMENT', 'exec mounts, cgroup, groups, capabilities and no_new_privs need an exec root');
  }
  return w.done();
}

/** Encodes a window size (RESIZE payload, WINSIZE record), clamping to u16. */
export function encodeWinsize(rows: number, cols: number): Buffer {
  const clamp = (n: number): number => Math.max(0, Math.min(0xffff, Math.trunc(n) || 0));
  const buf = Buffer.allocUnsafe(4);
  buf.writeUInt16BE(clamp(rows), 0);
  buf.writeUInt16BE(clamp(cols), 2);
  return buf;
}

/** Decoded HELLO payload. */
export interface Hello {
  version: number;
  boottimeNs: bigint;
}

/** Decoded EXIT payload. */
export interface ExitReport {
  status: number;
  signal: number;
}

/** Decoded ERROR payload. */
export interface GuestErrorReport {
  reason: number;
  message: string;
}

function need(frame: Frame, bytes: number, what: string): void {
  if (frame.payload.length < bytes) {
    throw new BosonError('GUEST_PROTOCOL', `${what} frame too short (${frame.payload.length} < ${bytes} bytes)`);
  }
}

/** Decodes a HELLO frame. */
export function decodeHello(frame: Frame): Hello {
  need(frame, 12, 'HELLO');
  return { version: frame.payload.readUInt32BE(0), boottimeNs: frame.payload.readBigUInt64BE(4) };
}

/** Decodes an EXIT frame. */
export function decodeExit(frame: Frame): ExitReport {
  need(frame, 8, 'EXIT');
  return { status: frame.payload.readInt32BE(0), signal: frame.payload.readUInt32BE(4) };
}

/** Decodes an ERROR frame. */
export function decodeError(frame: Frame): GuestErrorReport {
  need(frame, 1, 'ERROR');
  return { reason: frame.payload.readUInt8(0), message: frame.payload.subarray(1).toString('utf8') };
}

/** Decodes a STARTED frame's pid. */
export function decodeStarted(frame: Frame): number {
  need(frame, 4, 'STARTED');
  return frame.payload.readUInt32BE(0);
}

/** One record of the log port: a STARTED, STDOUT, STDERR, ERROR or EXIT of the main process, timestamped. */
export interface LogRecord {
  type: number;
  /** CLOCK_REALTIME in the guest when init wrote the record, in ns. */
  tsNs: bigint;
  /** The payload after the timestamp: the bytes of STDOUT/STDERR, or what STARTED/ERROR/EXIT carry on boson.ctl. */
  data: Buffer;
}

/** Decodes a frame read from the log port; throws GUEST_PROTOCOL if it has no timestamp. */
export function decodeLogRecord(frame: Frame): LogRecord {
  need(frame, 8, 'log record');
  return { type: frame.type, tsNs: frame.payload.readBigUInt64BE(0), data: frame.payload.subarray(8) };
}

/**
 * Parses every whole log record at the start of `buf` (a log file or a piece of one that begins at a record).
 * Returns them and how many bytes they took; the rest is an incomplete record (a file still being written).
 * Throws GUEST_PROTOCOL on a record longer than MAX_PAYLOAD + 8 or without a timestamp (not a log file, or not
 * at a record boundary).
 */
export function parseLogRecords(buf: Buffer): { records: LogRecord[]; consumed: number } {
  const records: LogRecord[] = [];
  let off = 0;
  while (buf.length - off >= HEADER_SIZE) {
    const length = buf.readUInt32BE(off + 4);
    if (length > MAX_PAYLOAD + 8) {
      throw new BosonError('GUEST_PROTOCOL', `log record at offset ${off} announces ${length} bytes`);
    }
    if (buf.length - off < HEADER_SIZE + length) break;
    const payload = buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + length);
    records.push(decodeLogRecord({ type: buf.readUInt8(off), session: buf.readUInt16BE(off + 2), payload }));
    off += HEADER_SIZE + length;
  }
  return { records, consumed: off };
}
