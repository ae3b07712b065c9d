/**
 * The embedded DNS server of one network, on its gateway address, port 53 (UDP). It answers A queries for the
 * names of the containers on that network (container name, aliases, short id) and forwards every other query,
 * unchanged, to the host's resolvers from /etc/resolv.conf. Because it runs on the host, a host resolver on
 * 127.0.0.53 (systemd-resolved) works for containers too.
 *
 * The wire format is handled here (RFC 1035 §4): we only need a query's header and first question, and to build
 * an answer of A records; forwarded packets are relayed as bytes with only the ID rewritten. A DNS library would
 * be more code than this. Against spoofed answers (RFC 5452), each forwarded query goes out from its own socket on
 * a random port with a random ID, and an answer counts only from a resolver asked, to that port, with that ID and
 * the same question; at most MAX_PENDING queries wait at once, so a guest's flood cannot grow it without bound.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import net from 'node:net';

/** A resolver to forward to. */
export interface Upstream {
  host: string;
  port: number;
}

/** The host's resolver settings (nameservers and search domains) from a resolv.conf file. */
export async function readResolvConf(file = '/etc/resolv.conf'): Promise<{ nameservers: string[]; search: string[] }> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const line of text.split('\n')) {
    const [key, ...values] = line.trim().split(/\s+/);
    if (key === 'nameserver' && values[0] && net.isIP(values[0]) === 4) nameservers.push(values[0]);
    else if (key === 'search' || key === 'domain') search = values;
  }
  return { nameservers, search };
}

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_SERVFAIL = 2;
const RCODE_REFUSED = 5;

/** The parts of a DNS query this server looks at. */
export interface DnsQuery {
  id: number;
  flags: number;
  /** Lower-case name without the trailing dot. */
  name: string;
  type: number;
  klass: number;
  /** The question section as received (to echo it in an answer). */
  question: Buffer;
}

/** Parses a query's header and first question; undefined for anything that is not a plain query. */
export function parseQuery(msg: Buffer): DnsQuery | undefined {
  if (msg.length < 12) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000 || ((flags >> 11) & 0xf) !== 0 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    if (len === 0) {
      off++;
      break;
    }
    if (len > 63 || off + 1 + len > msg.length) return undefined; // compression pointers do not occur in a query's question
    labels.push(msg.toString('latin1', off + 1, off + 1 + len).toLowerCase());
    off += 1 + len;
  }
  if (off + 4 > msg.length) return undefined;
  return {
    id: msg.readUInt16BE(0),
    flags,
    name: labels.join('.'),
    type: msg.readUInt16BE(off),
    klass: msg.readUInt16BE(off + 2),
    question: msg.subarray(12, off + 4),
  };
}

/** Builds a response to `q` with the given A records (none: NODATA), or an error rcode. */
export function buildResponse(q: DnsQuery, addresses: string[], rcode = 0, ttl = 600): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  // QR, opcode 0, AA when we answer with authority, RD copied, RA.
  header.writeUInt16BE(0x8000 | (rcode === 0 ? 0x0400 : 0) | (q.flags & 0x0100) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const answers = addresses.map((addr) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(4, 10);
    addr.split('.').forEach((octet, i) => rr.writeUInt8(Number(octet), 12 + i));
    return rr;
  });
  return Buffer.concat([header, q.question, ...answers]);
}

/** A query forwarded upstream, waiting for its answer: on a socket of its own, from a random port, with a random ID. */
interface Pending {
  client: { address: string; port: number };
  /** The client's ID, restored in the answer. */
  id: number;
  /** The ID sent upstream. */
  upstreamId: number;
  query: Buffer;
  /** The question section sent, which an answer must repeat (RFC 5452: ID, port and question must all match). */
  question: Buffer;
  next: number;
  timer: NodeJS.Timeout;
  socket: dgram.Socket;
}

/** At most this many forwarded queries wait at once; past it a query is answered SERVFAIL at once. */
export const MAX_PENDING = 1024;

/** Options of one network's DNS server. */
export interface DnsServerOptions {
  address: string;
  port?: number;
  /** Resolvers to forward to, tried in order; empty: names not on the network get REFUSED (internal networks). */
  upstreams: Upstream[];
  /** Per-upstream timeout before trying the next one. */
  timeoutMs?: number;
  /**
   * The search domains the containers are given (the host's). A network's name with one of them appended
   * ("web.corp.example") is answered as the name itself: see lookup().
   */
  search?: string[];
}

/** A DNS server bound to one address. */
export class DnsServer {
  private readonly names = new Map<string, string[]>();
  private readonly bySource = new Map<string, Map<string, string[]>>();
  private readonly socket = dgram.createSocket({ type: 'udp4' });
  private readonly pending = new Set<Pending>();
  private upstreams: Upstream[];
  private search: string[];

  constructor(private readonly options: DnsServerOptions) {
    this.upstreams = options.upstreams;
    this.search = (options.search ?? []).map((d) => d.toLowerCase().replace(/\.$/, ''));
    this.socket.on('message', (msg, rinfo) => this.onQuery(msg, rinfo));
    this.socket.on('error', () => undefined);
  }

  /** Binds the server; resolves with the port (useful when 0 was asked). */
  async start(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind({ address: this.options.address, port: this.options.port ?? 53, exclusive: true }, () => {
        this.socket.removeListener('error', reject);
        resolve();
      });
    });
    // The daemon's own servers keep it alive; a DNS server alone must not.
    this.socket.unref();
    return this.socket.address().port;
  }

  /**
   * Replaces the name table: lower-case name → addresses; and the names only some clients may resolve (legacy
   * links): client address → (name → addresses), looked up first for a query from that address.
   */
  setNames(names: Map<string, string[]>, bySource: Map<string, Map<string, string[]>> = new Map()): void {
    this.names.clear();
    for (const [k, v] of names) this.names.set(k.toLowerCase(), v);
    this.bySource.clear();
    for (const [source, table] of bySource) this.bySource.set(source, new Map([...table].map(([k, v]) => [k.toLowerCase(), v])));
  }

  /** Replaces the search domains (see DnsServerOptions.search). */
  setSearch(search: string[]): void {
    this.search = search.map((d) => d.toLowerCase().replace(/\.$/, ''));
  }

  /**
   * The addresses of `name` on this network, also when one of the search domains is appended to it. A resolver
   * in the guest tries a single-label name with the search domains first (ndots:1: glibc, busybox's nslookup), and
   * each of those queries would be forwarded upstream; an upstream that answers slowly or not at all (an offline
   * host, 127.0.0.53 without systemd-resolved) then made `wget http://web/` take 8 s and busybox's nslookup fail
   * with "connection timed out". Answering them here gives the container's address at once, as the name itself.
   */
  private lookup(name: string, source: string): string[] | undefined {
    for (const table of [this.bySource.get(source), this.names]) {
      if (!table) continue;
      const direct = table.get(name);
      if (direct) return direct;
      for (const domain of this.search) {
        if (domain && name.endsWith(`.${domain}`)) {
          const found = table.get(name.slice(0, -domain.length - 1));
          if (found) return found;
        }
      }
    }
    return undefined;
  }

  /** Replaces the upstream resolvers. */
  setUpstreams(upstreams: Upstream[]): void {
    this.upstreams = upstreams;
  }

  async close(): Promise<void> {
    for (const p of this.pending) this.settle(p);
    await new Promise<void>((r) => this.socket.close(() => r())).catch(() => undefined);
  }

  private onQuery(msg: Buffer, client: dgram.RemoteInfo): void {
    const q = parseQuery(msg);
    if (!q) return;
    const known = q.klass === CLASS_IN ? this.lookup(q.name, client.address) : undefined;
    if (known) {
      // A name of the network: its addresses for A, "no data" for every other type (AAAA), never forwarded.
      this.socket.send(buildResponse(q, q.type === TYPE_A ? known : []), client.port, client.address);
      return;
    }
    if (this.upstreams.length === 0) {
      this.socket.send(buildResponse(q, [], RCODE_REFUSED), client.port, client.address);
      return;
    }
    if (this.pending.size >= MAX_PENDING) {
      this.socket.send(buildResponse(q, [], RCODE_SERVFAIL), client.port, client.address);
      return;
    }
    const query = Buffer.from(msg);
    const upstreamId = randomInt(0, 0x10000);
    query.writeUInt16BE(upstreamId, 0);
    const socket = dgram.createSocket({ type: 'udp4' });
    const pending: Pending = {
      client: { address: client.address, port: client.port },
      id: q.id,
      upstreamId,
      query,
      question: q.question,
      next: 0,
      timer: setTimeout(() => undefined, 0),
      socket,
    };
    this.pending.add(pending);
    socket.on('error', () => this.settle(pending));
    socket.on('message', (answer, from) => this.onUpstreamAnswer(pending, answer, from));
    // Port 0: the kernel picks a random ephemeral port for each query.
    socket.bind({ port: 0, exclusive: true }, () => {
      socket.unref();
      this.forward(pending, q);
    });
  }

  private forward(p: Pending, q: DnsQuery): void {
    if (!this.pending.has(p)) return;
    const upstream = this.upstreams[p.next++];
    if (!upstream) {
      this.settle(p);
      this.socket.send(buildResponse(q, [], RCODE_SERVFAIL), p.client.port, p.client.address);
      return;
    }
    p.socket.send(p.query, upstream.port, upstream.host);
    clearTimeout(p.timer);
    p.timer = setTimeout(() => this.forward(p, q), this.options.timeoutMs ?? 2000);
  }

  /** Takes an upstream answer only if it comes from a resolver we asked and matches the ID and the question. */
  private onUpstreamAnswer(p: Pending, msg: Buffer, from: dgram.RemoteInfo): void {
    if (msg.length < 12 || !this.upstreams.some((u) => u.host === from.address && u.port === from.port)) return;
    if (msg.readUInt16BE(0) !== p.upstreamId) return;
    const question = msg.subarray(12, 12 + p.question.length);
    if (
      msg.readUInt16BE(4) !== 1 ||
      question.length !== p.question.length ||
      question.toString('latin1').toLowerCase() !== p.question.toString('latin1').toLowerCase()
    )
      return;
    this.settle(p);
    const answer = Buffer.from(msg);
    answer.writeUInt16BE(p.id, 0);
    this.socket.send(answer, p.client.port, p.client.address);
  }

  /** Forgets a pending query and closes its socket. */
  private settle(p: Pending): void {
    if (!this.pending.delete(p)) return;
    clearTimeout(p.timer);
    p.socket.close();
  }
}
