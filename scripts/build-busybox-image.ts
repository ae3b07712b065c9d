/**
 * Builds the busybox OCI image layout used by tests and first runs:
 *   npx tsx scripts/build-busybox-image.ts [outDir] [--busybox /bin/busybox] [--tag busybox:latest]
 * outDir defaults to build/images/busybox-oci. Idempotent: an up-to-date layout is left untouched.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { writeBusyboxImageLayout } from '../src/image/index.ts';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const busybox = flag('--busybox') ?? '/bin/busybox';
const tag = flag('--tag');
const outDir = path.resolve(args[0] ?? path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci'));

const before = await fs.readFile(path.join(outDir, 'index.json'), 'utf8').catch(() => null);
try {
  await writeBusyboxImageLayout({ busybox, outDir, ...(tag ? { tag } : {}) });
} catch (err) {
  process.stderr.write(`build-busybox-image: ${(err as Error).message}\n`);
  process.exit(1);
}
const after = await fs.readFile(path.join(outDir, 'index.json'), 'utf8');
const manifest = (JSON.parse(after) as { manifests: { digest: string }[] }).manifests[0]?.digest;
process.stdout.write(`${before === after ? 'up to date' : 'wrote'} ${outDir} (manifest ${manifest})\n`);
