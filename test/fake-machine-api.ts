/**
 * A machine for the controller's tests: the machine's real REST API (buildApi) over a fake runtime (no micro-VMs),
 * its state in `dir` with the demo busybox image imported. Not listening yet: the caller serves `app` where it needs.
 */
import type { FastifyInstance } from 'fastify';
import { ImageStore } from '../src/image/index.ts';
import { buildApi } from '../src/machine/api/server.ts';
import { FakeVmm } from '../src/machine/fake-vmm.ts';
import { fakeRuntime } from '../src/machine/fake-runtime.ts';
import { openStateStore } from '../src/machine/store/sqlite.ts';
import { BUSYBOX_LAYOUT } from './helpers.ts';

/** The fake machine's runtime and its API. */
export interface FakeMachineApi {
  runtime: ReturnType<typeof fakeRuntime>;
  app: FastifyInstance;
}

/** Imports busybox into `dir`, starts a fake runtime there and builds its REST API. */
export async function fakeMachineApi(dir: string): Promise<FakeMachineApi> {
  const store = openStateStore(dir);
  await new ImageStore(store, dir).importPath(BUSYBOX_LAYOUT);
  store.close();
  const runtime = fakeRuntime({ stateDir: dir, vmm: new FakeVmm(), detached: true });
  await runtime.init();
  return { runtime, app: await buildApi(runtime) };
}
