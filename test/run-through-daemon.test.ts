/**
 * One runtime: a foreground `boson run` with a daemon running is a client of the daemon (one upgraded request),
 * so the container it runs is a daemon container like any other. `docker stop`, `docker kill`, `docker logs` and
 * `docker exec` act on it, and `boson run` exits with the status the container ended with. Without a daemon the
 * same runtime runs embedded in the CLI (run-basics, run-streams cover that).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DEBIAN_DOCKER_PATH } from './docker-clis.ts';
import { qemuPidsUsing, runBoson, startUntil, useDaemonHost, waitFor } from './helpers.ts';

const run = promisify(execFile);
const { host } = useDaemonHost();

/** The stock docker CLI against this host's Docker socket. */
async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run(DEBIAN_DOCKER_PATH, args, {
    env: { ...process.env, DOCKER_HOST: `unix://${path.join(host().stateDir, 'run', 'docker.sock')}` },
    timeout: 60_000,
  });
  return stdout.trim();
}

describe('boson run through the daemon', () => {
  test('docker logs, exec, stop and kill act on a foreground run, which exits with the container status', async () => {
    const fg = await startUntil(
      host(),
      ['run', '--name', 'fg', 'busybox', 'sh', '-c', 'echo ready; trap "echo got-term; exit 7" TERM; while :; do sleep 1; done'],
      'ready',
      60_000,
    );
    // The daemon owns it: one QEMU for it among the daemon's, and docker sees it running.
    assert.equal((await qemuPidsUsing(host().stateDir)).length, 1);
    assert.match(await docker('ps', '--format', '{{.Names}} {{.Status}}'), /^fg Up /m);
    assert.equal(await docker('logs', 'fg'), 'ready');
    // exec runs in the same guest: the guest kernel answers, not the host's.
    const release = await docker('exec', 'fg', 'uname', '-r');
    assert.match(release, /boson/, `exec ran under the guest kernel (${release})`);
    assert.equal(await docker('stop', '-t', '5', 'fg'), 'fg');
    const stopped = await fg.result;
    assert.equal(stopped.code, 7, stopped.stderr);
    assert.equal(stopped.stdout.toString(), 'ready\ngot-term\n');
    assert.equal(await docker('rm', 'fg'), 'fg');

    const fg2 = await startUntil(host(), ['run', '--rm', '--name', 'fg2', 'busybox', 'sh', '-c', 'echo ready; sleep 600'], 'ready', 60_000);
    await docker('kill', 'fg2');
    const killed = await fg2.result;
    assert.equal(killed.code, 137, killed.stderr);
    // --rm: the container went with its run, and so did its micro-VM.
    await waitFor(
      async () => (await docker('ps', '-a', '--format', '{{.Names}}')).split('\n').every((n) => n !== 'fg2'),
      10_000,
      'fg2 to be removed',
    );
    assert.equal((await qemuPidsUsing(host().stateDir)).length, 0);
  });

  test('output, stdin, exit codes and start errors come through the one request', async () => {
    const r = await runBoson(host(), ['run', '--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo err >&2; uname -r; exit 5'], {
      input: 'piped in\n',
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stdout.toString(), /^piped in\n.*boson.*\n$/);
    assert.equal(r.stderr, 'err\n');
    const missing = await runBoson(host(), ['run', '--rm', 'busybox', 'no-such-command'], { timeoutMs: 60_000 });
    assert.equal(missing.code, 127, missing.stderr);
    // The daemon's containers: nothing left of either run.
    assert.equal(await docker('ps', '-a', '-q'), '');
  });

  test("a --rm container's writes to a volume outlive it, up to the last byte", async () => {
    // Its writable layer goes unsynced (EPHEMERAL) and its VM is killed at its end; its volume stays, so the data
    // must be on the volume's disk by then.
    const w = await runBoson(host(), [
      'run',
      '--rm',
      '-v',
      'kept:/data',
      'busybox',
      'sh',
      '-c',
      'head -c 1048576 /dev/urandom > /data/rand && md5sum /data/rand | cut -d" " -f1 && head -c 4194304 /dev/zero > /data/zeros; uname -r',
    ]);
    assert.equal(w.code, 0, w.stderr);
    const [sum, release] = w.stdout.toString().trim().split('\n');
    assert.match(sum!, /^[0-9a-f]{32}$/);
    assert.match(release!, /boson/, 'written in the guest');
    const r = await runBoson(host(), ['run', '--rm', '-v', 'kept:/data', 'busybox', 'sh', '-c', 'md5sum /data/rand; wc -c < /data/zeros']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString().replace(/ +/g, ' '), `${sum} /data/rand\n4194304\n`);
    await docker('volume', 'rm', 'kept');
  });
});
