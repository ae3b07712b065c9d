/**
 * The fleet's certificate authority: the controller's CA (made once, on first start, and kept in the state store so
 * that every controller replica signs with the same one), the controller's own client certificate (CN
 * `boson-controller`: what it presents to machines), and the certificates it issues to machines at join (subject
 * CN = the machine id, the machine's address as its subject alternative name, for serverAuth). The machine keeps its
 * private key: it sends only its public key, and the controller sets the subject itself (a machine cannot choose its
 * identity). openssl does the X.509 work in a private temporary directory that is removed afterwards.
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BosonError, isStoreConflict, type AsyncStateStore } from '../../common/index.ts';

const run = promisify(execFile);

/** The store kind and key of the fleet CA. */
export const CA_KIND = 'ctl.fleet-ca';

/** The CN of the controller's client certificate (machines can check it). */
export const CONTROLLER_IDENTITY = 'boson-controller';

/** The CA as stored (PEM). The private keys are as secret as the store itself. */
export interface FleetCaRecord {
  cert: string;
  key: string;
  /** The controller's client certificate and key, signed by the CA. */
  controllerCert: string;
  controllerKey: string;
}

/** Runs openssl in `cwd`; TOOL_FAILED with what it printed. */
async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (cause) {
    const e = cause as { stderr?: string; message: string; code?: string };
    if (e.code === 'ENOENT') throw new BosonError('TOOL_FAILED', 'openssl is not installed (scripts/setup.sh installs it)', { cause });
    throw new BosonError('TOOL_FAILED', `openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`, { cause });
  }
}

/** Runs `fn` in a fresh private directory, removed afterwards. */
async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-ca-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Makes a P-256 private key in `dir/name` (PEM, 0600 by the umask of mkdtemp's directory). */
async function genKey(dir: string, name: string): Promise<void> {
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', name], dir);
}

/** Makes a private key and its public key (PEM): what a joining machine does; the private key never leaves it. */
export async function makeKeyPair(): Promise<{ key: string; publicKey: string }> {
  return inTempDir(async (dir) => {
    await genKey(dir, 'key.pem');
    await openssl(['pkey', '-in', 'key.pem', '-pubout', '-out', 'pub.pem'], dir);
    return { key: await readFile(path.join(dir, 'key.pem'), 'utf8'), publicKey: await readFile(path.join(dir, 'pub.pem'), 'utf8') };
  });
}

/** The SHA-256 fingerprint of a PEM certificate (hex, lower case): what a join token pins. */
export function fingerprint(certPem: string | Buffer): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

/** INVALID_ARGUMENT unless `publicKey` is one PEM public key. */
function checkPublicKey(publicKey: string): void {
  if (!/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n?$/.test(publicKey))
    throw new BosonError('INVALID_ARGUMENT', 'publicKey must be one PEM public key (-----BEGIN PUBLIC KEY-----)');
}

/** Signs a certificate for `publicKey` with the CA in `dir` (ca.pem, ca-key.pem). */
async function signIn(
  dir: string,
  publicKey: string,
  cn: string,
  extensions: string,
  days: number,
  subject = `/CN=${cn}`,
): Promise<string> {
  await writeFile(path.join(dir, 'pub.pem'), publicKey);
  await writeFile(path.join(dir, 'ext'), extensions);
  await openssl(
    [
      'x509',
      '-new',
      '-force_pubkey',
      'pub.pem',
      '-subj',
      subject,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-days',
      String(days),
      '-sha256',
    ].concat(['-extfile', 'ext', '-out', 'cert.pem']),
    dir,
  );
  return readFile(path.join(dir, 'cert.pem'), 'utf8');
}

/** The fleet CA of a controller (see the module comment). */
export class FleetCa {
  private constructor(readonly record: FleetCaRecord) {}

  /** The stored CA, or a new one stored now (two replicas racing: the first one's wins, the other reads it). */
  static async ensure(store: AsyncStateStore, which: 'fleet' | 'docker' = 'fleet'): Promise<FleetCa> {
    const CA_KEY = which === 'fleet' ? 'ca' : 'docker-ca';
    const found = await store.get<FleetCaRecord>(CA_KIND, CA_KEY);
    if (found) return new FleetCa(found.value);
    const made = await inTempDir(async (dir) => {
      await genKey(dir, 'ca-key.pem');
      await openssl(
        [
          'req',
          '-new',
          '-x509',
          '-days',
          '3650',
          '-key',
          'ca-key.pem',
          '-sha256',
          '-subj',
          which === 'fleet' ? '/CN=Boson fleet CA' : '/CN=Boson project Docker CA',
          '-out',
          'ca.pem',
        ],
        dir,
      );
      await genKey(dir, 'controller-key.pem');
      await openssl(['pkey', '-in', 'controller-key.pem', '-pubout', '-out', 'controller-pub.pem'], dir);
      const controllerCert = await signIn(
        dir,
        await readFile(path.join(dir, 'controller-pub.pem'), 'utf8'),
        CONTROLLER_IDENTITY,
        'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n',
        3650,
      );
      const r = (f: string): Promise<string> => readFile(path.join(dir, f), 'utf8');
      return { cert: await r('ca.pem'), key: await r('ca-key.pem'), controllerCert, controllerKey: await r('controller-key.pem') };
    });
    try {
      await store.put(CA_KIND, CA_KEY, made, { expectRevision: 0 });
      return new FleetCa(made);
    } catch (err) {
      if (!isStoreConflict(err)) throw err;
      const winner = await store.get<FleetCaRecord>(CA_KIND, CA_KEY);
      if (!winner) throw err;
      return new FleetCa(winner.value);
    }
  }

  /** The CA certificate (PEM): what machines trust client certificates by. */
  get cert(): string {
    return this.record.cert;
  }

  /**
   * Issues a user's client certificate for a project's Docker endpoint: subject O=<tenant>, OU=<project>,
   * CN=<user> (the endpoint serves the project the subject names), for clientAuth, valid `days`.
   */
  async issueProjectClientCert(publicKey: string, who: { tenant: string; project: string; user: string }, days = 30): Promise<string> {
    checkPublicKey(publicKey);
    for (const v of Object.values(who))
      if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]*$/.test(v))
        throw new BosonError('INVALID_ARGUMENT', `cannot put ${JSON.stringify(v)} in a certificate subject`);
    return inTempDir(async (dir) => {
      await writeFile(path.join(dir, 'ca.pem'), this.record.cert);
      await writeFile(path.join(dir, 'ca-key.pem'), this.record.key, { mode: 0o600 });
      return signIn(
        dir,
        publicKey,
        who.user,
        'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n',
        days,
        `/O=${who.tenant}/OU=${who.project}/CN=${who.user}`,
      );
    });
  }

  /**
   * Issues a machine's certificate: subject CN = `machineId`, `host` (its address, an IP or a name) as its subject
   * alternative name, for serverAuth. INVALID_ARGUMENT when `publicKey` is not a public key.
   */
  async issueMachineCert(publicKey: string, machineId: string, host: string, days = 825): Promise<string> {
    checkPublicKey(publicKey);
    const san = /^[\d.]+$/.test(host) || host.includes(':') ? `IP:${host}` : `DNS:${host}`;
    return inTempDir(async (dir) => {
      await writeFile(path.join(dir, 'ca.pem'), this.record.cert);
      await writeFile(path.join(dir, 'ca-key.pem'), this.record.key, { mode: 0o600 });
      return signIn(dir, publicKey, machineId, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`, days);
    });
  }
}
