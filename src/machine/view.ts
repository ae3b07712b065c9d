/** The API view of a container record: what a caller may see, not how the store keeps it. */
import type { Container } from './port/index.ts';
import type { ContainerRecord } from './containers.ts';

/** The Container of a record (drops the bookkeeping: which process supervises it, whether a user stopped it). */
export function containerView(r: ContainerRecord): Container {
  const view: Container = {
    id: r.id,
    name: r.name,
    image: r.image,
    imageId: r.imageId,
    created: r.created,
    config: {
      argv: r.config.argv,
      env: r.config.env,
      cwd: r.config.cwd,
      user: r.config.user,
      hostname: r.config.hostname,
      tty: r.config.tty,
      openStdin: r.config.openStdin,
      labels: r.config.labels ?? {},
    },
    resources: { memoryMiB: r.resources.memoryMiB, cpus: r.resources.cpus },
    autoRemove: r.autoRemove,
    restartPolicy: r.restartPolicy,
    ...(r.log ? { log: r.log } : {}),
    restartCount: r.restartCount,
    state: r.state,
    vmPid: r.vmPid,
    exitCode: r.exitCode,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    error: r.error,
    mounts: r.mounts ?? [],
    network: r.network ?? 'none',
    ports: r.ports ?? [],
    endpoint: r.endpoint ?? null,
  };
  if (r.aliases !== undefined && r.aliases.length > 0) view.aliases = r.aliases;
  if (r.ipv4Address !== undefined) view.ipv4Address = r.ipv4Address;
  if (r.links !== undefined && r.links.length > 0) view.links = r.links.map((l) => ({ ...l }));
  if (r.pausedReason !== undefined) view.pausedReason = r.pausedReason;
  if (r.state === 'suspended' && r.suspendedAt !== undefined) view.suspendedAt = r.suspendedAt;
  return view;
}
