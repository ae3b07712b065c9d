/**
 * `boson controller`: runs the controller alone (tenants, projects, quotas, flavors, users, tokens, tasks), for a
 * fleet whose machines join it next. It listens on <run dir>/controller.sock (the local system admin's way in) and,
 * with --listen, on TCP under the rules of every Boson TCP endpoint (--tlsverify with `boson tls init`'s
 * certificates, or loopback with --insecure-tcp); its state is <state dir>/controller.db, or in etcd with --etcd (or
 * BOSON_CONTROLLER_ETCD), where several controllers share one state.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { BosonError, type TcpEndpointRequest } from '../../common/index.ts';
import {
  CONTROLLER_DB,
  loadConfig,
  migrateControllerToEtcd,
  parseEtcdEndpoints,
  type ControllerEtcd,
  type ControllerEtcdOptions,
  type MigrationSummary,
} from '../../main/index.ts';
import { printJson, StatusLine } from '../output.ts';

interface ControllerFlags {
  listen?: string;
  dockerListen?: string;
  socket?: string;
  tlsverify?: boolean;
  tlscacert?: string;
  tlscert?: string;
  tlskey?: string;
  insecureTcp?: boolean;
  etcd?: string;
  etcdPrefix?: string;
}

/**
 * Where the flags (over the BOSON_CONTROLLER_ETCD settings) put the state in etcd; undefined: SQLite. URLs from the
 * flag take the prefix and TLS files of the settings (`options`: BOSON_CONTROLLER_ETCD_PREFIX, _CA, _CERT, _KEY)
 * also when BOSON_CONTROLLER_ETCD is unset. `flag` names the URLs' flag in errors.
 */
export function etcdRequest(
  flags: Pick<ControllerFlags, 'etcd' | 'etcdPrefix'>,
  setting: ControllerEtcd | undefined,
  options: ControllerEtcdOptions = { prefix: 'boson/' },
  flag = '--etcd',
): ControllerEtcd | undefined {
  if (flags.etcd === undefined) {
    if (flags.etcdPrefix !== undefined && !setting) throw new BosonError('USAGE', `--etcd-prefix needs ${flag} (or BOSON_CONTROLLER_ETCD)`);
    return setting && flags.etcdPrefix !== undefined ? { ...setting, prefix: flags.etcdPrefix } : setting;
  }
  return {
    ...options,
    ...setting,
    endpoints: parseEtcdEndpoints(flags.etcd, flag),
    prefix: flags.etcdPrefix ?? setting?.prefix ?? options.prefix,
  };
}

/** The TCP endpoint the flags ask for (TLS files default to `boson tls init`'s), or undefined. */
export function tcpRequest(
  address: string | undefined,
  flags: Omit<ControllerFlags, 'listen' | 'socket'>,
  configDir: string,
): TcpEndpointRequest | undefined {
  if (address === undefined) return undefined;
  const tlsDir = path.join(configDir, 'tls');
  return {
    address,
    tlsVerify: Boolean(flags.tlsverify),
    insecure: Boolean(flags.insecureTcp),
    tlsCaCert: flags.tlscacert ?? path.join(tlsDir, 'ca.pem'),
    tlsCert: flags.tlscert ?? path.join(tlsDir, 'server-cert.pem'),
    tlsKey: flags.tlskey ?? path.join(tlsDir, 'server-key.pem'),
  };
}

interface MigrateFlags {
  toEtcd: string;
  etcdPrefix?: string;
  from?: string;
  json?: boolean;
}

/** Prints what a migration copied: plain lines (records per kind, and how to start on etcd), or JSON. */
function printMigration(summary: MigrationSummary, flags: MigrateFlags): void {
  if (flags.json) return printJson(summary);
  const width = Math.max(0, ...Object.keys(summary.kinds).map((k) => k.length));
  const lines = [
    `Copied ${summary.records} record(s) and ${summary.events} event(s) from ${summary.from} to etcd ${summary.to.endpoints.join(',')} (prefix ${summary.to.prefix}):`,
    ...Object.entries(summary.kinds).map(([kind, n]) => `  ${kind.padEnd(width)}  ${n}`),
    `Start the controller on it: boson controller --etcd ${summary.to.endpoints.join(',')}${summary.to.prefix === 'boson/' ? '' : ` --etcd-prefix ${summary.to.prefix}`}`,
    `(${summary.from} is left as it was; a controller started without --etcd would still use it.)`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

/** Adds `controller migrate` to the `controller` command. */
function registerMigrate(controller: Command): void {
  controller
    .command('migrate')
    .description("Copy the controller's state from SQLite (<state dir>/controller.db) into an empty etcd prefix")
    .requiredOption('--to-etcd <urls>', 'the etcd client URLs (comma-separated; TLS files from BOSON_CONTROLLER_ETCD_CA, _CERT, _KEY)')
    .option('--etcd-prefix <prefix>', 'the key prefix in etcd (default boson/; BOSON_CONTROLLER_ETCD_PREFIX)')
    .option('--from <file>', 'the SQLite file (default <state dir>/controller.db)')
    .option('--json', 'print the summary as JSON')
    .action(async (flags: MigrateFlags) => {
      const config = loadConfig();
      // Not BOSON_CONTROLLER_ETCD's URLs (the target is named here), its prefix and TLS files.
      const to = etcdRequest({ etcd: flags.toEtcd, etcdPrefix: flags.etcdPrefix }, undefined, config.controllerEtcdOptions, '--to-etcd')!;

      const status = new StatusLine();
      try {
        const summary = await migrateControllerToEtcd({
          from: flags.from ?? path.join(config.paths.stateDir, CONTROLLER_DB),
          to,
          onProgress: (done, total) => status.update(`Copying to etcd: ${done}/${total}`),
        });
        status.clear();
        printMigration(summary, flags);
      } finally {
        status.clear();
      }
    });
}

/** Adds `controller` to the program. */
export function registerController(program: Command): void {
  const controller = program
    .command('controller')
    .description('Run the Boson controller alone (multi-tenant control plane; machines join it)')
    .option('--listen <host:port>', 'also serve its REST API on TCP (with --tlsverify; or on loopback with --insecure-tcp)')
    .option('--docker-listen <host:port>', "serve the projects' Docker endpoint on TCP (needs --tlsverify; boson project docker-env)")
    .option('--socket <path>', 'its UNIX socket (default <run dir>/controller.sock)')
    .option('--tlsverify', 'TCP uses TLS and requires a client certificate signed by the CA (boson tls init makes them)')
    .option('--tlscacert <file>', 'CA that client certificates must be signed by (default <config dir>/tls/ca.pem)')
    .option('--tlscert <file>', "the controller's certificate (default <config dir>/tls/server-cert.pem)")
    .option('--tlskey <file>', "the controller's key (default <config dir>/tls/server-key.pem)")
    .option('--insecure-tcp', 'allow TCP without TLS, on loopback only')
    .option(
      '--etcd <urls>',
      'keep the state in etcd at these comma-separated client URLs, not in <state dir>/controller.db (BOSON_CONTROLLER_ETCD)',
    )
    .option('--etcd-prefix <prefix>', "the state's key prefix in etcd (default boson/; BOSON_CONTROLLER_ETCD_PREFIX)")
    .action(async (flags: ControllerFlags) => {
      const config = loadConfig();
      const { startController, hostLogger } = await import('../../main/index.ts');
      const running = await startController({
        paths: config.paths,
        socketPath: flags.socket,
        tcp: tcpRequest(flags.listen, flags, config.configDir),
        dockerTcp: tcpRequest(flags.dockerListen, flags, config.configDir),
        etcd: etcdRequest(flags, config.controllerEtcd, config.controllerEtcdOptions),
        log: hostLogger(config),
      });
      process.stdout.write(
        `Boson controller listening on ${running.socketPath}${running.tcp ? ` and tcp://${running.tcp.host}:${running.tcp.port}${running.tcp.tls ? ' (TLS)' : ''}` : ''} (pid ${process.pid})\n`,
      );
      const stop = (): void => {
        void running.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  registerMigrate(controller);
}
