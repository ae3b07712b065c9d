/**
 * Boson's CRI streaming server: Exec answers with a one-time URL of this server, and kubelet (or kubectl through
 * it) opens it as a WebSocket with the Kubernetes channel protocol (v5.channel.k8s.io, v4.channel.k8s.io or
 * channel.k8s.io): each binary message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the final status
 * (v4 and later: a metav1.Status as JSON, with the exit code for a failure), 4 resize ({"Width","Height"}), and in
 * v5, 255 closing a channel ([255, 0] ends stdin). SPDY is not served: clients since Kubernetes 1.29 speak
 * WebSocket first. Attach (/attach/<token>) joins a running container's main process the same way: its output
 * from then on, its stdin when it has one, resize with a tty; the status is Success when the container exits.
 * PortForward's URLs are served by portforward.ts (kubelet's port-forward channel protocol).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { silentLogger, toBosonError, type Logger } from '../common/index.ts';
import type { ExecSession, PodMachine, ProcessControls, StreamSink } from '../machine/port/index.ts';
import { Opcode, acceptKey, encodeFrame, onChannelMessages } from './websocket.ts';
import { PORT_FORWARD_PROTOCOLS, queryPorts, servePortForward } from './portforward.ts';

/** The channel protocols served, best first. */
export const CHANNEL_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'channel.k8s.io'];

/** How long an Exec's URL may wait to be opened. */
const TOKEN_TTL_MS = 60_000;

interface PendingExec {
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  expires: number;
}

/** An Attach's URL, not opened yet. */
type PendingAttach = Omit<PendingExec, 'cmd'>;

/** The k8s metav1.Status sent on channel 3 when a stream ends. */
type FinalStatus = Record<string, unknown>;

/** What a stream is joined to once its WebSocket is open: a process's controls and how the stream ends. */
interface Joined {
  controls: ProcessControls;
  /** The final status (the process ended, or the container exited). */
  outcome: Promise<FinalStatus>;
  /** Called when the client went away first. */
  abandon(): void;
}

/** A running streaming server. */
export class StreamingServer {
  private readonly pending = new Map<string, PendingExec>();
  /** PortForward's one-time URLs: token -> the pod and the ports of the request. */
  private readonly forwards = new Map<string, { podSandboxId: string; ports: number[]; expires: number }>();
  private readonly pendingAttach = new Map<string, PendingAttach>();
  private readonly sockets = new Set<Duplex>();

  private constructor(
    private readonly machine: PodMachine,
    private readonly server: http.Server,
    /** http://address:port of this server. */
    readonly base: string,
    private readonly log: Logger,
  ) {}

  /** Starts the server on `address` (default 127.0.0.1) and a free port. */
  static async start(machine: PodMachine, options: { address?: string; log?: Logger } = {}): Promise<StreamingServer> {
    const address = options.address ?? '127.0.0.1';
    const server = http.createServer((_req, res) => {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end(`Boson's CRI streaming server speaks WebSocket only (${CHANNEL_PROTOCOLS.join(', ')}); SPDY is not supported\n`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, address, () => resolve());
    });
    const { port } = server.address() as { port: number };
    const host = address.includes(':') ? `[${address}]` : address;
    const s = new StreamingServer(machine, server, `http://${host}:${port}`, options.log ?? silentLogger);
    server.on('upgrade', (req, socket) => s.upgrade(req, socket));
    return s;
  }

  /** A one-time URL for an exec (CRI's Exec); the command starts when the URL is opened. */
  execUrl(request: Omit<PendingExec, 'expires'>): string {
    const now = Date.now();
    for (const [token, p] of this.pending) if (p.expires < now) this.pending.delete(token);
    const token = randomBytes(16).toString('hex');
    this.pending.set(token, { ...request, expires: now + TOKEN_TTL_MS });
    return `${this.base}/exec/${token}`;
  }

  /** A one-time URL for a port-forward (CRI's PortForward) to `ports` of the pod (or those of the URL's query). */
  portForwardUrl(podSandboxId: string, ports: number[]): string {
    const now = Date.now();
    for (const [token, p] of this.forwards) if (p.expires < now) this.forwards.delete(token);
    const token = randomBytes(16).toString('hex');
    this.forwards.set(token, { podSandboxId, ports, expires: now + TOKEN_TTL_MS });
    return `${this.base}/portforward/${token}`;
  }

  /** A one-time URL for an attach (CRI's Attach) to a running container's main process. */
  attachUrl(request: Omit<PendingAttach, 'expires'>): string {
    const now = Date.now();
    for (const [token, p] of this.pendingAttach) if (p.expires < now) this.pendingAttach.delete(token);
    const token = randomBytes(16).toString('hex');
    this.pendingAttach.set(token, { ...request, expires: now + TOKEN_TTL_MS });
    return `${this.base}/attach/${token}`;
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex): void {
    const refuse = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${text}\n`);
    };
    const pf = /^\/portforward\/([0-9a-f]{32})$/.exec((req.url ?? '').split('?')[0]!);
    if (pf) return void this.upgradePortForward(req, socket, pf[1]!, refuse);
    const a = /^\/attach\/([0-9a-f]{32})$/.exec((req.url ?? '').split('?')[0]!);
    if (a) {
      const attach = this.pendingAttach.get(a[1]!);
      if (!attach || attach.expires < Date.now()) return refuse(404, 'no such attach session (its URL is used once, within a minute)');
      const protocol = this.accept(req, socket, refuse);
      if (protocol === null) return;
      this.pendingAttach.delete(a[1]!);
      void this.runAttach(socket, attach, protocol);
      return;
    }
    const m = /^\/exec\/([0-9a-f]{32})$/.exec((req.url ?? '').split('?')[0]!);
    const exec = m ? this.pending.get(m[1]!) : undefined;
    if (!m || !exec || exec.expires < Date.now()) return refuse(404, 'no such exec session (its URL is used once, within a minute)');
    const protocol = this.accept(req, socket, refuse);
    if (protocol === null) return;
    this.pending.delete(m[1]!);
    void this.runExec(socket, exec, protocol);
  }

  /** Answers a WebSocket upgrade with the best channel protocol offered; null (refused) when there is none. */
  private accept(req: http.IncomingMessage, socket: Duplex, refuse: (status: number, text: string) => void): string | null {
    const key = req.headers['sec-websocket-key'];
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || typeof key !== 'string') {
      refuse(400, `only WebSocket upgrades are served (${CHANNEL_PROTOCOLS.join(', ')}); SPDY is not supported`);
      return null;
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    const protocol = offered.find((p) => CHANNEL_PROTOCOLS.includes(p));
    if (!protocol) {
      refuse(400, `no supported subprotocol offered: Boson speaks ${CHANNEL_PROTOCOLS.join(', ')}`);
      return null;
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
    );
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    return protocol;
  }

  /**
   * Serves one open channel-protocol stream: stdin (0), resize (4) and v5's close of stdin (255, 0) go to the
   * process `join` gives (what arrives before it is held), its output to channels 1 and 2 (1 only with a tty), and
   * its outcome is the final status on channel 3 before the WebSocket closes.
   */
  private async serve(
    socket: Duplex,
    protocol: string,
    streams: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean },
    join: (sink: StreamSink) => Promise<Joined>,
  ): Promise<void> {
    const send = (channel: number, data: Buffer): void => {
      if (!socket.destroyed) socket.write(encodeFrame(Opcode.binary, Buffer.concat([Buffer.from([channel]), data])));
    };
    const finish = (status: FinalStatus): void => {
      if (protocol === 'channel.k8s.io') {
        if (status.status !== 'Success') send(3, Buffer.from(String(status.message)));
      } else send(3, Buffer.from(JSON.stringify(status)));
      if (!socket.destroyed) socket.end(encodeFrame(Opcode.close, Buffer.from([0x03, 0xe8])));
    };
    let joined: Joined | undefined;
    const early: Array<(c: ProcessControls) => void> = [];
    const toProcess = (act: (c: ProcessControls) => void): void => {
      if (joined) act(joined.controls);
      else early.push(act);
    };
    onChannelMessages(socket, (channel, data) => {
      if (channel === 0 && streams.stdin) toProcess((c) => c.stdin(data));
      else if (channel === 4 && streams.tty) {
        try {
          const size = JSON.parse(data.toString()) as { Width?: number; Height?: number };
          toProcess((c) => c.resize(size.Height ?? 24, size.Width ?? 80));
        } catch {
          // a malformed resize is ignored
        }
      } else if (channel === 255 && data[0] === 0 && streams.stdin) toProcess((c) => c.closeStdin());
    });
    try {
      joined = await join({
        stdout: (d) => streams.stdout && send(1, d),
        stderr: (d) => streams.stderr && send(streams.tty ? 1 : 2, d),
      });
      for (const act of early) act(joined.controls);
      const j = joined;
      // A client gone while the process was being joined is abandoned at once.
      if (socket.destroyed) j.abandon();
      else socket.once('close', () => j.abandon());
      finish(await joined.outcome);
    } catch (err) {
      const e = toBosonError(err);
      this.log.debug({ error: e.message }, 'a stream failed');
      finish({ metadata: {}, status: 'Failure', message: e.message, reason: 'InternalError' });
    }
  }

  private async runAttach(socket: Duplex, attach: PendingAttach, protocol: string): Promise<void> {
    await this.serve(socket, protocol, attach, async (sink) => {
      const a = await this.machine.pods.attach({ principal: 'cri-streaming' }, attach.containerId, { stdin: attach.stdin }, sink);
      return {
        controls: a,
        outcome: a.done.then((): FinalStatus => ({ metadata: {}, status: 'Success' })),
        abandon: () => a.detach(),
      };
    });
  }

  private async runExec(socket: Duplex, exec: PendingExec, protocol: string): Promise<void> {
    await this.serve(socket, protocol, exec, async (sink) => {
      const session: ExecSession = await this.machine.pods.exec(
        { principal: 'cri-streaming' },
        exec.containerId,
        { argv: exec.cmd, tty: exec.tty, stdin: exec.stdin },
        sink,
      );
      return {
        controls: session,
        outcome: session.exit.then((code): FinalStatus =>
          code === 0
            ? { metadata: {}, status: 'Success' }
            : {
                metadata: {},
                status: 'Failure',
                message: `command terminated with non-zero exit code: error executing command ${JSON.stringify(exec.cmd)}, exit code ${code}`,
                reason: 'NonZeroExitCode',
                details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
              },
        ),
        abandon: () => exec.stdin && session.closeStdin(),
      };
    });
  }

  /** Answers a port-forward URL: the handshake (kubelet's subprotocols, or none), then portforward.ts. */
  private async upgradePortForward(
    req: http.IncomingMessage,
    socket: Duplex,
    token: string,
    refuse: (status: number, text: string) => void,
  ): Promise<void> {
    const forward = this.forwards.get(token);
    if (!forward || forward.expires < Date.now())
      return refuse(404, 'no such port-forward session (its URL is used once, within a minute)');
    const key = req.headers['sec-websocket-key'];
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket' || typeof key !== 'string')
      return refuse(400, `only WebSocket upgrades are served (${PORT_FORWARD_PROTOCOLS.join(', ')}); SPDY is not supported`);
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const protocol = offered.find((p) => PORT_FORWARD_PROTOCOLS.includes(p));
    if (offered.length > 0 && !protocol)
      return refuse(400, `no supported subprotocol offered: Boson's port-forward speaks ${PORT_FORWARD_PROTOCOLS.join(', ')}`);
    const asked = queryPorts(req.url ?? '');
    if (asked === 'invalid') return refuse(400, 'a port of the query is not a number from 1 to 65535');
    const ports = asked.length > 0 ? asked : forward.ports;
    if (ports.length === 0) return refuse(400, 'at least one port must be specified (?port=N)');
    this.forwards.delete(token);
    try {
      const pod = await this.machine.pods.inspect({ principal: 'cri-streaming' }, forward.podSandboxId);
      if (pod.state !== 'ready') return refuse(409, `pod ${pod.spec.name} is not ready: nothing to forward to`);
    } catch (err) {
      return refuse(404, toBosonError(err).message);
    }
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n${protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : ''}\r\n`,
    );
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    servePortForward(socket, this.machine, forward.podSandboxId, ports, this.log);
  }

  /** Stops serving and ends every open stream. */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
