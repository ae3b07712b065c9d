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
});
export type HostConfig = Static<typeof HostConfig> & { paths: BosonPaths };

/** One setting: its environment variable, its default (as text), what it means. */
export interface Setting {
  env: string;
  default: string;
  meaning: string;
}

/**
 * Every environment variable Boson reads, in one table. Those marked by `key` are read here; the others are read
 * where their layer has not been moved to this configuration yet (named in docs/config.md).
 */
export const SETTINGS: Setting[] = [
  { env: 'BOSON_STATE_DIR', default: '/var/lib/boson (rootless: ~/.local/share/boson)', meaning: 'images, root disks, containers, volumes, the state database' },
  { env: 'BOSON_RUN_DIR', default: '/run/boson (rootless: $XDG_RUNTIME_DIR/boson)', meaning: 'daemon sockets, VM runtime files' },
  { env: 'BOSON_GUEST_DIR', default: 'build/guest', meaning: 'built boson-init and cached initramfs images' },
  { env: 'BOSON_BOOT_TIMEOUT_MS', default: '15000 (TCG), 5000 (KVM)', meaning: 'boot watchdog, per attempt (3 attempts)' },
  { env: 'BOSON_VIRTIOFSD', default: '/usr/lib/qemu/virtiofsd', meaning: 'the virtiofsd that serves bind mounts' },
  { env: 'BOSON_DEBUG', default: 'off', meaning: 'guest console and init diagnostics on stderr' },
  { env: 'BOSON_NET_PREFIX', default: 'boson', meaning: 'prefix of the bridges, taps and nftables tables Boson makes' },
  { env: 'BOSON_NET_SUBNET', default: '10.88.0.0/16', meaning: 'subnet of the default bridge network' },
  { env: 'BOSON_NET_POOL', default: '10.89.0.0/16 to 10.127.255.0/24, in /24s', meaning: 'where subnets of new networks are taken from' },
];

/** Reads the host configuration from `env`; INVALID_ARGUMENT naming a malformed setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HostConfig {
  const timeout = env.BOSON_BOOT_TIMEOUT_MS === undefined || env.BOSON_BOOT_TIMEOUT_MS === '' ? undefined : Number(env.BOSON_BOOT_TIMEOUT_MS);
  const config = {
    bootTimeoutMs: timeout,
    virtiofsd: env.BOSON_VIRTIOFSD || '/usr/lib/qemu/virtiofsd',
    debug: Boolean(env.BOSON_DEBUG),
    netPrefix: env.BOSON_NET_PREFIX || undefined,
    netSubnet: env.BOSON_NET_SUBNET || undefined,
    netPool: env.BOSON_NET_POOL || undefined,
  };
  const fault = Value.Errors(HostConfig, config).First();
  if (fault) throw new BosonError('INVALID_ARGUMENT', `invalid setting ${fault.path.slice(1)}: ${fault.message} (see docs/config.md)`);
  return { ...config, paths: bosonPaths(env) };
}
