/**
 * The machine port's conformance suite (src/machine/port/conformance.ts) run twice: against the runtime itself with
 * the fake VMM, and through the REST server (buildApi over the same kind of runtime, on a UNIX socket in a temporary
 * directory) against the typed client RemoteMachine. Both must pass the same suite.
 */
import { before, after } from 'node:test';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../common/index.ts';
import { ImageStore } from '../../image/index.ts';
import { FakeVmm } from '../fake-vmm.ts';
import { fakeRuntime } from '../fake-runtime.ts';
import { machineConformance } from '../port/conformance.ts';
import { openStateStore } from '../store/sqlite.ts';
import { MachineClient } from './client.ts';
import { RemoteMachine } from './remote.ts';
import { buildApi } from './server.ts';

const LAYOUT = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');
const dirs: string[] = [];

before(async () => {
  await access(path.join(LAYOUT, 'index.json'));
});
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A runtime hosted as a daemon hosts it, over a new state directory with the demo image imported. */
async function newRuntime(): Promise<{ runtime: ReturnType<typeof fakeRuntime>; stateDir: string }> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'boson-conf-'));
  dirs.push(stateDir);
  const store = openStateStore(stateDir);
  await new ImageStore(store, stateDir).importPath(LAYOUT);
  store.close();
  const runtime = fakeRuntime({ stateDir, vmm: new FakeVmm(), detached: true });
  await runtime.init();
  return { runtime, stateDir };
}

machineConformance('runtime', {
  async open() {
    const { runtime } = await newRuntime();
    return { machine: runtime.machine, cleanup: () => runtime.close() };
  },
});

machineConformance('REST + RemoteMachine', {
  async open() {
    const { runtime, stateDir } = await newRuntime();
    const app = await buildApi(runtime);
    const socketPath = path.join(stateDir, 'api.sock');
    await app.listen({ path: socketPath });
    return {
      machine: new RemoteMachine(new MachineClient(socketPath)),
      async cleanup() {
        await app.close();
        await runtime.close();
      },
    };
  },
});
