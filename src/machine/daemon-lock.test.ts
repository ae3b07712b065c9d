import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isBosonError } from '../common/index.ts';
import { acquireDaemonLock } from './daemon-lock.ts';

test("the daemon lock: one holder, a clear error naming it, released on release() and on the holder's death", async (t) => {
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'boson-lock-'));
  t.after(() => rm(runDir, { recursive: true, force: true }));
  const pidFile = path.join(runDir, 'boson.pid');
  await writeFile(pidFile, '999999999\n'); // a stale file from a daemon that died: no lock on it
  const first = await acquireDaemonLock(runDir);
  assert.equal(await readFile(pidFile, 'utf8'), `${process.pid}\n`);
  await assert.rejects(
    acquireDaemonLock(runDir),
    (err) => isBosonError(err, 'DAEMON_ALREADY_RUNNING') && err.message.includes(`(pid ${process.pid})`) && err.details.pid === process.pid,
  );
  first.release();
  assert.equal(first.held(), false);
  const second = await acquireDaemonLock(runDir);
  second.release();

  // Held by another process: refused while it lives (naming its pid), free again once it is killed with SIGKILL.
  const script = `const m = await import(${JSON.stringify(new URL('./daemon-lock.ts', import.meta.url).href)}); await m.acquireDaemonLock(${JSON.stringify(runDir)}); console.log('locked'); setInterval(() => {}, 1e6);`;
  const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => holder.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    holder.once('exit', (code) => reject(new Error(`the holder exited ${code}`)));
  });
  await assert.rejects(acquireDaemonLock(runDir), (err) => isBosonError(err, 'DAEMON_ALREADY_RUNNING') && err.details.pid === holder.pid);
  const gone = new Promise((r) => holder.once('exit', r));
  holder.kill('SIGKILL');
  await gone;
  const third = await acquireDaemonLock(runDir);
  assert.equal(third.held(), true);
  third.release();
});
