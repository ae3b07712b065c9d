/**
 * One daemon per run directory: two `boson up` started at the same moment on the same state and run directories.
 * Exactly one serves; the other exits with DAEMON_ALREADY_RUNNING (98) naming the first one's pid, and leaves the
 * first one's socket alone. No micro-VM is booted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { MachineClient } from '../src/machine/index.ts';
import { BOSON, makeTestHost, waitFor } from './helpers.ts';

const DAEMON_ALREADY_RUNNING = 98; // src/common/errors.ts

test('two boson up at once on one run directory: one serves, the other exits 98 naming it', async (t) => {
  const host = await makeTestHost();
  const runDir = host.env.BOSON_RUN_DIR!;
  const socket = path.join(runDir, 'boson.sock');
  const procs: Array<{ child: ChildProcess; out: string; exit: Promise<number | null> }> = [];
  t.after(async () => {
    for (const p of procs) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exit));
    await host.cleanup();
  });
  for (let i = 0; i < 2; i++) {
    const child = spawn(BOSON, ['up'], { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = { child, out: '', exit: new Promise<number | null>((r) => child.once('exit', (code) => r(code))) };
    child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (p.out += d.toString()));
    procs.push(p);
  }
  await waitFor(() => procs.some((p) => p.child.exitCode !== null), 60_000, 'one of the two daemons to give up');
  const loser = procs.find((p) => p.child.exitCode !== null)!;
  const winner = procs.find((p) => p !== loser)!;
  await waitFor(() => winner.out.includes('listening') || winner.child.exitCode !== null, 60_000, 'the other daemon to listen');
  assert.equal(winner.child.exitCode, null, `the first daemon serves: ${winner.out}`);
  assert.equal(loser.child.exitCode, DAEMON_ALREADY_RUNNING, loser.out);
  assert.match(
    loser.out,
    new RegExp(`another Boson daemon \\(pid ${winner.child.pid}\\) already runs on ${runDir.replace(/[.]/g, '\\.')}`),
  );
  assert.equal(await readFile(path.join(runDir, 'boson.pid'), 'utf8'), `${winner.child.pid}\n`);
  // The first one's socket is still there and it still answers.
  await access(socket);
  await new MachineClient(socket).request('GET', '/healthz');
  // Once it stops, a new daemon starts on the same directories (the lock died with it).
  winner.child.kill('SIGTERM');
  assert.equal(await winner.exit, 0);
  const again = spawn(BOSON, ['up'], { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { child: again, out: '', exit: new Promise<number | null>((r) => again.once('exit', (code) => r(code))) };
  again.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
  again.stderr!.on('data', (d: Buffer) => (p.out += d.toString()));
  procs.push(p);
  await waitFor(() => p.out.includes('listening') || again.exitCode !== null, 60_000, 'a new daemon to listen');
  assert.equal(again.exitCode, null, p.out);
});
