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
