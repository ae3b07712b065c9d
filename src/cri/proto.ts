/**
 * The CRI contract (Kubernetes runtime.v1: RuntimeService and ImageService), loaded as it is from api/api.proto with
 * @grpc/proto-loader. The server and the test client load it the same way, so both speak exactly the proto's wire
 * format: fields in lowerCamelCase, 64-bit integers as decimal strings, enums by name, defaults filled in.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PACKAGE_ROOT } from '../common/index.ts';

/** Where the proto lives in this package (from the sources and from the CLI's bundle alike). */
export const CRI_PROTO_PATH = path.join(PACKAGE_ROOT, 'src', 'cri', 'api', 'api.proto');

/** How the proto's messages map to JavaScript objects (the same for server and client). */
export const CRI_LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

/** The two services of runtime.v1, as grpc-js service definitions (and client constructors). */
export interface CriServices {
  RuntimeService: grpc.ServiceClientConstructor;
  ImageService: grpc.ServiceClientConstructor;
}

let loaded: CriServices | undefined;

/** Loads the proto once and returns its services. */
export function criServices(): CriServices {
  if (!loaded) {
    const definition = protoLoader.loadSync(CRI_PROTO_PATH, CRI_LOADER_OPTIONS);
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: CriServices } };
    loaded = { RuntimeService: pkg.runtime.v1.RuntimeService, ImageService: pkg.runtime.v1.ImageService };
  }
  return loaded;
}
