/**
 * CRI's Version, Status, RuntimeConfig and UpdateRuntimeConfig: what the runtime is and whether it is ready. The
 * runtime is ready when the machine answers; the network is ready when the machine has its default network (pods
 * join it: CNI is not used, see docs/design.md).
 */
import type { Machine } from '../machine/port/index.ts';
import type { CriHandler } from './handler.ts';

/** The runtime's name and the CRI version it speaks. */
export const RUNTIME_NAME = 'boson';
export const CRI_API_VERSION = 'v1';

/** The runtime handlers Boson offers (one: every pod is a micro-VM). */
export const RUNTIME_HANDLERS = ['', 'boson'];

/** The handlers of the runtime-wide RPCs; `version` is Boson's own (semver). */
export function runtimeInfoHandlers(machine: Machine, version: string): Record<string, CriHandler> {
  return {
    Version: async () => ({ version: '0.1.0', runtimeName: RUNTIME_NAME, runtimeVersion: version, runtimeApiVersion: CRI_API_VERSION }),
    Status: async (ctx, req) => {
      let runtimeReady = { status: true, reason: '', message: '' };
      let networkReady = { status: true, reason: '', message: '' };
      try {
        await machine.images.list(ctx);
      } catch (err) {
        runtimeReady = { status: false, reason: 'MachineUnavailable', message: (err as Error).message };
      }
      try {
        const networks = await machine.networks.list(ctx);
        if (!networks.some((n) => n.builtin))
          networkReady = { status: false, reason: 'NoDefaultNetwork', message: 'the machine has no default network for pods to join' };
      } catch (err) {
        networkReady = { status: false, reason: 'NetworkUnavailable', message: (err as Error).message };
      }
      const info: Record<string, string> = {};
      if (req.verbose) info.config = JSON.stringify({ runtime: RUNTIME_NAME, version, podSandbox: 'one QEMU microvm per pod', cni: false });
      return {
        status: {
          conditions: [
            { type: 'RuntimeReady', ...runtimeReady },
            { type: 'NetworkReady', ...networkReady },
          ],
        },
        info,
        runtimeHandlers: RUNTIME_HANDLERS.map((name) => ({ name, features: { recursiveReadOnlyMounts: false, userNamespaces: false } })),
        features: { supplementalGroupsPolicy: false, userNamespacesHostNetwork: false, mountOptions: false },
      };
    },
    // Boson uses cgroupfs directly (no systemd slices) for its QEMU processes.
    RuntimeConfig: async () => ({ linux: { cgroupDriver: 'CGROUPFS' } }),
    // The pod CIDR kubelet sends is for CNI, which Boson does not use yet: pods join the machine's default network.
    UpdateRuntimeConfig: async () => ({}),
  };
}
