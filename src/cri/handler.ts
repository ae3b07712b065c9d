/** The shape of one served CRI RPC: the request as the proto loader decodes it, the response as it encodes it. */
import type { RequestContext } from '../machine/port/index.ts';

/** A unary RPC's implementation; a thrown BosonError or CriRefusal becomes its gRPC status (src/cri/errors.ts). */
// The messages are the proto's, decoded at run time by @grpc/proto-loader: they have no static types here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type CriHandler = (ctx: RequestContext, request: any) => Promise<unknown>;
