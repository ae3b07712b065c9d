/**
 * Who may do what, pure: the rank of each role, what a principal's grant gives it over a scope (the system, a
 * tenant, a project), and the one decision every route makes from its declared policy. A principal that has no
 * standing at all in a tenant or project is told the object does not exist (404: names of other tenants never
 * leak); one that can see it but lacks the role gets PERMISSION_DENIED (403).
 */
import { BosonError, type ErrorCode } from '../../common/index.ts';
import type { Grant, Principal, Role } from './schemas.ts';

/** The rank of each role (higher may do all a lower one may, over the same scope). */
export const ROLE_RANK: Record<Role, number> = { viewer: 1, member: 2, 'tenant-admin': 3, 'system-admin': 4 };

/** What a route works on. */
export type Scope = { kind: 'system' } | { kind: 'tenant'; tenant: string } | { kind: 'project'; tenant: string; project: string };

/**
 * The role `grant` gives over `scope`, or null when it has no standing there. A project's member or viewer sees
 * its tenant as a viewer (it may read the tenant, never write it), and nothing of the tenant's other projects.
 */
export function roleOver(grant: Grant, scope: Scope): Role | null {
  if (grant.role === 'system-admin') return 'system-admin';
  if (scope.kind === 'system') return null;
  if (grant.tenant !== scope.tenant) return null;
  if (grant.role === 'tenant-admin') return 'tenant-admin';
  if (scope.kind === 'tenant') return 'viewer';
  return grant.project === scope.project ? grant.role : null;
}

/** True when `principal` may see objects of `scope` at all. */
export function canSee(principal: Principal, scope: Scope): boolean {
  return roleOver(principal.grant, scope) !== null;
}

/** The NotFound code for an object of `scope` that the principal may not know about. */
export function notFoundCode(scope: Scope): ErrorCode {
  return scope.kind === 'project' ? 'PROJECT_NOT_FOUND' : 'TENANT_NOT_FOUND';
}

/**
 * Requires `role` over `scope`: no standing → `notFound` (the error the missing object would give), standing but
 * a lower role → PERMISSION_DENIED.
 */
export function requireRole(principal: Principal, role: Role, scope: Scope, notFound: () => BosonError): void {
  const has = roleOver(principal.grant, scope);
  if (has === null) {
    if (scope.kind === 'system') throw denied(principal, role, scope);
    throw notFound();
  }
  if (ROLE_RANK[has] < ROLE_RANK[role]) throw denied(principal, role, scope);
}

function denied(principal: Principal, role: Role, scope: Scope): BosonError {
  const where =
    scope.kind === 'system'
      ? 'the system'
      : scope.kind === 'tenant'
        ? `tenant ${scope.tenant}`
        : `project ${scope.tenant}/${scope.project}`;
  return new BosonError('PERMISSION_DENIED', `permission denied: ${principal.user} (${principal.grant.role}) is not ${role} of ${where}`, {
    details: { user: principal.user, role: principal.grant.role, required: role },
  });
}

/** The scope a grant is over. */
export function scopeOfGrant(grant: Grant): Scope {
  if (grant.role === 'system-admin') return { kind: 'system' };
  if (grant.role === 'tenant-admin') return { kind: 'tenant', tenant: grant.tenant };
  return { kind: 'project', tenant: grant.tenant, project: grant.project };
}

/** The role needed to issue a token with `grant`: system-admin for system grants, else tenant-admin of its tenant. */
export function roleToIssue(grant: Grant): { role: Role; scope: Scope } {
  if (grant.role === 'system-admin') return { role: 'system-admin', scope: { kind: 'system' } };
  return { role: 'tenant-admin', scope: { kind: 'tenant', tenant: grant.tenant } };
}
