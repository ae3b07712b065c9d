/**
 * A runtime for fast tests: the composition root's parts over a real state directory (SQLite, the image store,
 * volumes, the services of the port) with the fake VMM (src/machine/fake-vmm.ts) and no networks. Tests use it
 * instead of building the parts themselves, so that the runtime's parts change in one place.
 */
import path from 'node:path';
import { PACKAGE_ROOT } from '../common/index.ts';
import type { BootBundle } from '../guest/index.ts';
import { ImageStore } from '../image/index.ts';
import { ContainerRegistry } from './containers.ts';
import { EventService } from './event-service.ts';
import type { FakeVmm } from './fake-vmm.ts';
import { ImageService } from './images.ts';
import { NetworkService } from './network-service.ts';
import { MachineRuntime } from './runtime.ts';
import { openStateStore } from './store/sqlite.ts';
import { VolumeService, volumeUsersAmong } from './volume-service.ts';
import { VolumeManager } from './volumes/index.ts';

/** A boot bundle nothing reads (the fake VMM boots no kernel). */
export const FAKE_BUNDLE: BootBundle = {
  kernelPath: '/fake/vmlinuz',
  kernelRelease: 'fake',
  initramfsPath: '/fake/initramfs',
  initPath: '/fake/init',
  modules: [],
  acpi: false,
  drivers: [],
};

/** A runtime over `stateDir` and `vmm`, hosted as a daemon hosts it when `detached` (not initialised yet). */
export function fakeRuntime(options: {
  stateDir: string;
  vmm: FakeVmm;
  detached: boolean;
  bootTimeoutMs?: number;
  bootBundle?: () => Promise<BootBundle>;
}): MachineRuntime {
  const { stateDir } = options;
  const paths = { stateDir, runDir: path.join(stateDir, 'run'), guestDir: path.join(PACKAGE_ROOT, 'build', 'guest'), rootless: false };
  const store = openStateStore(stateDir);
  const registry = new ContainerRegistry(store, stateDir);
  const images = new ImageStore(store, stateDir);
  const volumes = new VolumeManager(store, stateDir);
  const runtime: MachineRuntime = new MachineRuntime(
    { paths, detached: options.detached, virtiofsd: '/usr/lib/qemu/virtiofsd', bootTimeoutMs: options.bootTimeoutMs },
    {
      registry,
      images,
      volumes,
      networks: null,
      store,
      vmm: options.vmm,
      bootBundle: options.bootBundle ?? (async () => FAKE_BUNDLE),
      imageService: new ImageService(images, {
        spoolDir: path.join(stateDir, 'tmp'),
        imagesInUse: async () => new Set((await registry.list()).map((r) => r.imageId)),
      }),
      volumeService: new VolumeService(volumes, async (name) => volumeUsersAmong(await registry.list(), name)),
      networkService: new NetworkService(null, {
        list: () => registry.list(),
        setNetwork: (ref, network, check, options) => runtime.setContainerNetwork(ref, network, check, options),
      }),
      eventService: new EventService(registry),
    },
  );
  return runtime;
}
