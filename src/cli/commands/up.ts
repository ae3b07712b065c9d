/** `boson up`: runs the machine daemon in the foreground, or in the background with --detach (and a pid file). */
import { spawn } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { BosonError, ensurePrivateDir, type TcpEndpointRequest } from '../../common/index.ts';
import { MachineClient } from '../../machine/client/index.ts';
import { hostSocketPath, loadConfig } from '../../main/index.ts';

interface UpFlags {
  detach?: boolean;
  tcp?: string;
  dockerTcp?: string;
  tlsverify?: boolean;
  tlscacert?: string;
  tlscert?: string;
  tlskey?: string;
  insecureTcp?: boolean;
  pidFile?: string;
  logFile?: string;
  controller?: boolean;
  controllerListen?: string;
  /** commander's --no-cri: false when given. */
  cri?: boolean;
}

/** Adds `up` to the program. */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('Run the Boson machine daemon (REST API on a UNIX socket; micro-VMs outlive it)')
    .option('-d, --detach', 'run in the background; prints the pid')
    .option('--tcp <host:port>', 'also serve the REST API on TCP (with --tlsverify; or on loopback with --insecure-tcp)')
    .option('--docker-tcp <host:port>', 'also serve the Docker Engine API on TCP (e.g. 0.0.0.0:2376 with --tlsverify)')
    .option('--tlsverify', 'TCP endpoints use TLS and require a client certificate signed by the CA (boson tls init makes them)')
    .option('--tlscacert <file>', 'CA that client certificates must be signed by (default <config dir>/tls/ca.pem)')
    .option('--tlscert <file>', "the daemon's certificate (default <config dir>/tls/server-cert.pem)")
    .option('--tlskey <file>', "the daemon's key (default <config dir>/tls/server-key.pem)")
    .option('--insecure-tcp', 'allow TCP endpoints without TLS, on loopback only (every local user can then use the daemon)')
    .option(
      '--controller',
      'also run the controller in this process (SQLite, or etcd with BOSON_CONTROLLER_ETCD; the CLI on this host is its system admin)',
    )
    .option('--controller-listen <host:port>', "with --controller: serve the controller's API on TCP too (same TLS rules as --tcp)")
    .option('--pid-file <path>', 'write the daemon pid here (default <run dir>/boson.pid)')
    .option('--no-cri', "do not serve Kubernetes' CRI on <run dir>/cri.sock (also: BOSON_CRI=off)")
    .option('--log-file <path>', 'with --detach: where the daemon writes its output (default <run dir>/boson.log)')
    .action(async (flags: UpFlags) => {
      const config = loadConfig();
      const { paths } = config;
      const socketPath = hostSocketPath(config);
      const pidFile = flags.pidFile ?? path.join(paths.runDir, 'boson.pid');
      const tlsDir = path.join(config.configDir, 'tls');
      if (flags.detach) {
        await detach(flags, socketPath, paths.runDir, paths.rootless);
        return;
      }
      const { startHostDaemon } = await import('../../main/index.ts');
      const endpoint = (address: string | undefined): TcpEndpointRequest | undefined =>
        address === undefined
          ? undefined
          : {
              address,
              tlsVerify: Boolean(flags.tlsverify),
              insecure: Boolean(flags.insecureTcp),
              tlsCaCert: flags.tlscacert ?? path.join(tlsDir, 'ca.pem'),
              tlsCert: flags.tlscert ?? path.join(tlsDir, 'server-cert.pem'),
              tlsKey: flags.tlskey ?? path.join(tlsDir, 'server-key.pem'),
            };
      if (flags.controllerListen !== undefined && !flags.controller)
        throw new BosonError('USAGE', '--controller-listen needs --controller');
      const daemon = await startHostDaemon(
        {
          tcp: endpoint(flags.tcp),
          dockerTcp: endpoint(flags.dockerTcp),
          pidFile,
          controller: flags.controller ? { tcp: endpoint(flags.controllerListen) } : undefined,
          ...(flags.cri === false ? { cri: false } : {}),
        },
        config,
      );
      const dockerSocket = daemon.dockerSocket;
      process.stdout.write(
        `Boson daemon listening on ${socketPath}${flags.tcp ? ` and tcp://${flags.tcp}` : ''}, Docker Engine API on ${dockerSocket}${flags.dockerTcp ? ` and tcp://${flags.dockerTcp}` : ''}${daemon.criSocket ? `, CRI on ${daemon.criSocket}` : ''}${daemon.controllerSocket ? `, controller on ${daemon.controllerSocket}${flags.controllerListen ? ` and tcp://${flags.controllerListen}` : ''}` : ''} (pid ${process.pid})\n`,
      );
      const stop = (): void => {
        void daemon.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}

async function detach(flags: UpFlags, socketPath: string, runDir: string, rootless: boolean): Promise<void> {
  if (rootless) await ensurePrivateDir(runDir);
  else await mkdir(runDir, { recursive: true });
  const logFile = flags.logFile ?? path.join(runDir, 'boson.log');
  const log = await open(logFile, 'a');
  // The same command line, in the foreground: every flag (TCP, TLS, pid file) goes with it.
  const args = [process.argv[1]!, ...process.argv.slice(2).filter((a) => a !== '-d' && a !== '--detach')];
  const child = spawn(process.execPath, [...process.execArgv, ...args], { detached: true, stdio: ['ignore', log.fd, log.fd] });
  child.unref();
  await log.close();
  const client = new MachineClient(socketPath);
  const end = Date.now() + 15_000;
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? 1));
  for (;;) {
    try {
      await client.request('GET', '/healthz');
      process.stdout.write(`${child.pid}\n`);
      process.exit(0);
    } catch {
      if (exited !== null || Date.now() > end) {
        throw new BosonError('DAEMON_UNAVAILABLE', `the daemon did not start (exit ${exited ?? 'timeout'}); see ${logFile}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
