/**
 * Streams and signals of `boson run` with real micro-VMs: stdin, large separated output, terminals, Ctrl-C, and
 * clean-up when `boson run` itself is killed. Embedded (no daemon), and again through a daemon with a warm pool
 * (run-streams-warm-pool.test.ts), where every run is a warm start.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { useTestHost, runBoson, startUntil, qemuPidsUsing, containerDirs, waitFor, warmSuite, warmView, BOSON } from './helpers.ts';

const testHost = useTestHost();

/**
 * The QEMUs of the host that are not a warm pool's VM waiting for a start: none may be left after runs. A warm
 * suite's daemon keeps (and refills) its pool; once the refills are done, every other QEMU is a leftover.
 */
async function qemusLeft(): Promise<number> {
  if (warmSuite() !== 'pool') return (await qemuPidsUsing(testHost().stateDir)).length;
  await waitFor(async () => (await warmView(testHost())).shapes.every((s) => s.booting === 0), 180_000, 'the pool refilled');
  const waiting = (await warmView(testHost())).shapes.reduce((n, s) => n + s.ready, 0);
  return (await qemuPidsUsing(testHost().stateDir)).length - waiting;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('boson run streams', () => {
  test('1 MiB of stdin round-trips byte for byte, and EOF reaches the container', async () => {
    const input = randomBytes(1024 * 1024);
    const r = await runBoson(testHost(), ['run', '--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo done >&2'], { input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, input.length);
    assert.equal(sha256(r.stdout), sha256(input));
    assert.equal(r.stderr, 'done\n');
  });

  test("without -i the container's stdin is empty", async () => {
    const r = await runBoson(testHost(), ['run', '--rm', 'busybox', 'sh', '-c', 'cat; echo eof'], { input: 'ignored\n' });
    assert.equal(r.stdout.toString(), 'eof\n');
  });

  test('10 MiB on stdout and 10 MiB on stderr arrive separately with no byte lost', async () => {
    const r = await runBoson(
      testHost(),
      ['run', '--rm', 'busybox', 'sh', '-c', 'head -c 10485760 /dev/zero & yes err | head -c 10485760 >&2; wait'],
      { timeoutMs: 120_000 },
    );
    assert.equal(r.code, 0);
    assert.equal(r.stdout.length, 10 * 1024 * 1024);
    assert.ok(
      r.stdout.every((b) => b === 0),
      "stdout holds only stdout's bytes",
    );
    assert.equal(r.stderr.length, 10 * 1024 * 1024);
    assert.equal(r.stderr.replaceAll('err\n', '').length, 0, "stderr holds only stderr's bytes");
  });

  test('-t gives the process a real pty in the guest', async () => {
    const r = await runBoson(testHost(), ['run', '--rm', '-t', 'busybox', 'sh', '-c', 'tty; stty size; test -t 1 && echo is-a-tty']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString().replace(/\r/g, ''), '/dev/pts/0\n24 80\nis-a-tty\n');
  });

  test('-it works from a terminal: an interactive shell with its exit status', async () => {
    // script(1) gives boson a real terminal, as a user's would be.
    const child = spawn('script', ['-qec', `${BOSON} run --rm -it busybox sh`, '/dev/null'], {
      env: { ...testHost().env, TERM: 'dumb' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('#'), 60_000, 'the shell prompt');
    child.stdin.write('echo answer=$((6*7)); stty size; exit 5\n');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.match(out, /answer=42/);
    assert.equal(code, 5);
  });

  test('Ctrl-C reaches the container as SIGINT; a second one stops the VM', async () => {
    const trap = await startUntil(
      testHost(),
      ['run', '--rm', 'busybox', 'sh', '-c', 'trap "echo got-sigint; exit 42" INT; echo ready; while :; do sleep 0.1; done'],
      'ready',
    );
    trap.child.kill('SIGINT');
    const r1 = await trap.result;
    assert.equal(r1.stdout.toString(), 'ready\ngot-sigint\n');
    assert.equal(r1.code, 42);

    // It shrugs SIGINT off but says so: the second Ctrl-C is sent only once the first has reached it (two sent
    // back to back could merge into one signal, and a fixed pause assumed a fast guest).
    const stubborn = await startUntil(
      testHost(),
      ['run', '--rm', 'busybox', 'sh', '-c', 'trap "echo shrugged" INT; echo ready; while :; do sleep 0.1; done'],
      'ready',
    );
    let said = '';
    stubborn.child.stdout!.on('data', (d: Buffer) => (said += d.toString()));
    stubborn.child.kill('SIGINT');
    await waitFor(() => said.includes('shrugged'), 30_000, 'the first SIGINT to reach the container');
    stubborn.child.kill('SIGINT');
    const r2 = await stubborn.result;
    assert.equal(r2.code, 137);
  });

  test(
    'kill -9 of boson run takes its micro-VM down and leaves nothing behind',
    {
      skip: warmSuite()
        ? 'the embedded runtime alone: through a daemon a killed client leaves its container running, as with Docker'
        : false,
    },
    async () => {
      const { child } = await startUntil(testHost(), ['run', '--rm', 'busybox', 'sh', '-c', 'echo ready; sleep 600'], 'ready');
      assert.equal((await qemuPidsUsing(testHost().stateDir)).length, 1, 'one QEMU runs the container');
      child.kill('SIGKILL');
      await waitFor(async () => (await qemuPidsUsing(testHost().stateDir)).length === 0, 5000, 'QEMU to die with its parent');
      // The next command repairs the record the killed process could not remove.
      const next = await runBoson(testHost(), ['run', '--rm', 'busybox', 'true']);
      assert.equal(next.code, 0);
      assert.deepEqual(await containerDirs(testHost().stateDir), []);
    },
  );

  test('20 runs in a row: no hang, no leaked QEMU, file or container record', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await runBoson(testHost(), ['run', '--rm', 'busybox', 'echo', `run-${i}`], { timeoutMs: 60_000 });
      assert.equal(r.stdout.toString(), `run-${i}\n`, r.stderr);
      assert.equal(r.code, 0);
    }
    assert.equal(await qemusLeft(), 0, 'no QEMU left but a warm pool waiting for its starts');
    assert.deepEqual(await containerDirs(testHost().stateDir), []);
  });
});
