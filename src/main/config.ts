/**
 * The configuration of a Boson host, read once from the environment by the composition root: one typed schema,
 * one table (SETTINGS) that names each setting's variable, default and meaning. docs/config.md is generated from
 * the same table and a test keeps the two equal.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { BosonError, bosonPaths, type BosonPaths } from '../common/index.ts';

/** The settings the composition root reads (paths come from bosonPaths, which reads its own variables). */
export const HostConfig = Type.Object({
  bootTimeoutMs: Type.Optional(Type.Integer({ minimum: 1 })),
  virtiofsd: Type.String(),
  debug: Type.Boolean(),
  netPrefix: Type.Optional(Type.String()),
  netSubnet: Type.Optional(Type.String()),
  netPool: Type.Optional(Type.String()),
  logLevel: Type.Union([Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug')]),
  logFile: Type.Optional(Type.String({ minLength: 1 })),
  bindAllow: Type.Optional(Type.Array(Type.String({ pattern: '^/' }))),
  jail: Type.Boolean(),
  vmmUser: Type.String(),
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
 * Every environment variable Boson reads, in one table. The layers not yet moved onto this configuration still
 * read their own variables (readBy names the module); a test fails for a variable read anywhere in src/ or bin/
 * that is not listed here, and keeps docs/config.md equal to configDoc().
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
    readBy: 'root; src/vmm/microvm.ts',
  },
  {
    env: 'BOSON_DEBUG',
    default: 'off',
    meaning: 'guest console and init diagnostics on stderr; stack traces of internal errors',
    readBy: 'root; src/cli/output.ts',
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
    readBy: 'src/machine/api/client.ts',
  },
  {
    env: 'BOSON_GUEST_KERNEL',
    default: "Boson's own (build/guest/kernel/vmlinuz-*), else the newest /boot/vmlinuz-*-cloud-amd64",
    meaning: 'the guest kernel',
    readBy: 'src/guest/bundle.ts',
  },
  {
    env: 'BOSON_GUEST_MODULES',
    default: '<kernel dir>/modules/<release>, else /lib/modules/<release>',
    meaning: "that kernel's modules",
    readBy: 'src/guest/bundle.ts',
  },
  { env: 'BOSON_ACCEL', default: 'probed', meaning: 'kvm or tcg, to override the probe', readBy: 'src/vmm/accel.ts' },
  { env: 'BOSON_QEMU', default: 'qemu-system-x86_64 on PATH', meaning: 'the QEMU binary', readBy: 'src/vmm/qemu-binary.ts' },
  { env: 'BOSON_TCG_TB_MIB', default: '16', meaning: "TCG's translation cache per VM, MiB", readBy: 'src/vmm/argv.ts' },
  { env: 'BOSON_ROOTFS', default: 'erofs', meaning: 'root disk format: erofs or ext4', readBy: 'src/image/rootfs.ts' },
  {
    env: 'BOSON_STAGING_DIR',
    default: 'a tmpfs when one has room, else the state directory',
    meaning: 'where layers are flattened before a root disk is made',
    readBy: 'src/image/staging.ts',
  },
  {
    env: 'BOSON_CONFIG_DIR',
    default: '$XDG_CONFIG_HOME/boson or ~/.config/boson',
    meaning: 'registry credentials (auth.json, 0600), per-registry CAs (certs.d/<host>/ca.crt)',
    readBy: 'src/image/credentials.ts',
  },
  {
    env: 'BOSON_INSECURE_REGISTRIES',
    default: 'none',
    meaning: 'host:port,... reached over plain HTTP (loopback registries always are)',
    readBy: 'src/image/registry.ts, src/image/store.ts',
  },
  {
    env: 'BOSON_REGISTRY_CA',
    default: 'none',
    meaning: 'a PEM CA bundle trusted for registries, besides the system CAs',
    readBy: 'src/image/registry.ts',
  },
  { env: 'BOSON_QUIET', default: 'off', meaning: 'no progress line on a terminal', readBy: 'src/cli/output.ts' },
  { env: 'BOSON_DOCKER_TRACE', default: 'off', meaning: 'print each Docker API request on stderr', readBy: 'src/docker/server.ts' },
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
    'by src/main; the others are still read by the module named, until their layer takes its configuration from the',
    'root.',
    '',
    '| variable | default | meaning | read by |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/** Reads the host configuration from `env`; INVALID_ARGUMENT naming a malformed setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HostConfig {
  const timeout =
    env.BOSON_BOOT_TIMEOUT_MS === undefined || env.BOSON_BOOT_TIMEOUT_MS === '' ? undefined : Number(env.BOSON_BOOT_TIMEOUT_MS);
  const config = {
    bootTimeoutMs: timeout,
    virtiofsd: env.BOSON_VIRTIOFSD || '/usr/lib/qemu/virtiofsd',
    debug: Boolean(env.BOSON_DEBUG),
    netPrefix: env.BOSON_NET_PREFIX || undefined,
    netSubnet: env.BOSON_NET_SUBNET || undefined,
    netPool: env.BOSON_NET_POOL || undefined,
    logLevel: (env.BOSON_LOG_LEVEL || 'info') as HostConfig['logLevel'],
    logFile: env.BOSON_LOG_FILE || undefined,
    bindAllow: env.BOSON_BIND_ALLOW ? env.BOSON_BIND_ALLOW.split(':').filter(Boolean) : undefined,
    jail: env.BOSON_VMM_JAIL !== 'off',
    vmmUser: env.BOSON_VMM_USER ?? 'boson-vmm',
  };
  const fault = Value.Errors(HostConfig, config).First();
  if (fault) throw new BosonError('INVALID_ARGUMENT', `invalid setting ${fault.path.slice(1)}: ${fault.message} (see docs/config.md)`);
  return { ...config, paths: bosonPaths(env) };
}
