/**
 * The CLI's one-file bundles (scripts/build-cli.sh, scripts/bundle-cli.mjs). build/cli/run.mjs, which bin/boson runs
 * for `run` (the start of every container), must stay one small file without what a run through the daemon does not
 * need: the schema library, the runtime, the VMM, the logger, the composition root. It must run, and a run that finds
 * no daemon must be handed whole to the full CLI (boson.mjs), which embeds the machine: both give the same output and
 * exit status. build/cli/light.mjs (pull, login, logout) carries this host's images but not the containers or the VMM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';

const OUT = path.join(PACKAGE_ROOT, 'build', 'cli');

/** Runs `node <bundle> args` with `env`; its exit status and output. */
function runNode(bundle: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(OUT, bundle), ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The modules of a bundle: esbuild marks each with a comment naming its path. */
function hasModule(bundle: string, module: string): boolean {
  return bundle.includes(`\n// ${module}`);
}

test('run.mjs is one small file with run, without the machine or the schema library', async () => {
  execFileSync(path.join(PACKAGE_ROOT, 'scripts', 'build-cli.sh'));
  const run = await readFile(path.join(OUT, 'run.mjs'), 'utf8');
  const size = (await stat(path.join(OUT, 'run.mjs'))).size;
  assert.ok(size < 256 * 1024, `run.mjs is ${size} bytes (1.2 MB were loaded for a run before it)`);
  for (const present of ['src/cli/commands/run.ts', 'src/cli/embedded-light.ts', 'src/machine/api/client.ts'])
    assert.ok(hasModule(run, present), `run.mjs has ${present}`);
  for (const absent of [
    'src/cli/embedded.ts',
    'src/main/root.ts',
    'src/main/config.ts',
    'src/machine/runtime.ts',
    'src/machine/port/schemas.ts',
    'src/vmm/',
    'src/image/store.ts',
    'node_modules/@sinclair/typebox/',
    'node_modules/pino/',
    'node_modules/cli-table3/',
    'node_modules/cli-progress/',
  ])
    assert.ok(!hasModule(run, absent), `run.mjs must not carry ${absent}`);
  // No other file of the bundle is imported by it (one file: Node's loader costs a millisecond per module).
  assert.doesNotMatch(run, /^import .* from "\.\//m);

  // light.mjs: a pull without a daemon is done in its process (this host's images), without containers or the VMM.
  const light = await readFile(path.join(OUT, 'light.mjs'), 'utf8');
  for (const present of ['src/cli/commands/pull.ts', 'src/cli/commands/login.ts', 'src/main/images.ts', 'src/image/store.ts'])
    assert.ok(hasModule(light, present), `light.mjs has ${present}`);
  for (const absent of ['src/machine/runtime.ts', 'src/vmm/', 'src/cli/commands/run.ts', 'src/cli/embedded'])
    assert.ok(!hasModule(light, absent), `light.mjs must not carry ${absent}`);
  assert.doesNotMatch(light, /^import .* from "\.\//m);
});

test('run.mjs runs, and hands a run that finds no daemon to the full CLI', async (t) => {
  const dir = await mkdtemp('/var/tmp/boson-bundle-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BOSON_STATE_DIR: path.join(dir, 'state'),
    BOSON_RUN_DIR: path.join(dir, 'run'),
    BOSON_CONFIG_DIR: path.join(dir, 'config'),
    BOSON_QUIET: '1',
  };
  delete env.BOSON_HOST;
  const help = await runNode('run.mjs', ['run', '--help'], env);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /--detach/);
  assert.match(help.stdout, /--rm/);

  // No daemon on this run directory: the run's pull of a missing image is the embedded machine's, from run.mjs as
  // from boson.mjs. A registry nobody listens on fails it the same way in both (not with "not in this one-file
  // bundle" or DAEMON_UNAVAILABLE), before any VM.
  const ref = 'localhost:1/boson-bundle-test:latest';
  const viaLight = await runNode('run.mjs', ['run', '--rm', ref, 'true'], env);
  const viaFull = await runNode('boson.mjs', ['run', '--rm', ref, 'true'], env);
  assert.notEqual(viaFull.code, 0);
  assert.match(viaFull.stderr, /localhost:1/);
  assert.deepEqual(
    { code: viaLight.code, stderr: viaLight.stderr, stdout: viaLight.stdout },
    { code: viaFull.code, stderr: viaFull.stderr, stdout: viaFull.stdout },
  );
  assert.doesNotMatch(viaLight.stderr, /one-file bundle|DAEMON_UNAVAILABLE|daemon stopped/);
  // The embedded machine made this host's image store in the state directory.
  assert.ok((await stat(path.join(dir, 'state'))).isDirectory());
});
