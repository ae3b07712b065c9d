/**
 * The Linux capabilities of a pod's container inside its VM: the bounding set its processes get (root keeps it
 * whole after exec; other users get none, as under runc without ambient capabilities). The default set is
 * containerd's (what kubelet's containers get from it), changed by the spec's add and drop lists.
 */
import { BosonError } from '../common/index.ts';

/** Capability names of Linux 6.1 (without CAP_), by number. */
export const CAPABILITY_NAMES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
] as const;

/** containerd's default capabilities of a container (the ones a Kubernetes container has unless told otherwise). */
export const DEFAULT_CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
];

/** A capability's number by name ("NET_ADMIN" or "CAP_NET_ADMIN", any case); INVALID_ARGUMENT for an unknown one. */
function capNumber(name: string): number {
  const n = CAPABILITY_NAMES.indexOf(name.toUpperCase().replace(/^CAP_/, '') as (typeof CAPABILITY_NAMES)[number]);
  if (n < 0) throw new BosonError('INVALID_ARGUMENT', `unknown capability ${JSON.stringify(name)}`);
  return n;
}

const ALL = (1n << BigInt(CAPABILITY_NAMES.length)) - 1n;
const isAll = (name: string): boolean => /^(CAP_)?ALL$/i.test(name);

/**
 * The bounding set (bit N: capability N) of the default set changed as containerd does it: "ALL" in `add` gives
 * every capability, "ALL" in `drop` none, then the named ones of `add` are added and those of `drop` removed
 * (drop ALL, add NET_BIND_SERVICE leaves that one).
 */
export function capabilityMask(add: readonly string[] = [], drop: readonly string[] = []): bigint {
  let mask = DEFAULT_CAPABILITIES.reduce((m, name) => m | (1n << BigInt(capNumber(name))), 0n);
  if (add.some(isAll)) mask = ALL;
  if (drop.some(isAll)) mask = 0n;
  for (const name of add.filter((n) => !isAll(n))) mask |= 1n << BigInt(capNumber(name));
  for (const name of drop.filter((n) => !isAll(n))) mask &= ~(1n << BigInt(capNumber(name)));
  return mask;
}
