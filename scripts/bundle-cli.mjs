/**
 * The esbuild builds of the boson CLI, run by scripts/build-cli.sh (which decides when to build and swaps the result
 * in): `node scripts/bundle-cli.mjs <outdir>`.
 *   boson.mjs (+ chunks)   the CLI (src/cli/main.ts), split: each command's modules are a chunk loaded on first use
 *   userns-child.mjs       the root disk builder a rootless daemon runs in a user namespace (src/image/userns.ts)
 *   light.mjs              one file with `pull`, `login` and `logout` (src/cli/light.ts), this host's images included
 *   run.mjs                one file with `run` (src/cli/run-light.ts), tree-shaken to what a run through the daemon
 *                          needs: src/cli/embedded.ts is swapped for embedded-light.ts, which hands a run that finds no
 *                          daemon to boson.mjs instead of loading the composition root.
 * The packages with native code, heavy plugins or files read beside their code (better-sqlite3, fastify, etcd3 with
 * its .proto files, ...) stay outside, in node_modules. Exits non-zero if a build fails.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = process.argv[2];
if (!outdir) throw new Error('usage: bundle-cli.mjs <outdir>');

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'error',
  external: ['better-sqlite3', 'fastify', '@fastify/swagger', 'prom-client', 'etcd3'],
  // Bundled CommonJS packages call require: give the ES module one.
  banner: { js: "import { createRequire as __bosonRequire } from 'node:module'; const require = __bosonRequire(import.meta.url);" },
};

await build({
  ...common,
  entryPoints: { boson: path.join(root, 'src/cli/main.ts'), 'userns-child': path.join(root, 'src/image/userns-child.ts') },
  splitting: true,
  outdir,
  entryNames: '[name]',
  outExtension: { '.js': '.mjs' },
});

/**
 * The one-file bundles' substitutions. embedded.ts becomes embedded-light.ts (see above). And a dynamic import of a
 * module of the daemon's side (src/main, src/machine, src/vmm, src/controller, src/docker, src/cri: the controller,
 * the API server, the etcd store, loaded by functions these commands never call) is not followed: it becomes a
 * module that fails when loaded. Followed, it would bring its modules in, and make esbuild wrap every module they
 * share with the bundle so that the unused parts of those could no longer be left out. The image layer's lazy
 * modules (layer flattening, for a pull without a daemon) are followed.
 */
const oneFile = {
  name: 'one-file',
  setup(b) {
    const src = path.join(root, 'src') + path.sep;
    b.onResolve({ filter: /./ }, (args) => {
      if (!args.path.startsWith('.')) return undefined;
      const target = path.resolve(args.resolveDir, args.path);
      if (target === path.join(root, 'src/cli/embedded.ts')) return { path: path.join(root, 'src/cli/embedded-light.ts') };
      const layer = path.relative(src, target).split(path.sep)[0];
      if (args.kind === 'dynamic-import' && target.startsWith(src) && !['cli', 'common', 'guest', 'image'].includes(layer))
        return { path: target, namespace: 'not-in-one-file' };
      return undefined;
    });
    b.onLoad({ filter: /./, namespace: 'not-in-one-file' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${path.relative(root, args.path)} is not in this one-file bundle of the CLI`)});`,
      loader: 'js',
    }));
  },
};

for (const [entry, out] of [
  ['src/cli/light.ts', 'light.mjs'],
  ['src/cli/run-light.ts', 'run.mjs'],
])
  await build({ ...common, entryPoints: [path.join(root, entry)], outfile: path.join(outdir, out), plugins: [oneFile] });
