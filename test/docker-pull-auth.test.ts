/**
 * A Docker API pull (`POST /images/create`) uses only the credentials the client sent in X-Registry-Auth: without
 * the header it is anonymous even when the daemon's user has stored credentials for the registry (Boson's
 * auth.json and Docker's config.json), as dockerd does. Against a token-auth registry on loopback (registry-fixture).
 * No micro-VM: the pull stream is served by pullStream over the machine's real image service and ImageStore, so
 * that what is checked is the port's `auth: null` (anonymous) as the image service honours it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { pullStream, registryAuth } from '../src/docker/images.ts';
import { credentialStore, loadConfig, registryOptions } from '../src/main/index.ts';
import { makeTar, writeOciLayout } from '../src/image/oci-writer.ts';
import { imageStoreOn } from '../src/image/test-support.ts';
import { ImageService } from '../src/machine/index.ts';
import { pushLayout, startRegistry, testConfig, type TestRegistry, type TokenServer } from './registry-fixture.ts';

let work: string;
let registry: TestRegistry & { token?: TokenServer };
let server: http.Server;
let url: string;
const saved = { BOSON_CONFIG_DIR: process.env.BOSON_CONFIG_DIR, DOCKER_CONFIG: process.env.DOCKER_CONFIG };

before(async () => {
  work = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'boson-docker-pull-auth-')));
  registry = await startRegistry({ kind: 'token', user: 'bob', password: 's3cret' });
  const layout = path.join(work, 'layout');
  await fs.mkdir(layout);
  await writeOciLayout(layout, [
    { config: testConfig(), refName: 'v1', layers: [{ tar: await makeTar([{ name: 'hello.txt', content: 'hi\n' }]) }] },
  ]);
  await pushLayout(layout, 'v1', `${registry.host}/private/app:v1`, { creds: 'bob:s3cret' });
  // The daemon's user is logged in to the registry, in both of the files a pull could read.
  process.env.BOSON_CONFIG_DIR = path.join(work, 'config');
  process.env.DOCKER_CONFIG = path.join(work, 'docker');
  // The host's configuration as the daemon reads it: its image store pulls with these credentials.
  const config = loadConfig({ ...process.env, BOSON_STATE_DIR: path.join(work, 'state') });
  await credentialStore(config).set(registry.host, { username: 'bob', password: 's3cret' });
  await fs.mkdir(process.env.DOCKER_CONFIG, { recursive: true });
  const auth = Buffer.from('bob:s3cret').toString('base64');
  await fs.writeFile(path.join(process.env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ auths: { [registry.host]: { auth } } }));
  const images = imageStoreOn(path.join(work, 'state'), { registry: registryOptions(config) });
  server = http.createServer((req, res) => {
    const reference = new URL(req.url ?? '/', 'http://x').searchParams.get('fromImage') ?? '';
    void pullStream(new ImageService(images, { spoolDir: path.join(work, 'spool') }), res, reference, {
      auth: registryAuth(req.headers['x-registry-auth']),
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server?.close();
  await registry?.stop();
  process.env.BOSON_CONFIG_DIR = saved.BOSON_CONFIG_DIR;
  process.env.DOCKER_CONFIG = saved.DOCKER_CONFIG;
  if (saved.BOSON_CONFIG_DIR === undefined) delete process.env.BOSON_CONFIG_DIR;
  if (saved.DOCKER_CONFIG === undefined) delete process.env.DOCKER_CONFIG;
  await fs.rm(work, { recursive: true, force: true });
});

async function pull(reference: string, header?: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/images/create?fromImage=${encodeURIComponent(reference)}`, {
    method: 'POST',
    headers: header ? { 'X-Registry-Auth': header } : {},
  });
  return { status: res.status, body: await res.text() };
}

const header = (creds: object): string => Buffer.from(JSON.stringify(creds)).toString('base64url');

test('a Docker API pull without X-Registry-Auth is anonymous: the stored credentials are not used', async () => {
  const before = registry.token!.requests.length;
  const got = await pull(`${registry.host}/private/app:v1`);
  assert.equal(got.status, 404, got.body);
  assert.match(got.body, /pull access denied/);
  assert.ok(
    registry.token!.requests.slice(before).every((r) => !r.authorized),
    'no token was asked for with credentials',
  );
});

test('a Docker API pull with wrong X-Registry-Auth fails; with the right one it succeeds', async () => {
  const wrong = await pull(`${registry.host}/private/app:v1`, header({ username: 'bob', password: 'nope' }));
  assert.notEqual(wrong.status, 200, wrong.body);
  const right = await pull(`${registry.host}/private/app:v1`, header({ username: 'bob', password: 's3cret' }));
  assert.equal(right.status, 200, right.body);
  assert.match(right.body, /Digest: sha256:/);
  assert.doesNotMatch(right.body, /errorDetail/);
});
