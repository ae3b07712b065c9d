/**
 * Public surface of src/cri: the Kubernetes CRI personality (runtime.v1 over gRPC on `<run dir>/cri.sock`), where
 * each pod sandbox is one micro-VM of the machine (the port's MachinePods).
 */
import path from 'node:path';
import type { BosonPaths } from '../common/index.ts';

export { startCriServer, criHandlers, type CriServer, type CriServerOptions } from './server.ts';
export { criServices, CRI_PROTO_PATH, CRI_LOADER_OPTIONS, type CriServices } from './proto.ts';
export { REFUSED_RPCS, type Refusal } from './refusals.ts';

/** Where the CRI server listens by default: `<run dir>/cri.sock`. */
export function criSocketPath(paths: BosonPaths): string {
  return path.join(paths.runDir, 'cri.sock');
}
