/**
 * Which host directories a container may have bind-mounted: Boson's daemon runs as root and serves the directory
 * with root's rights, so a bind mount is a grant. A host path is canonicalised (symlinks resolved: a link cannot
 * smuggle a protected path in), must exist (nothing is created on the host as root on a guest's behalf), must be
 * free of characters that would change the meaning of the VMM's options, must not be or lie under a protected
 * path, and, when an allow-list is configured, must lie under one of its entries.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../common/index.ts';

/** The policy: allowed prefixes (null: anywhere not protected) and protected paths. */
export interface BindPolicy {
  allow: string[] | null;
  protect: string[];
}

/** Paths no container gets from the host, whatever the allow-list says (besides Boson's own directories). */
export const PROTECTED_PATHS = ['/etc', '/proc', '/sys', '/dev', '/boot', '/run', '/var/run', '/root', '/lib/modules'];

/** The default policy for a host whose Boson directories are `own`: no allow-list, the protected paths and `own`. */
export function defaultBindPolicy(own: string[], allow: string[] | null = null): BindPolicy {
  return { allow, protect: [...PROTECTED_PATHS, ...own] };
}

const within = (p: string, dir: string): boolean => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);

/** The canonical host path of a bind mount's source, or BIND_NOT_ALLOWED / INVALID_ARGUMENT saying why not. */
export async function checkBindSource(source: string, policy: BindPolicy): Promise<string> {
  if (!path.isAbsolute(source))
    throw new BosonError('INVALID_ARGUMENT', `bind mount source must be an absolute path: ${JSON.stringify(source)}`);
  let real: string;
  try {
    real = await realpath(source);
  } catch (cause) {
    throw new BosonError(
      'INVALID_ARGUMENT',
      `bind mount source ${source} does not exist: create it first (Boson does not create host directories for containers)`,
      { cause },
    );
  }
  if (/[,\n\0]/.test(real))
    throw new BosonError(
      'INVALID_ARGUMENT',
      `bind mount source ${JSON.stringify(real)} holds a comma, newline or NUL, which Boson does not pass to its VMM`,
    );
  if (!(await stat(real)).isDirectory())
    throw new BosonError('INVALID_ARGUMENT', `bind mount source ${real} is not a directory (only directories are shared)`);
  const refused = (why: string): BosonError =>
    new BosonError('BIND_NOT_ALLOWED', `bind mount of ${real}${real === path.resolve(source) ? '' : ` (${source})`} refused: ${why}`, {
      details: { source: real },
    });
  if (real === '/') throw refused("the host's root directory is never shared");
  const protectedBy = policy.protect.map((p) => path.resolve(p)).find((p) => within(real, p) || within(p, real));
  if (protectedBy) throw refused(`${protectedBy} is protected`);
  if (policy.allow && !policy.allow.some((a) => within(real, path.resolve(a))))
    throw refused(`it is outside the allowed directories (${policy.allow.join(', ')}; set BOSON_BIND_ALLOW)`);
  return real;
}
