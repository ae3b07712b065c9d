/**
 * The CRI server: runtime.v1 RuntimeService and ImageService over gRPC (grpc-js) on a unix socket, over a machine
 * that runs pods. Every RPC of the proto is answered: the served ones by their handler, the others with the status
 * and reason of REFUSED_RPCS. Errors are translated here, once (src/cri/errors.ts).
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BosonError, silentLogger, type Logger } from '../common/index.ts';
import type { PodMachine, RequestContext } from '../machine/port/index.ts';
import { attachHandlers } from './attach.ts';
import { CriRefusal, grpcErrorOf } from './errors.ts';
import type { CriHandler } from './handler.ts';
import { imageHandlers } from './images.ts';
import { podHandlers } from './pods.ts';
import { portForwardHandlers } from './portforward.ts';
import { criServices } from './proto.ts';
import { REFUSED_RPCS } from './refusals.ts';
import { resourceHandlers } from './resources.ts';
import { runtimeInfoHandlers } from './runtime-info.ts';
import { StreamingServer } from './streaming.ts';

/** Where and as what the CRI server runs. */
export interface CriServerOptions {
  socketPath: string;
  /** Boson's version, reported by Version. */
  version: string;
  /** Where the machine keeps its images (ImageFsInfo's mount point). */
  imageFsDir: string;
  /** Where the streaming server (Exec's URLs) listens: an address of this host (default 127.0.0.1), a free port. */
  streamingAddress?: string;
  log?: Logger;
}

/** A running CRI server. */
export interface CriServer {
  socketPath: string;
  close(): Promise<void>;
}

/** Every served RPC of both services, by name. */
export function criHandlers(
  machine: PodMachine,
  options: Pick<CriServerOptions, 'version' | 'imageFsDir'>,
  streaming?: StreamingServer,
): Record<string, CriHandler> {
  return {
    ...runtimeInfoHandlers(machine, options.version),
    ...imageHandlers(machine, options.imageFsDir),
    ...podHandlers(machine, streaming),
    ...portForwardHandlers(machine, streaming),
    ...attachHandlers(machine, streaming),
    ...resourceHandlers(machine),
  };
}

let nextRequest = 1;

/** A grpc-js implementation of `service`: each method runs its handler, or answers with its refusal. */
function implementation(
  service: grpc.ServiceDefinition,
  handlers: Record<string, CriHandler>,
  log: Logger,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(service)) {
    const handler = handlers[name];
    const refusal = REFUSED_RPCS[name];
    const answer = async (request: unknown): Promise<unknown> => {
      if (handler) {
        const ctx: RequestContext = { principal: 'cri', requestId: `cri-${nextRequest++}` };
        return handler(ctx, request);
      }
      if (refusal) throw new CriRefusal(refusal.status, `${name}: ${refusal.why}`);
      throw new CriRefusal(grpc.status.UNIMPLEMENTED, `${name} is not served by Boson`);
    };
    const fail = (err: unknown): Partial<grpc.StatusObject> => {
      const status = grpcErrorOf(err);
      if (status.code === grpc.status.INTERNAL) log.error({ rpc: name, err }, 'a CRI call failed inside Boson');
      else log.debug({ rpc: name, code: status.code, details: status.details }, 'a CRI call was refused');
      return status;
    };
    if (method.responseStream || method.requestStream) {
      // Boson serves no streaming RPC: each answers at once with its status.
      impl[name] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        answer(undefined).then(
          () => call.emit('error', fail(new CriRefusal(grpc.status.UNIMPLEMENTED, `${name} is not served by Boson`))),
          (err: unknown) => call.emit('error', fail(err)),
        );
      }) as grpc.UntypedHandleCall;
      continue;
    }
    impl[name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      answer(call.request).then(
        (response) => callback(null, response),
        (err: unknown) => callback(fail(err)),
      );
    }) as grpc.UntypedHandleCall;
  }
  return impl;
}

/** Starts the CRI server on `options.socketPath` (mode 0660); SOMETHING_ANSWERS if a live server holds it. */
export async function startCriServer(machine: PodMachine, options: CriServerOptions): Promise<CriServer> {
  const log = options.log ?? silentLogger;
  const streaming = await StreamingServer.start(machine, { address: options.streamingAddress, log });
  const handlers = criHandlers(machine, options, streaming);
  const { RuntimeService, ImageService } = criServices();
  const server = new grpc.Server();
  server.addService(RuntimeService.service, implementation(RuntimeService.service, handlers, log));
  server.addService(ImageService.service, implementation(ImageService.service, handlers, log));
  await mkdir(path.dirname(options.socketPath), { recursive: true });
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(options.socketPath, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
  try {
    if (alive) throw new BosonError('INVALID_ARGUMENT', `something already answers on ${options.socketPath}`);
    await rm(options.socketPath, { force: true });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${options.socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
  } catch (err) {
    await streaming.close();
    throw err;
  }
  await chmod(options.socketPath, 0o660);
  return {
    socketPath: options.socketPath,
    close: async () => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await streaming.close();
      await rm(options.socketPath, { force: true });
    },
  };
}
