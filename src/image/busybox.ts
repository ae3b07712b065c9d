/**
 * A real, minimal OCI image built from a static busybox binary (Debian's busybox-static /bin/busybox), for tests,
 * benchmarks and first runs without a registry.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { BosonError } from '../common/index.ts';
import { digestHex } from './content-store.ts';
import { buildOciLayout, OCI_LAYOUT_FILE, saveOciLayout, makeTar, type TarEntrySpec } from './oci-writer.ts';
import { normaliseReference } from './reference.ts';
import { tempName } from './tempfiles.ts';

const run = promisify(execFile);

/** The fixed timestamp of every entry and of the config's "created": makes the digests stable. */
export const BUSYBOX_EPOCH = new Date('2024-01-01T00:00:00Z');

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`;

const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
`;

/**
 * Writes an OCI image layout at `outDir`: one gzip layer with /bin/busybox, a /bin symlink per applet
 * (`busybox --list`), /etc/passwd and /etc/group, /tmp (1777), /root, /home, /var, /dev, /proc, /sys; config
 * Cmd ["sh"] and the usual PATH; index.json names it `tag` (default "busybox:latest", normalised, i.e.
 * "localhost/busybox:latest") in org.opencontainers.image.ref.name. Deterministic: the same binary gives the same
 * manifest digest. Idempotent: when `outDir` already holds exactly this layout nothing is written; otherwise the
 * layout is built in a temporary directory beside `outDir` and renamed into place.
 */
export async function writeBusyboxImageLayout(opts: { busybox: string; outDir: string; tag?: string }): Promise<void> {
  let binary: Buffer;
  let applets: string[];
  try {
    binary = await fs.readFile(opts.busybox);
    const { stdout } = await run(opts.busybox, ['--list'], { maxBuffer: 1024 * 1024 });
    applets = [
      ...new Set(
        stdout
          .split('\n')
          .map((s) => s.trim())
          .filter((s) => /^[A-Za-z0-9._[\]-]+$/.test(s) && s !== 'busybox'),
      ),
    ].sort();
  } catch (err) {
    throw new BosonError('TOOL_FAILED', `cannot read or run busybox at ${opts.busybox}: ${(err as Error).message}`, { cause: err });
  }
  const mtime = BUSYBOX_EPOCH;
  const dir = (name: string, mode = 0o755): TarEntrySpec => ({ name, type: 'directory', mode, mtime });
  const entries: TarEntrySpec[] = [
    dir('bin/'),
    { name: 'bin/busybox', mode: 0o755, content: binary, mtime },
    ...applets.map((a): TarEntrySpec => ({ name: `bin/${a}`, type: 'symlink', linkname: 'busybox', mtime })),
    dir('dev/'),
    dir('etc/'),
    { name: 'etc/group', content: GROUP, mtime },
    { name: 'etc/passwd', content: PASSWD, mtime },
    dir('home/'),
    dir('proc/', 0o555),
    dir('root/', 0o700),
    dir('sys/', 0o555),
    dir('tmp/', 0o1777),
    dir('var/'),
  ];
  const layer = await makeTar(entries);
  const files = buildOciLayout([
    {
      config: {
        created: mtime.toISOString(),
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
        history: [{ created: mtime.toISOString(), created_by: 'boson writeBusyboxImageLayout' }],
      },
      layers: [{ tar: layer, compression: 'gzip' }],
      refName: normaliseReference(opts.tag ?? 'busybox:latest'),
      platform: { os: 'linux', architecture: 'amd64' },
    },
  ]);
  if (await isCurrent(opts.outDir, files.indexJson, files.blobs)) return;
  const outDir = path.resolve(opts.outDir);
  await fs.mkdir(path.dirname(outDir), { recursive: true });
  const tmp = path.join(path.dirname(outDir), `.${path.basename(outDir)}.${tempName('tmp')}`);
  try {
    await saveOciLayout(files, tmp);
    await fs.rm(outDir, { recursive: true, force: true });
    await fs.rename(tmp, outDir);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

async function isCurrent(dir: string, indexJson: Buffer, blobs: Map<string, Buffer>): Promise<boolean> {
  try {
    if (!(await fs.readFile(path.join(dir, 'index.json'))).equals(indexJson)) return false;
    if ((await fs.readFile(path.join(dir, 'oci-layout'), 'utf8')) !== OCI_LAYOUT_FILE) return false;
    for (const [d, b] of blobs) if ((await fs.stat(path.join(dir, 'blobs', 'sha256', digestHex(d)))).size !== b.length) return false;
    return true;
  } catch {
    return false;
  }
}
