/**
 * A container's CRI LinuxContainerSecurityContext as the port's PodContainerSpec fields: its user (run_as_user or
 * run_as_username, with run_as_group), supplementary groups, a read-only root, capabilities and no_new_privs. What the pod VM cannot enforce
 * is refused with a status saying why; what a micro-VM makes moot is accepted (see docs/design.md, "CRI").
 */
import * as grpc from '@grpc/grpc-js';
import type { PodContainerSpec } from '../machine/port/index.ts';
import { CriRefusal } from './errors.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- the proto's messages have no static types here */

const num = (v: unknown): number => Number(v ?? 0);

/** A profile (seccomp, AppArmor) that names a file of the node, which a pod VM cannot load. */
function refuseLocalhost(what: string, profile: any, legacy: unknown): void {
  if (profile?.profileType === 'Localhost' || (typeof legacy === 'string' && legacy.startsWith('localhost/')))
    throw new CriRefusal(
      grpc.status.UNIMPLEMENTED,
      `${what} profiles of the node (Localhost) are not supported: a pod VM loads none (RuntimeDefault and Unconfined are accepted; the VM is the boundary)`,
    );
}

/**
 * The port's user, groups, read-only root, capabilities and no_new_privs of a security context; refuses what Boson
 * cannot honour (privileged, ambient capabilities, the Strict groups policy, node-local seccomp or AppArmor
 * profiles). seccomp and AppArmor's RuntimeDefault apply no filter inside the VM; masked and read-only paths are not
 * applied (each container's /proc and /sys are its pod VM's).
 */
export function securityOf(sc: any): Pick<PodContainerSpec, 'user' | 'groups' | 'readOnlyRoot' | 'capAdd' | 'capDrop' | 'noNewPrivileges'> {
  if (!sc) return {};
  if (sc.privileged)
    throw new CriRefusal(grpc.status.UNIMPLEMENTED, 'privileged containers are not supported: the pod VM has no host to give access to');
  if ((sc.capabilities?.addAmbientCapabilities ?? []).length > 0)
    throw new CriRefusal(grpc.status.UNIMPLEMENTED, 'ambient capabilities are not supported: a non-root user of a pod container gets none');
  refuseLocalhost('seccomp', sc.seccomp, sc.seccompProfilePath);
  refuseLocalhost('AppArmor', sc.apparmor, sc.apparmorProfile);
  if (sc.supplementalGroupsPolicy === 'Strict' || sc.supplementalGroupsPolicy === 1)
    throw new CriRefusal(
      grpc.status.UNIMPLEMENTED,
      "supplemental_groups_policy Strict is not supported: the groups of the user's image /etc/group are always added (Merge)",
    );
  let user: string | undefined;
  if (sc.runAsUsername) user = sc.runAsUsername;
  else if (sc.runAsUser) user = String(num(sc.runAsUser.value));
  if (sc.runAsGroup) {
    if (user === undefined)
      throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'run_as_group needs run_as_user or run_as_username (as CRI says)');
    user += `:${num(sc.runAsGroup.value)}`;
  }
  const groups = (sc.supplementalGroups ?? []).map(num);
  if (groups.some((g: number) => !Number.isInteger(g) || g < 0 || g > 4294967294))
    throw new CriRefusal(grpc.status.INVALID_ARGUMENT, `supplemental_groups ${JSON.stringify(groups)}: each must be 0 to 4294967294`);
  if (groups.length > 32) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'at most 32 supplemental_groups are supported');
  return {
    ...(user !== undefined ? { user } : {}),
    ...(groups.length > 0 ? { groups } : {}),
    ...(sc.readonlyRootfs ? { readOnlyRoot: true } : {}),
    ...((sc.capabilities?.addCapabilities ?? []).length > 0 ? { capAdd: sc.capabilities.addCapabilities } : {}),
    ...((sc.capabilities?.dropCapabilities ?? []).length > 0 ? { capDrop: sc.capabilities.dropCapabilities } : {}),
    ...(sc.noNewPrivs ? { noNewPrivileges: true } : {}),
  };
}
