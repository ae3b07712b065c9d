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
import { loadConfig, parseEtcdEndpoints, type ControllerEtcd } from '../../main/index.ts';

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

/** Where the flags (over the BOSON_CONTROLLER_ETCD settings) put the state in etcd; undefined: SQLite. */
export function etcdRequest(
  flags: Pick<ControllerFlags, 'etcd' | 'etcdPrefix'>,
  setting: ControllerEtcd | undefined,
): ControllerEtcd | undefined {
  if (flags.etcd === undefined) {
    if (flags.etcdPrefix !== undefined && !setting) throw new BosonError('USAGE', '--etcd-prefix needs --etcd (or BOSON_CONTROLLER_ETCD)');
    return setting && flags.etcdPrefix !== undefined ? { ...setting, prefix: flags.etcdPrefix } : setting;
  }
  return {
    ...setting,
    endpoints: parseEtcdEndpoints(flags.etcd, '--etcd'),
    prefix: flags.etcdPrefix ?? setting?.prefix ?? 'boson/',
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

/** Adds `controller` to the program. */
export function registerController(program: Command): void {
  program
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
        etcd: etcdRequest(flags, config.controllerEtcd),
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
}
