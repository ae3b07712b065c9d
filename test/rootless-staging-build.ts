/**
 * The user's side of test/rootless-staging.test.ts (not a test itself): run as the unprivileged user, it builds one
 * root disk from layer tar files through the rootless path (flattenToDiskInUserNamespace: the flattening and mkfs in
 * a user namespace) and prints JSON lines: `observed` (the staging directories, looked at synchronously when the
 * builder asks for the last layer, i.e. while the tree exists and the earlier layers are in it) and then `done` or
 * `error`.
 *
 *   node --import tsx test/rootless-staging-build.ts '{"layers":[...],"final":...,"tmpDir":...,"stagingDir":...}'
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { isBosonError } from '../src/common/index.ts';
import { flattenToDiskInUserNamespace } from '../src/image/userns.ts';

interface Spec {
  layers: string[];
  final: string;
  tmpDir: string;
  stagingDir?: string;
  /** Paths (relative to the image root) whose reachability by other users is reported. */
  probe: string[];
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const uid = process.geteuid!();
const print = (m: unknown): void => void process.stdout.write(`${JSON.stringify(m)}\n`);

/** Mode and owner of `p` (not following a link). */
const meta = (p: string): { path: string; mode: number; uid: number; link: boolean } => {
  const st = fs.lstatSync(p);
  return { path: p, mode: st.mode & 0o7777, uid: st.uid, link: st.isSymbolicLink() };
};

/** The staging tree being built: the one stage-* directory in one of the places a rootless build stages. */
function observe(): void {
  const candidates = [path.join(spec.tmpDir, 'userns'), path.join('/dev/shm', `boson-${uid}`, 'userns')];
  if (spec.stagingDir && spec.stagingDir !== 'store') candidates.push(path.join(spec.stagingDir, `boson-${uid}`, 'userns'));
  const found: string[] = [];
  for (const dir of candidates) {
    for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) if (name.startsWith('stage-')) found.push(path.join(dir, name));
  }
  if (found.length !== 1) return print({ t: 'observed', error: `expected one staging tree, found: ${found.join(', ') || 'none'}` });
  const stage = found[0]!;
  const rootfs = path.join(stage, 'rootfs');
  // Every directory from the staging parent down to the image root, and who besides us could pass each.
  const chain = [path.dirname(path.dirname(stage)), path.dirname(stage), stage, rootfs].map(meta);
  const probes = Object.fromEntries(spec.probe.map((rel) => [rel, fs.existsSync(path.join(rootfs, rel))]));
  print({ t: 'observed', stage, chain, probes });
}

const layers = spec.layers.map((file, i) => ({
  name: `L${i + 1}`,
  open: (): Readable => {
    if (i === spec.layers.length - 1) observe();
    return fs.createReadStream(file);
  },
}));

try {
  fs.mkdirSync(spec.tmpDir, { recursive: true, mode: 0o700 });
  const disk = await flattenToDiskInUserNamespace(layers, 'erofs', spec.final, spec.tmpDir, 1 << 20, spec.stagingDir);
  print({ t: 'done', disk: disk.path });
} catch (err) {
  print({ t: 'error', code: isBosonError(err) ? err.code : 'UNTYPED', message: (err as Error).message });
}
