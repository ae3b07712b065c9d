/**
 * Request body limits on every route of both APIs of `boson up`: on the Docker API a body larger than any JSON it
 * takes (4 MiB) is 413 with Docker's `{"message"}` (Content-Type exactly application/json) on every route, those
 * that read no body included, with Content-Length or chunked (the rest of the body is read and thrown away, up to
 * 16 MiB more, so that the client gets the answer; past that the connection is ended); a streamed body (put_archive's tar) is not capped by it. On the machine's REST API JSON bodies are capped at
 * 1 MiB (413; a chunked one past the limit ends the connection).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { collect, useDaemonHost } from './helpers.ts';

const MiB = 1024 * 1024;

describe('body limits', () => {
  const { host } = useDaemonHost();
  const dockerSock = (): string => `${host().env.BOSON_RUN_DIR}/docker.sock`;
  const restSock = (): string => `${host().env.BOSON_RUN_DIR}/boson.sock`;

  /** One request whose body is `size` bytes of JSON-ish spaces; chunked when `chunked`. */
  function send(
    socketPath: string,
    method: string,
    urlPath: string,
    size: number,
    chunked = false,
  ): Promise<{ status: number; type: string | undefined; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath,
          method,
          path: urlPath,
          headers: { 'Content-Type': 'application/json', ...(chunked ? {} : { 'Content-Length': String(size) }) },
        },
        (res) => {
          let data = '';
          res.on('data', (d: Buffer) => (data += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], body: data }));
        },
      );
      // The server may answer and close before the whole body is sent (that is the point), or close without an
      // answer (fastify, for a chunked body past its limit): status 0 then.
      let answered = false;
      req.on('response', () => (answered = true));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') return reject(err);
        setTimeout(() => (answered ? undefined : resolve({ status: 0, type: undefined, body: '' })), 1000);
      });
      const chunk = Buffer.alloc(MiB, 0x20);
      let left = size;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!req.write(chunk.subarray(0, n))) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
  }

  test('Docker API: 413 with {"message"} on every route, JSON or not, sized or chunked', async () => {
    const routes: Array<[string, string]> = [
      ['POST', '/containers/create'],
      ['POST', '/v1.47/containers/create'],
      ['POST', '/containers/x/start'],
      ['POST', '/containers/x/update'],
      ['POST', '/containers/x/wait'],
      ['POST', '/containers/x/exec'],
      ['POST', '/exec/x/start'],
      ['POST', '/networks/create'],
      ['POST', '/volumes/create'],
      ['POST', '/auth'],
      ['POST', '/images/create?fromImage=busybox'],
      ['DELETE', '/containers/x'],
    ];
    for (const [method, p] of routes) {
      const r = await send(dockerSock(), method, p, 12 * MiB);
      assert.equal(r.status, 413, `${method} ${p}: ${r.status} ${r.body}`);
      assert.equal(r.type, 'application/json', `${method} ${p}`);
      assert.match(JSON.parse(r.body).message, /request body is larger than 4194304 bytes/, `${method} ${p}`);
    }
    for (const p of ['/containers/create', '/networks/create']) {
      const r = await send(dockerSock(), 'POST', p, 8 * MiB, true);
      assert.equal(r.status, 413, `chunked ${p}: ${r.status} ${r.body}`);
    }
    // The daemon is fine, and a body at the limit is still read (and refused for what it says).
    const ok = await send(dockerSock(), 'POST', '/containers/create', 4 * MiB);
    assert.equal(ok.status, 400);
    assert.equal((await send(dockerSock(), 'GET', '/_ping', 0)).status, 200);
  });

  test("Docker API: put_archive's tar is a stream, not capped at 4 MiB", async () => {
    const env = { ...process.env, DOCKER_HOST: `unix://${dockerSock()}` };
    const docker = (...args: string[]) => collect(spawn('docker', args, { env, stdio: ['pipe', 'pipe', 'pipe'] }), undefined, 120_000);
    const run = await docker('run', '-d', 'busybox', 'sleep', '600');
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.toString().trim();
    try {
      // A 6 MiB tar through docker cp (PUT /containers/{id}/archive).
      const tar = await collect(
        spawn('sh', ['-c', 'd=$(mktemp -d) && head -c 6291456 /dev/urandom > $d/big && tar -C $d -cf - big && rm -r $d'], {
          stdio: ['pipe', 'pipe', 'pipe'],
        }),
        undefined,
        30_000,
      );
      const cp = await collect(spawn('docker', ['cp', '-', `${id}:/tmp`], { env, stdio: ['pipe', 'pipe', 'pipe'] }), tar.stdout, 120_000);
      assert.equal(cp.code, 0, cp.stderr);
      const size = await docker('exec', id, 'stat', '-c', '%s', '/tmp/big');
      assert.equal(size.stdout.toString().trim(), '6291456');
    } finally {
      await docker('rm', '-f', id);
    }
  });

  test('REST API: JSON bodies over 1 MiB are 413', async () => {
    // fastify answers 413 at once and ends the connection: a client still sending may see the end first (0).
    const r = await send(restSock(), 'POST', '/v1/containers', 2 * MiB);
    assert.ok(r.status === 413 || r.status === 0, `${r.status} ${r.body}`);
    if (r.status === 413) assert.equal(JSON.parse(r.body).status, 413);
    // Chunked: fastify ends the connection at the limit (the rest is never read), or answers 413.
    const chunked = await send(restSock(), 'POST', '/v1/containers', 64 * MiB, true);
    assert.ok(chunked.status === 413 || chunked.status === 0, `${chunked.status} ${chunked.body}`);
    assert.equal((await send(restSock(), 'GET', '/healthz', 0)).status, 200);
  });
});
