/**
 * The cgroups of a pod's containers inside its micro-VM (cgroup v2 of the guest kernel, mounted by boson-init at
 * /sys/fs/cgroup): each container's processes join `boson/<container id>` (EXEC_CGROUP), and its limits are
 * written there, and its usage read, by shell scripts the host runs in the pod VM's own root (busybox). This module
 * says which files hold which limit and which usage, and nothing else.
 */
import type { PodContainerResources, PodContainerStats } from './port/index.ts';

/** The exit code of a limits script when the pod VM's kernel has no cgroup v2. */
export const CGROUPS_MISSING_EXIT = 3;

/** The controllers a container's cgroup gets. */
const CONTROLLERS = '+cpu +memory +pids';

/** The cgroup of a container, relative to the guest's cgroup root. */
export function containerCgroup(containerId: string): string {
  return `boson/${containerId}`;
}

/** cgroup v2's cpu.weight (1..10000) of CPU shares (2..262144), as runc and crun convert them. */
export function cpuWeightOf(shares: number): number {
  const s = Math.min(262_144, Math.max(2, shares));
  return 1 + Math.floor(((s - 2) * 9999) / 262_142);
}

/** The files of a container's cgroup and what is written to them for `r` (absent or 0: no limit). */
export function cgroupFiles(r: PodContainerResources): Array<[file: string, value: string]> {
  const period = r.cpuPeriodUs && r.cpuPeriodUs > 0 ? r.cpuPeriodUs : 100_000;
  return [
    ['cpu.max', `${r.cpuQuotaUs && r.cpuQuotaUs > 0 ? Math.max(1000, r.cpuQuotaUs) : 'max'} ${period}`],
    ['cpu.weight', String(r.cpuShares && r.cpuShares > 0 ? cpuWeightOf(r.cpuShares) : 100)],
    ['memory.max', r.memoryBytes && r.memoryBytes > 0 ? String(r.memoryBytes) : 'max'],
    ['pids.max', r.pids && r.pids > 0 ? String(r.pids) : 'max'],
  ];
}

/** A script (busybox sh, in the pod VM's root) that makes the container's cgroup if missing and writes its limits. */
export function cgroupScript(containerId: string, r: PodContainerResources): string {
  const dir = `/sys/fs/cgroup/${containerCgroup(containerId)}`;
  return [
    `[ -f /sys/fs/cgroup/cgroup.controllers ] || exit ${CGROUPS_MISSING_EXIT}`,
    'set -e',
    `echo '${CONTROLLERS}' > /sys/fs/cgroup/cgroup.subtree_control`,
    'mkdir -p /sys/fs/cgroup/boson',
    `echo '${CONTROLLERS}' > /sys/fs/cgroup/boson/cgroup.subtree_control`,
    `mkdir -p ${dir}`,
    ...cgroupFiles(r).map(([file, value]) => `echo '${value}' > ${dir}/${file}`),
  ].join('\n');
}

/** A script that kills every process left in the container's cgroup (nothing when it does not exist). */
export function killCgroupScript(containerId: string): string {
  const dir = `/sys/fs/cgroup/${containerCgroup(containerId)}`;
  return `[ -f ${dir}/cgroup.kill ] && echo 1 > ${dir}/cgroup.kill; true`;
}

/** A script that kills what is left in the container's cgroup and removes it (nothing when it does not exist). */
export function removeCgroupScript(containerId: string): string {
  const dir = `/sys/fs/cgroup/${containerCgroup(containerId)}`;
  return [
    `[ -d ${dir} ] || exit 0`,
    `echo 1 > ${dir}/cgroup.kill`,
    `for i in 1 2 3 4 5 6 7 8 9 10; do rmdir ${dir} 2>/dev/null && exit 0; sleep 0.1; done`,
    'exit 1',
  ].join('\n');
}

/**
 * A script that prints one line per container: its cgroup's CPU time (cpu.stat usage_usec), memory.current and
 * inactive file pages (every process of the container, exec sessions and children too); without a cgroup (a guest
 * kernel without cgroup v2), its main process's /proc stat and statm.
 */
export function statsScript(containers: Array<{ id: string; pid: number }>): string {
  return containers
    .map(({ id, pid }) => {
      const d = `/sys/fs/cgroup/${containerCgroup(id)}`;
      return (
        `if [ -f ${d}/cpu.stat ]; then echo "${id} cg $(grep '^usage_usec ' ${d}/cpu.stat | cut -d' ' -f2) $(cat ${d}/memory.current) ` +
        `$(grep '^inactive_file ' ${d}/memory.stat | cut -d' ' -f2)"; else echo "${id} $(cat /proc/${pid}/stat) | $(cat /proc/${pid}/statm)"; fi`
      );
    })
    .join('\n');
}

/**
 * The usage in statsScript's output: CPU time, and as memory the working set as kubelet counts it (usage less
 * inactive file pages); from /proc, the main process's user and system ticks (100 Hz) and resident pages.
 */
export function parseStats(text: string, timestampNs: string): PodContainerStats[] {
  const out: PodContainerStats[] = [];
  for (const line of text.split('\n')) {
    const cg = /^([0-9a-f]{64}) cg (\d+) (\d+) (\d+)$/.exec(line);
    if (cg) {
      out.push({ id: cg[1]!, timestampNs, cpuNs: Number(cg[2]) * 1000, memoryBytes: Math.max(0, Number(cg[3]) - Number(cg[4])) });
      continue;
    }
    const m = /^([0-9a-f]{64}) .*\) (.*) \| \d+ (\d+)/.exec(line);
    if (!m) continue;
    const fields = m[2]!.split(' ');
    const ticks = Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
    out.push({ id: m[1]!, timestampNs, cpuNs: ticks * 10_000_000, memoryBytes: Number(m[3]) * 4096 });
  }
  return out;
}
