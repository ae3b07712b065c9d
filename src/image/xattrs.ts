/**
 * Setting extended attributes on the staging tree. Node has no setxattr, so a batch (one layer's worth) goes to one
 * `setfattr -h --restore=-` (Debian's attr package) in getfattr's dump format: `# file: <path>` with bytes outside
 * printable ASCII, space, '\\' and '=' escaped as \ooo, then `<name>=0x<hex value>` lines, then a blank line. -h: a
 * symlink's own attributes are set, never its target's.
 *
 * Which attributes are applied (`xattrVerdict`): the user., security. (file capabilities, security.selinux) and
 * trusted. namespaces, except overlayfs's own metadata, trusted.overlay.* and user.overlay.* (opaque, redirect,
 * origin, metacopy): copied into the root disk, which is overlayfs's lower layer in the guest, they would change
 * what the guest's root shows, so they are skipped. Other namespaces (system.*: ACLs, NFSv4 ACLs) are skipped, as
 * are user.* attributes on anything but files and directories (the kernel allows them nowhere else).
 *
 * When the staging filesystem refuses some (EOPNOTSUPP for a namespace it does not store; EPERM for trusted.* or
 * security.* other than file capabilities inside a rootless daemon's user namespace), setfattr sets the rest and
 * fails; then one getfattr over the batch tells exactly which are missing, without reading setfattr's messages.
 * Those are reported as refused and the build goes on: containerd (ENOTSUP) and Docker (ENOTSUP, EPERM) do the
 * same, with a log line; we report them to the user through the progress callback (see flatten.ts).
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { BosonError } from '../common/index.ts';
import type { Xattrs } from './tar-xattrs.ts';

const run = promisify(execFile);

/** Linux limits: XATTR_NAME_MAX and XATTR_SIZE_MAX. */
const NAME_MAX = 255;
const VALUE_MAX = 64 * 1024;

/** Attributes to set on one path of the staging tree. */
export interface XattrTarget {
  path: string;
  xattrs: Xattrs;
}

/** Why an attribute is not applied, or 'apply'. */
export type XattrVerdict = 'apply' | 'overlay-metadata' | 'namespace' | 'not-file-or-dir';

/**
 * Whether attribute `name` is set on an entry (see the module comment); `fileOrDir` is false for symlinks, devices
 * and fifos. IMAGE_INVALID for a name or value the kernel can never take (empty, too long, NUL byte).
 */
export function xattrVerdict(layer: string, entry: string, name: string, value: Buffer, fileOrDir: boolean): XattrVerdict {
  const bytes = Buffer.byteLength(name);
  if (bytes > NAME_MAX || value.length > VALUE_MAX || name.includes('\0') || /^(user|security|trusted)\.$/.test(name)) {
    throw new BosonError(
      'IMAGE_INVALID',
      `layer ${layer}: entry "${entry}" has an invalid extended attribute "${name.slice(0, 300)}" (${value.length} bytes)`,
      {
        details: { layer, entry },
      },
    );
  }
  if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) return 'overlay-metadata';
  if (name.startsWith('user.')) return fileOrDir ? 'apply' : 'not-file-or-dir';
  if (name.startsWith('security.') || name.startsWith('trusted.')) return 'apply';
  return 'namespace';
}

/** Escapes `s` as getfattr does in dump files: \ooo for space, '\\', '=' and bytes outside printable ASCII. */
export function dumpEscape(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x3d ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b);
  }
  return out;
}

/** Reverses dumpEscape (getfattr's output). */
function dumpUnescape(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const m = s[i] === '\\' ? /^[0-7]{3}/.exec(s.slice(i + 1, i + 4)) : null;
    if (m) {
      bytes.push(parseInt(m[0], 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i]!, 'latin1'));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The getfattr --dump text that sets `targets` with `setfattr --restore`. */
export function xattrDump(targets: XattrTarget[]): string {
  let out = '';
  for (const t of targets) {
    out += `# file: ${dumpEscape(t.path)}\n`;
    for (const [name, value] of t.xattrs) out += `${dumpEscape(name)}=0x${value.toString('hex')}\n`;
    out += '\n';
  }
  return out;
}

/** Runs `cmd` with `input` on stdin; its exit code and stderr. TOOL_FAILED when it cannot start. */
function runWithInput(cmd: string, args: string[], input: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    p.stdin.on('error', () => undefined);
    p.on('error', (err) => reject(toolError(cmd, err)));
    p.on('close', (code) => resolve({ code, stderr }));
    p.stdin.end(input);
  });
}

function toolError(cmd: string, err: unknown): BosonError {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === 'ENOENT' ? 'not installed (it is in the attr package: apt-get install attr)' : e.message;
  return new BosonError('TOOL_FAILED', `${cmd} failed: ${why}`, { cause: err, details: { tool: cmd } });
}

/** The attribute names each of `paths` has (getfattr -h -m -), in batches that keep the argument list short. */
async function listedNames(paths: string[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (let i = 0; i < paths.length; i += 500) {
    let stdout: string;
    try {
      ({ stdout } = await run('getfattr', ['-h', '--absolute-names', '-m', '-', '--', ...paths.slice(i, i + 500)], {
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, LC_ALL: 'C' },
      }));
    } catch (err) {
      const e = err as { stdout?: string; code?: unknown };
      if (typeof e.stdout !== 'string' || typeof e.code !== 'number') throw toolError('getfattr', err);
      stdout = e.stdout; // exit 1: some path had an error; the others are listed
    }
    let current: Set<string> | undefined;
    for (const line of stdout.split('\n')) {
      if (line.startsWith('# file: ')) out.set(dumpUnescape(line.slice(8)), (current = new Set()));
      else if (line !== '' && current) current.add(dumpUnescape(line));
    }
  }
  return out;
}

/**
 * Sets `targets`' attributes with one setfattr. Returns the attributes the filesystem refused (path, name), found
 * with getfattr when setfattr fails; TOOL_FAILED when setfattr or getfattr cannot run.
 */
export async function applyXattrs(targets: XattrTarget[]): Promise<Array<{ path: string; name: string }>> {
  if (targets.length === 0) return [];
  const r = await runWithInput('setfattr', ['-h', '--restore=-'], xattrDump(targets));
  if (r.code === 0) return [];
  const listed = await listedNames(targets.map((t) => t.path));
  const refused: Array<{ path: string; name: string }> = [];
  for (const t of targets) {
    const have = listed.get(t.path);
    for (const name of t.xattrs.keys()) if (!have?.has(name)) refused.push({ path: t.path, name });
  }
  if (refused.length === 0) {
    throw new BosonError(
      'TOOL_FAILED',
      `setfattr failed (exit ${r.code}) although every attribute is set: ${r.stderr.trim().slice(-2000)}`,
      { details: { tool: 'setfattr' } },
    );
  }
  return refused;
}
