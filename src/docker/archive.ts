/**
 * `docker cp`, both ways, through the container's micro-VM: the container's files live on disks inside the guest, so
 * stat, archive and extract are busybox `stat` and `tar` run there (exec as root), streamed to and from the client.
 * A container that is not running is served the same way by a short-lived helper micro-VM booted from its disks
 * (offline execs): the host never mounts or parses the filesystems the guest wrote (docs/security.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path/posix';
import { type Container, type MachineContainers } from '../machine/port/index.ts';
import { DockerError } from './errors.ts';
import { guestExec } from './streams.ts';

const NOT_FOUND = 44;

/** Go's os.FileMode bits for a Unix st_mode (Docker's PathStat mode is a Go FileMode). */
export function goFileMode(unixMode: number): number {
  let mode = unixMode & 0o777;
  switch (unixMode & 0o170000) {
    case 0o040000:
      mode += 2 ** 31;
      break; // ModeDir
    case 0o120000:
      mode += 2 ** 27;
      break; // ModeSymlink
    case 0o010000:
      mode += 2 ** 25;
      break; // ModeNamedPipe
    case 0o140000:
      mode += 2 ** 24;
      break; // ModeSocket
    case 0o020000:
      mode += 2 ** 26 + 2 ** 21;
      break; // ModeDevice | ModeCharDevice
    case 0o060000:
      mode += 2 ** 26;
      break; // ModeDevice
    default:
  }
  if (unixMode & 0o4000) mode += 2 ** 23;
  if (unixMode & 0o2000) mode += 2 ** 22;
  if (unixMode & 0o1000) mode += 2 ** 20;
  return mode;
}

function absolute(record: Container, p: string): string {
  return path.resolve(record.config.cwd || '/', p);
}

const notFound = (p: string, record: Container): DockerError =>
  new DockerError(404, `Could not find the file ${p} in container ${record.name}`);

/** The base64 JSON of Docker's X-Docker-Container-Path-Stat header for a path in the container; 404 if absent. */
export async function archiveStat(service: MachineContainers, record: Container, p: string): Promise<string> {
  const abs = absolute(record, p);
  const r = await guestExec(
    service,
    record.id,
    ['sh', '-c', `stat -c '%s %f %Y' "$1" 2>/dev/null || exit ${NOT_FOUND}; readlink "$1" || true`, 'sh', abs],
    { offline: true },
  );
  if (r.code === NOT_FOUND) throw notFound(p, record);
  if (r.code !== 0) throw new DockerError(500, `stat ${p} in the container failed (exit ${r.code}): ${r.stderr.trim()}`);
  const [first = '', link = ''] = r.stdout.toString('utf8').split('\n');
  const [size, hex, mtime] = first.trim().split(' ');
  const stat = {
    name: path.basename(abs) || '/',
    size: Number(size),
    mode: goFileMode(parseInt(hex ?? '0', 16)),
    mtime: new Date(Number(mtime) * 1000).toISOString().replace('.000Z', 'Z'),
    linkTarget: link.trim(),
  };
  return Buffer.from(JSON.stringify(stat)).toString('base64');
}

/** `GET /containers/{id}/archive`: a tar of the path (its base name at the top), with the stat header. */
export async function archiveGet(service: MachineContainers, record: Container, p: string, res: ServerResponse): Promise<void> {
  const stat = await archiveStat(service, record, p);
  const abs = absolute(record, p);
  const dir = path.dirname(abs);
  const base = abs === '/' ? '.' : path.basename(abs);
  res.writeHead(200, { 'Content-Type': 'application/x-tar', 'X-Docker-Container-Path-Stat': stat });
  const r = await guestExec(service, record.id, ['tar', 'cf', '-', '-C', dir, base], {
    onStdout: (d) => void (res.destroyed || res.write(d)),
    offline: true,
  });
  if (r.code !== 0) {
    // The tar is cut short: the client sees a truncated archive, as Docker's does on a read error.
    res.destroy();
    return;
  }
  res.end();
}

/** `PUT /containers/{id}/archive`: extracts the request's tar into the directory `p` (404 if it does not exist). */
export async function archivePut(
  service: MachineContainers,
  record: Container,
  p: string,
  req: IncomingMessage,
  copyUidGid = false,
): Promise<void> {
  const abs = absolute(record, p);
  const tarFlags = copyUidGid ? 'xf' : 'xof';
  const r = await guestExec(
    service,
    record.id,
    ['sh', '-c', `[ -d "$1" ] || exit ${NOT_FOUND}; exec tar ${tarFlags} - -C "$1"`, 'sh', abs],
    { stdin: req as AsyncIterable<Buffer>, offline: true },
  );
  req.resume();
  if (r.code === NOT_FOUND) throw notFound(p, record);
  if (r.code !== 0) throw new DockerError(400, `extracting into ${p} failed: ${r.stderr.trim() || `tar exited ${r.code}`}`);
}
