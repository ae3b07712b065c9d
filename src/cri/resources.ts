/**
 * A container's CRI LinuxContainerResources as the port's PodContainerResources (limits inside the pod VM, in a
 * cgroup v2 of the guest per container), and UpdateContainerResources. What the guest cannot enforce is refused
 * with a status saying why; what does not apply in a VM is accepted and ignored (see docs/design.md, "CRI").
 */
import * as grpc from '@grpc/grpc-js';
import type { PodMachine, PodContainerResources } from '../machine/port/index.ts';
import { CriRefusal } from './errors.ts';
import type { CriHandler } from './handler.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- the proto's messages have no static types here */

const num = (v: unknown): number => Number(v ?? 0);

/**
 * The port's limits of a LinuxContainerResources (undefined when it sets none). cpu_period, cpu_quota, cpu_shares,
 * memory_limit_in_bytes and unified's pids.max are applied; oom_score_adj and memory_swap_limit_in_bytes are
 * accepted and ignored (the guest has no swap; its OOM killer sees the container's memory.max); cpusets, huge pages
 * and other unified keys are refused.
 */
export function containerResourcesOf(res: any): PodContainerResources | undefined {
  if (!res) return undefined;
  if (res.cpusetCpus || res.cpusetMems)
    throw new CriRefusal(
      grpc.status.UNIMPLEMENTED,
      "cpuset_cpus and cpuset_mems are not supported: the pod VM's guest kernel has no cpuset controller (the pod's vCPUs are its VM's)",
    );
  for (const h of res.hugepageLimits ?? [])
    if (num(h.limit) > 0)
      throw new CriRefusal(grpc.status.UNIMPLEMENTED, `hugepage limits are not supported: a pod VM has no huge pages (${h.pageSize})`);
  let pids = 0;
  for (const [key, value] of Object.entries((res.unified ?? {}) as Record<string, string>)) {
    if (key !== 'pids.max')
      throw new CriRefusal(
        grpc.status.UNIMPLEMENTED,
        `the unified cgroup setting ${key} is not supported: Boson applies cpu_period, cpu_quota, cpu_shares, memory_limit_in_bytes and unified pids.max`,
      );
    if (value !== 'max' && !/^[1-9]\d{0,9}$/.test(value))
      throw new CriRefusal(
        grpc.status.INVALID_ARGUMENT,
        `unified pids.max must be "max" or a positive number, not ${JSON.stringify(value)}`,
      );
    pids = value === 'max' ? 0 : Number(value);
  }
  const negative = ['cpuPeriod', 'cpuQuota', 'cpuShares', 'memoryLimitInBytes'].find(
    (k) => num(res[k]) < 0 && !(k === 'cpuQuota' && num(res[k]) === -1),
  );
  if (negative) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, `LinuxContainerResources.${negative} must not be negative`);
  if (num(res.cpuPeriod) > 1_000_000 || (num(res.cpuPeriod) > 0 && num(res.cpuPeriod) < 1000))
    throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'cpu_period must be 1000 to 1000000 microseconds');
  if (num(res.cpuShares) > 262_144) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'cpu_shares must be at most 262144');
  const out: PodContainerResources = {
    ...(num(res.cpuPeriod) > 0 ? { cpuPeriodUs: num(res.cpuPeriod) } : {}),
    ...(num(res.cpuQuota) > 0 ? { cpuQuotaUs: num(res.cpuQuota) } : {}),
    ...(num(res.cpuShares) > 0 ? { cpuShares: num(res.cpuShares) } : {}),
    ...(num(res.memoryLimitInBytes) > 0 ? { memoryBytes: num(res.memoryLimitInBytes) } : {}),
    ...(pids > 0 ? { pids } : {}),
  };
  return Object.keys(out).length > 0 ? out : undefined;
}

/** UpdateContainerResources: the container's new limits apply now in its pod VM (a created one's when it starts). */
export function resourceHandlers(machine: PodMachine): Record<string, CriHandler> {
  return {
    UpdateContainerResources: async (ctx, req) => {
      if (!req.containerId) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'container_id is required');
      if (req.windows) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'Windows resources do not apply to a Linux pod VM');
      await machine.pods.updateContainerResources(ctx, req.containerId, containerResourcesOf(req.linux) ?? {});
      return {};
    },
  };
}

/** CRI's ContainerResources of a container's limits, as ContainerStatus reports them (null without limits). */
export function criResourcesOf(r: PodContainerResources | undefined): Record<string, unknown> | null {
  if (!r) return null;
  return {
    linux: {
      cpuPeriod: String(r.cpuPeriodUs ?? 0),
      cpuQuota: String(r.cpuQuotaUs ?? 0),
      cpuShares: String(r.cpuShares ?? 0),
      memoryLimitInBytes: String(r.memoryBytes ?? 0),
      ...(r.pids ? { unified: { 'pids.max': String(r.pids) } } : {}),
    },
  };
}
