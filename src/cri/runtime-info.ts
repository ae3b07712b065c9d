/**
 * CRI's Version, Status, RuntimeConfig and UpdateRuntimeConfig: what the runtime is and whether it is ready. The
 * runtime is ready when the machine answers; the network is ready when the machine says new pods can get one (a
 * CNI configuration and its plugins; or, with CNI off, the machine's default network: see docs/design.md).
 */
import type { PodMachine } from '../machine/port/index.ts';
import type { CriHandler } from './handler.ts';

/** The runtime's name and the CRI version it speaks. */
export const RUNTIME_NAME = 'boson';
export const CRI_API_VERSION = 'v1';

/** The runtime handlers Boson offers (one: every pod is a micro-VM). */
export const RUNTIME_HANDLERS = ['', 'boson'];

/** The handlers of the runtime-wide RPCs; `version` is Boson's own (semver). */
export function runtimeInfoHandlers(machine: PodMachine, version: string): Record<string, CriHandler> {
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
        const net = await machine.pods.networkStatus(ctx);
        if (!net.ready) networkReady = { status: false, reason: net.reason, message: net.message };
      } catch (err) {
        networkReady = { status: false, reason: 'NetworkUnavailable', message: (err as Error).message };
      }
      const info: Record<string, string> = {};
      if (req.verbose)
        info.config = JSON.stringify({
          runtime: RUNTIME_NAME,
          version,
          podSandbox: 'one QEMU microvm per pod',
          network: await machine.pods.networkStatus(ctx).catch(() => null),
        });
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
    // The pod CIDR kubelet sends is accepted and unused: the CNI configuration list (or Boson's default one) has the pod subnet.
    UpdateRuntimeConfig: async () => ({}),
  };
}
