/**
 * CRI's PortForward over WebSocket, as kubelet's streaming server serves it (pkg/kubelet/cri/streaming/portforward,
 * websocket.go): the ports come from the URL's `port` query parameters (else those of the PortForward request);
 * each port i has two channels, data 2i and error 2i+1, and the server first sends the port number (2 bytes,
 * little-endian, as kubelet writes it) on both. Each binary message starts with its channel byte. Bytes the client
 * sends on a data channel go to one TCP connection to that port on the pod's localhost, made inside its VM (the
 * port's MachinePods.portForward); what the pod answers comes back on the same channel. A connection that fails
 * says why on the error channel. The WebSocket closes once every port's connection ended.
 */
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/index.ts';
import type { ExecSession, PodMachine } from '../machine/port/index.ts';
import { CriRefusal } from './errors.ts';
import type { CriHandler } from './handler.ts';
import type { StreamingServer } from './streaming.ts';
import { Opcode, encodeFrame, onChannelMessages } from './websocket.ts';

/** The subprotocols served (kubelet's binary ones; none offered means binary too). */
export const PORT_FORWARD_PROTOCOLS = ['v4.channel.k8s.io'];

/** The ports asked for in a port-forward URL's query (`?port=80&port=8080`); INVALID on a bad one. */
export function queryPorts(url: string): number[] | 'invalid' {
  const params = new URL(url, 'http://x').searchParams.getAll('port');
  const ports: number[] = [];
  for (const p of params.flatMap((v) => v.split(','))) {
    const n = Number(p);
    if (!/^\d+$/.test(p.trim()) || n < 1 || n > 65535) return 'invalid';
    ports.push(n);
  }
  return ports;
}

/** Serves one upgraded port-forward WebSocket: `ports` of pod `podId`, each relayed on the pod's own localhost. */
export function servePortForward(socket: Duplex, machine: PodMachine, podId: string, ports: number[], log: Logger): void {
  const send = (channel: number, data: Buffer): void => {
    if (!socket.destroyed) socket.write(encodeFrame(Opcode.binary, Buffer.concat([Buffer.from([channel]), data])));
  };
  const sessions: Array<ExecSession | null> = ports.map(() => null);
  const early: Buffer[][] = ports.map(() => []);
  let closed = false;
  let open = ports.length;
  const ended = (): void => {
    if (--open === 0 && !socket.destroyed) socket.end(encodeFrame(Opcode.close, Buffer.from([0x03, 0xe8])));
  };
  ports.forEach((port, i) => {
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16LE(port);
    send(2 * i, prefix);
    send(2 * i + 1, prefix);
    let errors = '';
    const failed = (why: string): void => {
      log.debug({ pod: podId, port, error: why }, 'a port-forward connection failed');
      send(2 * i + 1, Buffer.from(`error forwarding port ${port} to pod ${podId}: ${why}`));
    };
    machine.pods
      .portForward({ principal: 'cri-streaming' }, podId, port, {
        stdout: (d) => send(2 * i, d),
        stderr: (d) => (errors += d.toString()),
      })
      .then(
        async (session) => {
          sessions[i] = session;
          if (closed) session.signal(9);
          for (const d of early[i]!) session.stdin(d);
          early[i] = [];
          const code = await session.exit;
          if (code !== 0) failed(errors.trim() || `the connection ended with status ${code}`);
          ended();
        },
        (err: unknown) => {
          failed((err as Error).message);
          ended();
        },
      );
  });
  onChannelMessages(socket, (channel, data) => {
    // Data channels only; the error channels carry nothing from the client.
    const i = channel / 2;
    if (channel % 2 !== 0 || i >= ports.length) return;
    if (sessions[i]) sessions[i]!.stdin(data);
    else early[i]!.push(data);
  });
  socket.once('close', () => {
    closed = true;
    for (const s of sessions) s?.signal(9);
  });
}

/** CRI's PortForward RPC: a one-time URL of the streaming server for the pod's ports (it must be ready). */
export function portForwardHandlers(machine: PodMachine, streaming?: StreamingServer): Record<string, CriHandler> {
  return {
    PortForward: async (ctx, req) => {
      if (!streaming) throw new CriRefusal(grpc.status.UNIMPLEMENTED, 'PortForward: this CRI server runs without its streaming server');
      if (!req.podSandboxId) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'pod_sandbox_id is required');
      const ports = ((req.port ?? []) as unknown[]).map(Number);
      if (ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535))
        throw new CriRefusal(grpc.status.INVALID_ARGUMENT, `PortForward: ports must be from 1 to 65535, not ${JSON.stringify(req.port)}`);
      const pod = await machine.pods.inspect(ctx, req.podSandboxId);
      if (pod.state !== 'ready')
        throw new CriRefusal(grpc.status.FAILED_PRECONDITION, `pod ${pod.spec.name} is not ready: nothing to forward to`);
      return { url: streaming.portForwardUrl(pod.id, ports) };
    },
  };
}
