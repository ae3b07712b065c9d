/**
 * Registries over TLS with a CA of the user's own (README: BOSON_REGISTRY_CA, <config dir>/certs.d/<host>/ca.crt):
 * a registry on another address is HTTPS, and its certificate is trusted with BOSON_REGISTRY_CA and refused without;
 * a loopback registry is plain HTTP unless certs.d names a CA for it, and then HTTPS.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BOSON, BUSYBOX_LAYOUT, runBoson, useTestHost } from './helpers.ts';
import { pushLayout, startRegistry, type TestRegistry } from './registry-fixture.ts';

const host = useTestHost();
const ADDRESS = '10.242.88.1';
const dummy = `bsreg${process.pid % 10000}`;
let dir: string;
let tlsDir: string;
let remote: TestRegistry;
let loopback: TestRegistry;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'boson-regtls-'));
  tlsDir = path.join(dir, 'tls');
  execFileSync(BOSON, ['tls', 'init', '--dir', tlsDir, '--host', ADDRESS], { env: { ...process.env, BOSON_CONFIG_DIR: dir } });
  // A registry "elsewhere": an address on an interface of this host of its own (a bridge), not loopback.
  execFileSync('ip', ['link', 'add', dummy, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', `${ADDRESS}/32`, 'dev', dummy]);
  execFileSync('ip', ['link', 'set', dummy, 'up']);
  const tls = { cert: path.join(tlsDir, 'server-cert.pem'), key: path.join(tlsDir, 'server-key.pem') };
  [remote, loopback] = await Promise.all([
    startRegistry({ kind: 'none' }, { address: ADDRESS, tls }),
    startRegistry({ kind: 'none' }, { tls }),
  ]);
  await Promise.all([
    pushLayout(BUSYBOX_LAYOUT, 'localhost/busybox:latest', `${remote.host}/t/bb:1`),
    pushLayout(BUSYBOX_LAYOUT, 'localhost/busybox:latest', `${loopback.host}/t/bb:1`),
  ]);
});
after(async () => {
  await Promise.all([remote?.stop(), loopback?.stop()]);
  execFileSync('ip', ['link', 'del', dummy], { stdio: 'ignore' });
  await rm(dir, { recursive: true, force: true });
});

const pull = (ref: string, env: NodeJS.ProcessEnv) =>
  runBoson(host(), ['pull', '-q', ref], { env: { ...host().env, BOSON_CONFIG_DIR: path.join(dir, 'config'), ...env }, timeoutMs: 120_000 });

describe('registries over TLS with a CA of their own', () => {
  test('another host: refused without BOSON_REGISTRY_CA, pulled with it', async () => {
    const refused = await pull(`${remote.host}/t/bb:1`, {});
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /certificate|self[- ]signed|issuer/i, refused.stderr);
    const ok = await pull(`${remote.host}/t/bb:1`, { BOSON_REGISTRY_CA: path.join(tlsDir, 'ca.pem') });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.toString(), `${remote.host}/t/bb:1\n`);
  });

  test('a loopback registry: HTTPS only when certs.d names its CA', async () => {
    const plain = await pull(`${loopback.host}/t/bb:1`, {});
    assert.notEqual(plain.code, 0, 'plain HTTP to a TLS registry fails');
    const certs = path.join(dir, 'config', 'certs.d', loopback.host);
    await mkdir(certs, { recursive: true });
    await copyFile(path.join(tlsDir, 'ca.pem'), path.join(certs, 'ca.crt'));
    const ok = await pull(`${loopback.host}/t/bb:1`, {});
    assert.equal(ok.code, 0, ok.stderr);
  });
});
