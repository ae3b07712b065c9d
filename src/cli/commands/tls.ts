/**
 * `boson tls init`: the certificates for the daemon's TCP endpoints, with no openssl knowledge needed. Makes a CA,
 * a server certificate for the names and addresses the daemon is reached by, and a client certificate for a user,
 * in Docker's file names, so that the stock docker CLI works with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH. Keys are
 * 0600; an existing CA is kept (only new server or client certificates are issued from it), so clients stay valid.
 */
import { execFile } from 'node:child_process';
import { access, chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { BosonError, isLoopback } from '../../common/index.ts';
import { loadConfig } from '../../main/index.ts';
import { printJson } from '../output.ts';

const run = promisify(execFile);

interface TlsInitFlags {
  dir?: string;
  host: string[];
  user: string;
  days: string;
  json?: boolean;
}

/** Runs openssl; TOOL_FAILED with what it printed. */
async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (cause) {
    const e = cause as { stderr?: string; message: string; code?: string };
    if (e.code === 'ENOENT') throw new BosonError('TOOL_FAILED', 'openssl is not installed (scripts/setup.sh installs it)', { cause });
    throw new BosonError('TOOL_FAILED', `openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`, { cause });
  }
}

const exists = (f: string): Promise<boolean> =>
  access(f).then(
    () => true,
    () => false,
  );

/** Issues a certificate for `name` from the CA in `dir`, with `extensions` (an openssl extension section). */
async function issue(dir: string, name: string, subject: string, extensions: string, days: string): Promise<void> {
  const ext = path.join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  try {
    await openssl(['genrsa', '-out', `${name}-key.pem`, '2048'], dir);
    await openssl(['req', '-new', '-key', `${name}-key.pem`, '-subj', subject, '-out', `${name}.csr`], dir);
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca-key.pem',
        '-CAcreateserial',
        '-days',
        days,
        '-sha256',
        '-extfile',
        ext,
        '-out',
        `${name}-cert.pem`,
      ],
      dir,
    );
    await chmod(path.join(dir, `${name}-key.pem`), 0o600);
  } finally {
    await rm(ext, { force: true });
    await rm(path.join(dir, `${name}.csr`), { force: true });
  }
}

/** Adds `tls` to the program. */
export function registerTls(program: Command): void {
  const tls = program.command('tls').description("Certificates for the daemon's TCP endpoints");
  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  tls
    .command('init')
    .description("Make a CA, a server certificate and a client certificate (Docker's file names: ca.pem, cert.pem, key.pem)")
    .option('--dir <dir>', 'where to put them (default <config dir>/tls)')
    .option(
      '--host <name-or-ip>',
      "a name or address the daemon is reached by (repeatable; localhost, 127.0.0.1 and this host's name are always in)",
      collect,
      [],
    )
    .option('--user <name>', "the client certificate's user (its CN: the principal the daemon sees)", os.userInfo().username)
    .option('--days <n>', 'validity of the certificates', '825')
    .option('--json', 'print the file paths as JSON')
    .action(async (flags: TlsInitFlags) => {
      if (!/^\d+$/.test(flags.days)) throw new BosonError('INVALID_ARGUMENT', `invalid --days: ${flags.days}`);
      if (!/^[A-Za-z0-9_.@-]+$/.test(flags.user)) throw new BosonError('INVALID_ARGUMENT', `invalid --user: ${JSON.stringify(flags.user)}`);
      for (const h of flags.host)
        if (!/^[A-Za-z0-9.:-]+$/.test(h)) throw new BosonError('INVALID_ARGUMENT', `invalid --host: ${JSON.stringify(h)}`);
      const dir = path.resolve(flags.dir ?? path.join(loadConfig().configDir, 'tls'));
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (!(await exists(path.join(dir, 'ca.pem')))) {
        await openssl(['genrsa', '-out', 'ca-key.pem', '3072'], dir);
        await chmod(path.join(dir, 'ca-key.pem'), 0o600);
        await openssl(
          [
            'req',
            '-new',
            '-x509',
            '-days',
            flags.days,
            '-key',
            'ca-key.pem',
            '-sha256',
            '-subj',
            `/CN=Boson CA on ${os.hostname()}`,
            '-out',
            'ca.pem',
          ],
          dir,
        );
      }
      const names = new Set(['localhost', os.hostname(), ...flags.host.filter((h) => !/^[\d.]+$/.test(h) && !h.includes(':'))]);
      const ips = new Set(['127.0.0.1', '::1', ...flags.host.filter((h) => /^[\d.]+$/.test(h) || h.includes(':'))]);
      const san = [...[...names].map((n) => `DNS:${n}`), ...[...ips].map((ip) => `IP:${ip}`)].join(',');
      await issue(
        dir,
        'server',
        `/CN=${os.hostname()}`,
        `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
        flags.days,
      );
      await issue(dir, 'client', `/CN=${flags.user}`, 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n', flags.days);
      // Docker's client file names, so that DOCKER_CERT_PATH=<dir> works as it is.
      await run('cp', [path.join(dir, 'client-cert.pem'), path.join(dir, 'cert.pem')]);
      await run('cp', ['-p', path.join(dir, 'client-key.pem'), path.join(dir, 'key.pem')]);
      const files = {
        dir,
        ca: path.join(dir, 'ca.pem'),
        serverCert: path.join(dir, 'server-cert.pem'),
        serverKey: path.join(dir, 'server-key.pem'),
        cert: path.join(dir, 'cert.pem'),
        key: path.join(dir, 'key.pem'),
        user: flags.user,
        hosts: [...names, ...ips],
      };
      if (flags.json) {
        printJson(files);
        return;
      }
      const example = flags.host.find((h) => !isLoopback(h)) ?? '127.0.0.1';
      process.stdout.write(
        [
          `Certificates in ${dir} (for ${[...names, ...ips].join(', ')}; client: ${flags.user})`,
          `  daemon: boson up --tlsverify --docker-tcp 0.0.0.0:2376 --tcp 0.0.0.0:2377`,
          `  client: export DOCKER_HOST=tcp://${example.includes(':') ? `[${example}]` : example}:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${dir}`,
          '',
        ].join('\n'),
      );
    });
}
