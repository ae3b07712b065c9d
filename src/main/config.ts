/**
 * The configuration of a Boson host, read once from the environment by the composition root: one typed schema,
 * one table (SETTINGS) that names each setting's variable, default and meaning. docs/config.md is generated from
 * the same table and a test keeps the two equal.
 */
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { BosonError, bosonPaths, type BosonPaths } from '../common/index.ts';
import { bosonConfigDir, dockerConfigPath, hostSetting, terminalSettings } from './client-settings.ts';
import { parseLogOptions } from '../machine/index.ts';

/** Where a controller keeps its state in etcd (BOSON_CONTROLLER_ETCD…, or `boson controller --etcd`). */
export const ControllerEtcd = Type.Object({
  endpoints: Type.Array(Type.String({ pattern: '^https?://' }), { minItems: 1 }),
  prefix: Type.String({ minLength: 1 }),
  /** PEM files: the CA that signed etcd's certificate, and this client's certificate and key (for etcd's client-cert auth). */
  caFile: Type.Optional(Type.String({ minLength: 1 })),
  certFile: Type.Optional(Type.String({ minLength: 1 })),
  keyFile: Type.Optional(Type.String({ minLength: 1 })),
});
export type ControllerEtcd = Static<typeof ControllerEtcd>;

/**
 * ControllerEtcd without the URLs (BOSON_CONTROLLER_ETCD_PREFIX, _CA, _CERT, _KEY), read also when BOSON_CONTROLLER_ETCD
 * is unset: for URLs given by a flag.
 */
export const ControllerEtcdOptions = Type.Omit(ControllerEtcd, ['endpoints']);
export type ControllerEtcdOptions = Static<typeof ControllerEtcdOptions>;

/**
 * The etcd client URLs in `text` (comma-separated, e.g. `http://10.0.0.1:2379,http://10.0.0.2:2379`); INVALID_ARGUMENT
 * naming `what` for an empty list or anything that is not an http(s) URL with a host.
 */
export function parseEtcdEndpoints(text: string, what: string): string[] {
  const endpoints = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (endpoints.length === 0) throw new BosonError('INVALID_ARGUMENT', `${what} names no etcd endpoint`);
  for (const e of endpoints) {
    let url: URL | undefined;
    try {
      url = new URL(e);
    } catch {
      /* reported below */
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname || (url.pathname !== '/' && url.pathname !== ''))
      throw new BosonError('INVALID_ARGUMENT', `${what}: "${e}" is not an etcd client URL (http://host:port or https://host:port)`);
  }
  return endpoints;
}

/** The controller's etcd settings from `env` (undefined: BOSON_CONTROLLER_ETCD is unset, the controller uses SQLite). */
export function controllerEtcdSetting(env: NodeJS.ProcessEnv, endpoints = env.BOSON_CONTROLLER_ETCD): ControllerEtcd | undefined {
  if (endpoints === undefined || endpoints === '') return undefined;
  return { endpoints: parseEtcdEndpoints(endpoints, 'BOSON_CONTROLLER_ETCD'), ...controllerEtcdOptionsSetting(env) };
}

/** The controller's etcd settings other than the URLs, from `env` (the prefix defaults to boson/, each file to none). */
function controllerEtcdOptionsSetting(env: NodeJS.ProcessEnv): ControllerEtcdOptions {
  return {
    prefix: env.BOSON_CONTROLLER_ETCD_PREFIX || 'boson/',
    caFile: env.BOSON_CONTROLLER_ETCD_CA || undefined,
    certFile: env.BOSON_CONTROLLER_ETCD_CERT || undefined,
    keyFile: env.BOSON_CONTROLLER_ETCD_KEY || undefined,
  };
}

/**
 * The settings the composition root reads (paths come from bosonPaths, which reads its own variables). The layers
 * below take what they need of it as options; none of them reads the environment.
 */
export const HostConfig = Type.Object({
  bootTimeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
  virtiofsd: Type.String(),
  /** BOSON_PASST: the passt that gives rootless micro-VMs their network. */
  passt: Type.String(),
  debug: Type.Boolean(),
  netPrefix: Type.Optional(Type.String()),
  netSubnet: Type.Optional(Type.String()),
  netPool: Type.Optional(Type.String()),
  logLevel: Type.Union([Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug')]),
  logFile: Type.Optional(Type.String({ minLength: 1 })),
  bindAllow: Type.Optional(Type.Array(Type.String({ pattern: '^/' }))),
  jail: Type.Boolean(),
  vmmUser: Type.String(),
  /** BOSON_HOST: the daemon socket the CLI talks to (unix:///path or a path); default <run dir>/boson.sock. */
  host: Type.Optional(Type.String({ minLength: 1 })),
  /** BOSON_GUEST_KERNEL and BOSON_GUEST_MODULES: the guest kernel and its modules; default found by the guest layer. */
  guestKernel: Type.Optional(Type.String({ minLength: 1 })),
  guestModules: Type.Optional(Type.String({ minLength: 1 })),
  /** BOSON_ACCEL: 'kvm' or 'tcg' forces the accelerator (anything else: probed). */
  accel: Type.Optional(Type.String()),
  /** BOSON_QEMU: the QEMU binary (a path, or a name looked up on PATH); default qemu-system-x86_64. */
  qemu: Type.Optional(Type.String()),
  /** BOSON_TCG_TB_MIB: TCG's translation cache per VM (a positive integer, else 16). */
  tcgTbMiB: Type.Integer({ minimum: 1 }),
  /** BOSON_ROOTFS: the root disk format. */
  rootfs: Type.Union([Type.Literal('erofs'), Type.Literal('ext4')]),
  /** BOSON_STAGING_DIR: "store" or an absolute path (checked where the staging tree is made); default a tmpfs with room. */
  stagingDir: Type.Optional(Type.String()),
  /** BOSON_CONFIG_DIR, else $XDG_CONFIG_HOME/boson, else ~/.config/boson: credentials, certs.d, tls. */
  configDir: Type.String({ minLength: 1 }),
  /** Docker's config.json ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), read for credentials. */
  dockerConfigFile: Type.String({ minLength: 1 }),
  /** BOSON_INSECURE_REGISTRIES: hosts reached over plain HTTP besides loopback ones. */
  insecureRegistries: Type.Array(Type.String()),
  /** BOSON_REGISTRY_CA: a PEM CA bundle trusted for registries. */
  registryCa: Type.Optional(Type.String()),
  /** BOSON_QUIET: no progress line on a terminal. */
  quiet: Type.Boolean(),
  /** BOSON_DOCKER_TRACE: print each Docker API request on stderr. */
  dockerTrace: Type.Boolean(),
  /** BOSON_CRI: the daemon serves Kubernetes' CRI on <run dir>/cri.sock ('off' turns it off; so does up --no-cri). */
  cri: Type.Boolean(),
  /** BOSON_CNI, BOSON_CNI_CONF_DIR, BOSON_CNI_BIN_DIRS, BOSON_CNI_SUBNET: pod networks through CNI plugins. */
  cni: Type.Object({
    enabled: Type.Boolean(),
    confDir: Type.String({ minLength: 1 }),
    binDirs: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    subnet: Type.String({ pattern: '^\\d{1,3}(\\.\\d{1,3}){3}/\\d{1,2}$' }),
  }),
  /** BOSON_LOG_OPTS: the log rotation of containers created without --log-opt (Docker's daemon log-opts). */
  logDefaults: Type.Optional(
    Type.Object({ maxSizeBytes: Type.Optional(Type.Integer({ minimum: 1 })), maxFiles: Type.Optional(Type.Integer({ minimum: 1 })) }),
  ),
  /**
   * BOSON_WARM_IMAGES, BOSON_WARM_PER_SHAPE, BOSON_WARM_MEMORY_MIB, BOSON_WARM_MODE: the daemon's warm start (a pool of
   * pre-booted micro-VMs, or template snapshots that starts clone).
   */
  warm: Type.Object({
    images: Type.Array(Type.String({ minLength: 1 })),
    perShape: Type.Integer({ minimum: 0, maximum: 64 }),
    memoryBudgetMiB: Type.Integer({ minimum: 0 }),
    mode: Type.Union([Type.Literal('pool'), Type.Literal('template')]),
    cloneTbMiB: Type.Integer({ minimum: 1, maximum: 1024 }),
  }),
  /** BOSON_FLEET_CHECK_INTERVAL_MS, BOSON_FLEET_CHECK_TIMEOUT_MS, BOSON_FLEET_LOST_AFTER_MS: a controller's health checks of its machines (interval, timeout) and when one is LOST. */
  fleetCheckIntervalMs: Type.Integer({ minimum: 100 }),
  fleetCheckTimeoutMs: Type.Integer({ minimum: 100 }),
  fleetLostAfterMs: Type.Integer({ minimum: 100 }),
  /**
   * BOSON_CONTROLLER_ETCD, BOSON_CONTROLLER_ETCD_PREFIX, BOSON_CONTROLLER_ETCD_CA, BOSON_CONTROLLER_ETCD_CERT,
   * BOSON_CONTROLLER_ETCD_KEY: the controller keeps its state in etcd (these client URLs, under this key prefix, with
   * these PEM files for TLS) instead of <state dir>/controller.db.
   */
  controllerEtcd: Type.Optional(ControllerEtcd),
  /** BOSON_CONTROLLER_ETCD_PREFIX, _CA, _CERT, _KEY alone: for etcd URLs given by a flag (`--etcd`, `migrate --to-etcd`) without BOSON_CONTROLLER_ETCD. */
  controllerEtcdOptions: ControllerEtcdOptions,
});
export type HostConfig = Static<typeof HostConfig> & { paths: BosonPaths };

/** One setting: its environment variable, its default (as text), what it means, and who reads it. */
export interface Setting {
  env: string;
  default: string;
  meaning: string;
  /** 'root' where the composition root reads it (loadConfig, bosonPaths); otherwise the module that still does. */
  readBy: string;
}

/**
 * Every environment variable Boson reads, in one table. All but bin/boson's are read by the composition root
 * (loadConfig, bosonPaths) and handed down as options (readBy 'root'); a test fails for a variable read anywhere in
 * src/ or bin/ that is not listed here, and keeps docs/config.md equal to configDoc(); test/layers.test.ts fails
 * for a process.env read below the root.
 */
export const SETTINGS: Setting[] = [
  {
    env: 'BOSON_STATE_DIR',
    default: '/var/lib/boson (rootless: ~/.local/share/boson)',
    meaning: 'images, root disks, containers, volumes, the state database',
    readBy: 'root',
  },
  {
    env: 'BOSON_RUN_DIR',
    default: '/run/boson (rootless: $XDG_RUNTIME_DIR/boson)',
    meaning: 'daemon sockets, VM runtime files',
    readBy: 'root',
  },
  { env: 'BOSON_GUEST_DIR', default: 'build/guest', meaning: 'built boson-init and cached initramfs images', readBy: 'root' },
  { env: 'BOSON_BOOT_TIMEOUT_MS', default: '15000 (TCG), 5000 (KVM)', meaning: 'boot watchdog, per attempt (3 attempts)', readBy: 'root' },
  {
    env: 'BOSON_VIRTIOFSD',
    default: '/usr/lib/qemu/virtiofsd',
    meaning: 'the virtiofsd that serves bind mounts',
    readBy: 'root',
  },
  {
    env: 'BOSON_PASST',
    default: '/usr/bin/passt',
    meaning: "the passt that gives rootless micro-VMs their network (it keeps them from the host's loopback)",
    readBy: 'root',
  },
  {
    env: 'BOSON_DEBUG',
    default: 'off',
    meaning: 'guest console and init diagnostics on stderr; stack traces of internal errors',
    readBy: 'root',
  },
  {
    env: 'BOSON_NET_PREFIX',
    default: 'boson',
    meaning: 'prefix of the bridges, taps and nftables table Boson makes (1 to 6 characters)',
    readBy: 'root',
  },
  { env: 'BOSON_NET_SUBNET', default: '10.88.0.0/16', meaning: 'subnet of the default bridge network', readBy: 'root' },
  {
    env: 'BOSON_NET_POOL',
    default: '10.89.0.0/16 to 10.127.255.0/24, in /24s',
    meaning: 'where subnets of new networks are taken from',
    readBy: 'root',
  },
  {
    env: 'BOSON_LOG_LEVEL',
    default: 'info',
    meaning: "the daemon's log level: error, warn, info or debug (debug: every API request)",
    readBy: 'root',
  },
  { env: 'BOSON_LOG_FILE', default: 'stderr', meaning: 'a file the daemon appends its JSON log lines to', readBy: 'root' },
  {
    env: 'BOSON_LOG_OPTS',
    default: 'none (logs are not rotated)',
    meaning:
      "the log rotation of containers created without --log-opt, as Docker's daemon log-opts: comma-separated max-size=… and max-file=… (e.g. max-size=10m,max-file=3)",
    readBy: 'root',
  },
  {
    env: 'BOSON_BIND_ALLOW',
    default: 'anywhere but protected paths',
    meaning:
      "host directories bind mounts may come from, colon-separated (/etc, /proc, /sys, /dev, /boot, /run, /root and Boson's own directories are never allowed)",
    readBy: 'root',
  },
  {
    env: 'BOSON_VMM_JAIL',
    default: 'on',
    meaning: 'confine each QEMU (seccomp sandbox, chroot, mount namespace, cgroup, its own user); off only to compare or debug',
    readBy: 'root',
  },
  {
    env: 'BOSON_VMM_USER',
    default: 'boson-vmm (made by scripts/setup.sh)',
    meaning: "the unprivileged user a daemon's QEMUs switch to; '' keeps root",
    readBy: 'root',
  },
  {
    env: 'BOSON_HOST',
    default: '<run dir>/boson.sock',
    meaning: 'the daemon socket the CLI talks to',
    readBy: 'root',
  },
  {
    env: 'BOSON_GUEST_KERNEL',
    default: "Boson's own (build/guest/kernel/vmlinuz-*), else the newest /boot/vmlinuz-*-cloud-amd64",
    meaning: 'the guest kernel',
    readBy: 'root',
  },
  {
    env: 'BOSON_GUEST_MODULES',
    default: '<kernel dir>/modules/<release>, else /lib/modules/<release>',
    meaning: "that kernel's modules",
    readBy: 'root',
  },
  { env: 'BOSON_ACCEL', default: 'probed', meaning: 'kvm or tcg, to override the probe', readBy: 'root' },
  { env: 'BOSON_QEMU', default: 'qemu-system-x86_64 on PATH', meaning: 'the QEMU binary', readBy: 'root' },
  { env: 'BOSON_TCG_TB_MIB', default: '16', meaning: "TCG's translation cache per VM, MiB", readBy: 'root' },
  { env: 'BOSON_ROOTFS', default: 'erofs', meaning: 'root disk format: erofs or ext4', readBy: 'root' },
  {
    env: 'BOSON_STAGING_DIR',
    default: 'a tmpfs when one has room, else the state directory',
    meaning: 'where layers are flattened before a root disk is made',
    readBy: 'root',
  },
  {
    env: 'BOSON_CONFIG_DIR',
    default: '$XDG_CONFIG_HOME/boson or ~/.config/boson',
    meaning: 'registry credentials (auth.json, 0600), per-registry CAs (certs.d/<host>/ca.crt)',
    readBy: 'root',
  },
  {
    env: 'BOSON_INSECURE_REGISTRIES',
    default: 'none',
    meaning: 'host:port,... reached over plain HTTP (loopback registries always are)',
    readBy: 'root',
  },
  {
    env: 'BOSON_REGISTRY_CA',
    default: 'none',
    meaning: 'a PEM CA bundle trusted for registries, besides the system CAs',
    readBy: 'root',
  },
  { env: 'BOSON_QUIET', default: 'off', meaning: 'no progress line on a terminal', readBy: 'root' },
  { env: 'BOSON_DOCKER_TRACE', default: 'off', meaning: 'print each Docker API request on stderr', readBy: 'root' },
  {
    env: 'BOSON_CRI',
    default: 'on',
    meaning:
      "the daemon serves Kubernetes' CRI (runtime.v1, pod = micro-VM) on <run dir>/cri.sock; 'off' (or boson up --no-cri) turns it off",
    readBy: 'root',
  },
  {
    env: 'BOSON_CNI',
    default: 'on',
    meaning:
      "CRI pods get their network from CNI plugins (a network namespace per pod wired to its VM's NIC); 'off': pods join the machine's default network",
    readBy: 'root',
  },
  {
    env: 'BOSON_CNI_CONF_DIR',
    default: '/etc/cni/net.d',
    meaning:
      'where the CNI network configuration list is read (the first *.conflist, *.conf or *.json by name); Boson writes 10-boson.conflist there when there is none',
    readBy: 'root',
  },
  {
    env: 'BOSON_CNI_BIN_DIRS',
    default: '/usr/lib/cni:/opt/cni/bin',
    meaning: 'where CNI plugins are looked for (CNI_PATH)',
    readBy: 'root',
  },
  {
    env: 'BOSON_CNI_SUBNET',
    default: '10.85.0.0/16',
    meaning: 'the pod subnet of the default list Boson writes (bridge <BOSON_NET_PREFIX>-cni0, host-local IPAM under <state>/cni)',
    readBy: 'root',
  },
  {
    env: 'BOSON_WARM_IMAGES',
    default: 'none (warm start off)',
    meaning:
      'warm start: images (comma-separated, as for `boson run`) the daemon keeps pre-booted micro-VMs for; a start of such an image with a matching shape takes one instead of booting (docs/design.md "Warm start")',
    readBy: 'root',
  },
  { env: 'BOSON_WARM_PER_SHAPE', default: '2', meaning: 'warm start: pre-booted micro-VMs kept per image and shape', readBy: 'root' },
  {
    env: 'BOSON_WARM_MEMORY_MIB',
    default: '1024',
    meaning:
      'warm start: the guest memory all pre-booted micro-VMs together may have, or the host memory all templates together may hold (their RAM files; one being built counts its guest memory), MiB (0: none)',
    readBy: 'root',
  },
  {
    env: 'BOSON_WARM_CLONE_TB_MIB',
    default: '8',
    meaning:
      "warm start from templates: TCG's translation cache of a clone, MiB (a clone never boots; QEMU backs the cache with huge pages, so all of it is resident: 16, the boot's size, starts clones a little faster and costs 8 MiB more each)",
    readBy: 'root',
  },
  {
    env: 'BOSON_WARM_MODE',
    default: 'pool',
    meaning:
      'warm start: `pool` keeps pre-booted paused micro-VMs (BOSON_WARM_PER_SHAPE per shape, each taken by one start); `template` keeps one template snapshot per shape (guest RAM in a file on /dev/shm) that every start of the shape clones copy-on-write (docs/design.md "Warm start")',
    readBy: 'root',
  },
  {
    env: 'BOSON_FLEET_CHECK_INTERVAL_MS',
    default: '5000',
    meaning: 'how often a controller checks each machine of its fleet (GET /healthz over mutual TLS)',
    readBy: 'root',
  },
  { env: 'BOSON_FLEET_CHECK_TIMEOUT_MS', default: '3000', meaning: 'how long one health check waits for a machine', readBy: 'root' },
  {
    env: 'BOSON_FLEET_LOST_AFTER_MS',
    default: '30000',
    meaning:
      'a machine the controller has not reached for this long is LOST (no new placements; its restart-policy containers are placed again)',
    readBy: 'root',
  },
  {
    env: 'BOSON_CONTROLLER_ETCD',
    default: '(unset: SQLite)',
    meaning:
      'the controller keeps its state in etcd at these comma-separated client URLs (e.g. `http://10.0.0.1:2379,http://10.0.0.2:2379`) instead of `<state dir>/controller.db`; `boson controller --etcd` sets it for one run; several controllers on one etcd share one state (docs/controller.md "Growing from one host to many")',
    readBy: 'root',
  },
  {
    env: 'BOSON_CONTROLLER_ETCD_PREFIX',
    default: 'boson/',
    meaning: "the key prefix of the controller's state in etcd (several Boson controllers, or other users, can share one etcd)",
    readBy: 'root',
  },
  {
    env: 'BOSON_CONTROLLER_ETCD_CA',
    default: '(unset)',
    meaning: "with `https://` etcd URLs: a PEM file of the CA that signed etcd's server certificate",
    readBy: 'root',
  },
  {
    env: 'BOSON_CONTROLLER_ETCD_CERT',
    default: '(unset)',
    meaning: "the controller's client certificate (PEM) for etcd's client-certificate authentication, with BOSON_CONTROLLER_ETCD_KEY",
    readBy: 'root',
  },
  { env: 'BOSON_CONTROLLER_ETCD_KEY', default: '(unset)', meaning: 'the key of BOSON_CONTROLLER_ETCD_CERT (PEM)', readBy: 'root' },
  {
    env: 'BOSON_NO_BUNDLE',
    default: 'off',
    meaning: 'bin/boson runs the sources through tsx instead of the esbuild bundle',
    readBy: 'bin/boson',
  },
];

/** docs/config.md: the settings table, generated from SETTINGS. */
export function configDoc(): string {
  const rows = SETTINGS.map(
    (s) => `| \`${s.env}\` | ${s.default} | ${s.meaning} | ${s.readBy === 'root' ? 'composition root' : s.readBy} |`,
  );
  return [
    '# Settings',
    '',
    'Every environment variable Boson reads. Generated from `SETTINGS` in src/main/config.ts',
    '(`npx tsx scripts/config-doc.ts > docs/config.md`); test/config.test.ts keeps the two equal and fails for a',
    'variable read anywhere in src/ or bin/ that is not listed. Settings marked "composition root" are read once,',
    'by src/main (loadConfig, bosonPaths), and handed to each layer as options; no code below it reads the',
    'environment (test/layers.test.ts). The others are read by the file named.',
    '',
    '| variable | default | meaning | read by |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/** BOSON_LOG_OPTS ("max-size=10m,max-file=3") as LogOptions; INVALID_ARGUMENT naming the setting. */
function logOptsSetting(value: string): { maxSizeBytes?: number; maxFiles?: number } {
  const opts: Record<string, string> = {};
  for (const item of value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new BosonError('INVALID_ARGUMENT', `invalid setting BOSON_LOG_OPTS: ${JSON.stringify(item)} is not key=value`);
    opts[item.slice(0, eq)] = item.slice(eq + 1);
  }
  try {
    return parseLogOptions(opts);
  } catch (err) {
    throw new BosonError('INVALID_ARGUMENT', `invalid setting BOSON_LOG_OPTS: ${(err as Error).message}`);
  }
}

/** An integer setting: `fallback` when unset or empty; NaN (refused by the schema) when not a number. */
function intSetting(value: string | undefined, fallback: number): number {
  return value === undefined || value.trim() === '' ? fallback : Number(value);
}

/** Reads the host configuration from `env`; INVALID_ARGUMENT naming a malformed setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HostConfig {
  const timeout =
    env.BOSON_BOOT_TIMEOUT_MS === undefined || env.BOSON_BOOT_TIMEOUT_MS === '' ? undefined : Number(env.BOSON_BOOT_TIMEOUT_MS);
  const rootfs = env.BOSON_ROOTFS === undefined || env.BOSON_ROOTFS === '' ? 'erofs' : env.BOSON_ROOTFS;
  if (rootfs !== 'erofs' && rootfs !== 'ext4')
    throw new BosonError('INVALID_ARGUMENT', `BOSON_ROOTFS must be "erofs" or "ext4", not "${rootfs}"`);
  const tb = Number(env.BOSON_TCG_TB_MIB);
  const config = {
    bootTimeoutMs: timeout,
    virtiofsd: env.BOSON_VIRTIOFSD || '/usr/lib/qemu/virtiofsd',
    passt: env.BOSON_PASST || '/usr/bin/passt',
    debug: terminalSettings(env).debug,
    netPrefix: env.BOSON_NET_PREFIX || undefined,
    netSubnet: env.BOSON_NET_SUBNET || undefined,
    netPool: env.BOSON_NET_POOL || undefined,
    logLevel: (env.BOSON_LOG_LEVEL || 'info') as HostConfig['logLevel'],
    logFile: env.BOSON_LOG_FILE || undefined,
    bindAllow: env.BOSON_BIND_ALLOW ? env.BOSON_BIND_ALLOW.split(':').filter(Boolean) : undefined,
    jail: env.BOSON_VMM_JAIL !== 'off',
    vmmUser: env.BOSON_VMM_USER ?? 'boson-vmm',
    host: hostSetting(env),
    guestKernel: env.BOSON_GUEST_KERNEL ? path.resolve(env.BOSON_GUEST_KERNEL) : undefined,
    guestModules: env.BOSON_GUEST_MODULES || undefined,
    accel: env.BOSON_ACCEL,
    qemu: env.BOSON_QEMU,
    tcgTbMiB: Number.isInteger(tb) && tb > 0 ? tb : 16,
    rootfs: rootfs as HostConfig['rootfs'],
    stagingDir: env.BOSON_STAGING_DIR || undefined,
    configDir: bosonConfigDir(env),
    dockerConfigFile: dockerConfigPath(env),
    insecureRegistries: (env.BOSON_INSECURE_REGISTRIES ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    registryCa: env.BOSON_REGISTRY_CA || undefined,
    quiet: terminalSettings(env).quiet,
    dockerTrace: Boolean(env.BOSON_DOCKER_TRACE),
    cri: env.BOSON_CRI !== 'off',
    cni: {
      enabled: env.BOSON_CNI !== 'off',
      confDir: env.BOSON_CNI_CONF_DIR || '/etc/cni/net.d',
      binDirs: (env.BOSON_CNI_BIN_DIRS || '/usr/lib/cni:/opt/cni/bin').split(':').filter(Boolean),
      subnet: env.BOSON_CNI_SUBNET || '10.85.0.0/16',
    },
    logDefaults: env.BOSON_LOG_OPTS ? logOptsSetting(env.BOSON_LOG_OPTS) : undefined,
    warm: {
      images: (env.BOSON_WARM_IMAGES ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      perShape: intSetting(env.BOSON_WARM_PER_SHAPE, 2),
      memoryBudgetMiB: intSetting(env.BOSON_WARM_MEMORY_MIB, 1024),
      mode: (env.BOSON_WARM_MODE || 'pool') as 'pool' | 'template',
      cloneTbMiB: intSetting(env.BOSON_WARM_CLONE_TB_MIB, 8),
    },
    fleetCheckIntervalMs: intSetting(env.BOSON_FLEET_CHECK_INTERVAL_MS, 5000),
    fleetCheckTimeoutMs: intSetting(env.BOSON_FLEET_CHECK_TIMEOUT_MS, 3000),
    fleetLostAfterMs: intSetting(env.BOSON_FLEET_LOST_AFTER_MS, 30_000),
    controllerEtcd: controllerEtcdSetting(env),
    controllerEtcdOptions: controllerEtcdOptionsSetting(env),
  };
  const fault = Value.Errors(HostConfig, config).First();
  if (fault) throw new BosonError('INVALID_ARGUMENT', `invalid setting ${fault.path.slice(1)}: ${fault.message} (see docs/config.md)`);
  return { ...config, paths: bosonPaths(env) };
}
