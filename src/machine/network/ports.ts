/**
 * Published ports: Docker's `-p` syntax, `-P` (every exposed port to a random host port), and holding host ports.
 *
 * A published port is served by DNAT rules (firewall.ts), not by a proxy; but the daemon still **binds** each host
 * port it publishes and keeps it bound while the container lives. Binding is how a port already in use is found
 * (PORT_IN_USE), how port 0 turns into a free port, and it keeps other programs on the host from taking the port
 * later (their traffic would silently go to the container instead).
 */
import type { PortBinding } from '../port/index.ts';
import net from 'node:net';
import dgram from 'node:dgram';
import { BosonError, isBosonError } from '../../common/index.ts';

/** One published port. `hostPort` 0 means "any free port"; `hostPortEnd` (optional) means "any free port in hostPort..hostPortEnd". */
export type { PortBinding };

function invalid(message: string): BosonError {
  return new BosonError('INVALID_ARGUMENT', message);
}

function parseRange(text: string): [number, number] | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start < 1 || end > 65535 || end < start) return undefined;
  return [start, end];
}

/**
 * Parses one `-p` value, Docker's forms: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`, `[::1]:8080:80`,
 * ranges `8000-8002:80-82` (one binding per port), a host range for one container port `8000-8010:80` (any free
 * port of the range), and `/tcp` or `/udp`. Errors are INVALID_ARGUMENT with Docker's wording.
 */
export function parsePortSpec(spec: string): PortBinding[] {
  const raw = spec.trim();
  let rest = raw;
  let protoText = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    protoText = rest.slice(slash + 1);
    rest = rest.slice(0, slash);
  }
  const protocol = protoText.toLowerCase();
  let ip = '';
  let hostText = '';
  let containerText: string;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') throw invalid(`invalid IP address: ${rest.split(']')[0]}`);
    ip = rest.slice(1, close);
    const tail = rest.slice(close + 2).split(':');
    if (tail.length !== 2) throw invalid(`invalid port specification: "${raw}"`);
    [hostText, containerText] = tail as [string, string];
    if (net.isIP(ip) !== 6) throw invalid(`invalid IP address: ${ip}`);
  } else {
    const parts = rest.split(':');
    containerText = parts[parts.length - 1]!;
    if (parts.length === 2) hostText = parts[0]!;
    else if (parts.length === 3) [ip, hostText] = [parts[0]!, parts[1]!];
    else if (parts.length > 3) throw invalid(`invalid port specification: "${raw}" (put an IPv6 address in brackets)`);
    if (ip !== '' && net.isIP(ip) === 0) throw invalid(`invalid IP address: ${ip}`);
  }
  if (containerText === '') throw invalid(`no port specified: ${raw}<empty>`);
  const container = parseRange(containerText);
  if (!container) throw invalid(`invalid containerPort: ${containerText}`);
  let host: [number, number] | undefined;
  if (hostText !== '') {
    host = parseRange(hostText);
    if (!host) throw invalid(`invalid hostPort: ${hostText}`);
  }
  const containerCount = container[1] - container[0];
  if (host && host[1] - host[0] !== containerCount && containerCount !== 0) {
    throw invalid(`invalid ranges specified for container and host Ports: ${containerText} and ${hostText}`);
  }
  if (protocol !== 'tcp' && protocol !== 'udp')
    throw invalid(protocol === 'sctp' ? 'invalid proto: sctp (not supported by Boson)' : `invalid proto: ${protoText}`);
  const hostIp = ip === '' ? '0.0.0.0' : ip;
  if (host && host[1] !== host[0] && containerCount === 0) {
    return [{ hostIp, hostPort: host[0], hostPortEnd: host[1], containerPort: container[0], protocol }];
  }
  const out: PortBinding[] = [];
  for (let i = 0; i <= containerCount; i++) {
    out.push({ hostIp, hostPort: host ? host[0] + i : 0, containerPort: container[0] + i, protocol });
  }
  return out;
}

/** Parses an image's exposed port key ("80/tcp", "53/udp", "8080") into a `-P` binding to a random host port. */
export function parseExposedPort(key: string): PortBinding[] {
  const [portText, protoText = 'tcp'] = key.split('/');
  return parsePortSpec(`${portText}/${protoText}`).map((b) => ({ ...b, hostPort: 0 }));
}

/** `-P`: every exposed port of an image (its ExposedPorts keys) published to a random host port. */
export function publishAllPorts(exposed: Iterable<string>): PortBinding[] {
  return [...exposed].flatMap(parseExposedPort);
}

/** A bound host port; `release` lets it go. */
export interface HeldPort {
  binding: PortBinding;
  release(): Promise<void>;
}

function bindOnce(protocol: 'tcp' | 'udp', hostIp: string, port: number): Promise<{ port: number; release: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    if (protocol === 'tcp') {
      const server = net.createServer((socket) => socket.destroy());
      server.once('error', reject);
      server.listen({ host: hostIp, port, exclusive: true, backlog: 1 }, () => {
        server.removeListener('error', reject);
        server.on('error', () => undefined);
        server.unref();
        resolve({ port: (server.address() as net.AddressInfo).port, release: () => new Promise((r) => server.close(() => r())) });
      });
    } else {
      const socket = dgram.createSocket({ type: net.isIP(hostIp) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
      socket.once('error', reject);
      socket.bind({ address: hostIp, port, exclusive: true }, () => {
        socket.removeListener('error', reject);
        socket.on('error', () => undefined);
        socket.on('message', () => undefined);
        socket.unref();
        resolve({ port: socket.address().port, release: () => new Promise((r) => socket.close(() => r())) });
      });
    }
  });
}

function inUse(binding: PortBinding, port: number | string, cause?: unknown): BosonError {
  return new BosonError('PORT_IN_USE', `Bind for ${binding.hostIp}:${port} failed: port is already allocated`, {
    cause,
    details: { hostIp: binding.hostIp, hostPort: port, protocol: binding.protocol },
  });
}

/**
 * Binds the host side of `binding` and returns it with the actual host port: port 0 becomes a free port from the
 * kernel's ephemeral range, a host range becomes its first free port. PORT_IN_USE when the port (every port of the
 * range) is bound already; INVALID_ARGUMENT when the host address is not one of this host's.
 */
export async function holdPort(binding: PortBinding): Promise<HeldPort> {
  const attempt = async (port: number): Promise<HeldPort> => {
    try {
      const held = await bindOnce(binding.protocol, binding.hostIp, port);
      const { hostPortEnd: _unused, ...rest } = binding;
      return { binding: { ...rest, hostPort: held.port }, release: held.release };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' || code === 'EACCES') throw inUse(binding, port, err);
      if (code === 'EADDRNOTAVAIL')
        throw new BosonError('INVALID_ARGUMENT', `cannot publish on ${binding.hostIp}: not an address of this host`, { cause: err });
      throw err;
    }
  };
  if (binding.hostPortEnd === undefined || binding.hostPortEnd === binding.hostPort) return attempt(binding.hostPort);
  for (let port = binding.hostPort; port <= binding.hostPortEnd; port++) {
    try {
      return await attempt(port);
    } catch (err) {
      if (!isBosonError(err, 'PORT_IN_USE')) throw err;
    }
  }
  throw inUse(binding, `${binding.hostPort}-${binding.hostPortEnd}`);
}

/** Binds every binding (all or none: on failure, the ones already bound are released). */
export async function holdPorts(bindings: PortBinding[]): Promise<HeldPort[]> {
  const held: HeldPort[] = [];
  try {
    for (const b of bindings) {
      held.push(await holdPort(b));
    }
    return held;
  } catch (err) {
    await Promise.all(held.map((h) => h.release()));
    throw err;
  }
}
