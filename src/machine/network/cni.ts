/**
 * The Container Network Interface as a runtime calls it (the CNI SPEC, 1.0.0, and libcni's conventions): network
 * configuration lists read from a directory (the first `*.conflist`, `*.conf` or `*.json` file by name, as
 * containerd and CRI-O pick theirs), plugins found on a search path and run with the standard environment
 * (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH) and their configuration on stdin, each
 * ADD handed the previous plugin's result (`prevResult`), DEL run in reverse order with the cached result, and
 * capability arguments (`runtimeConfig`) given only to the plugins that declare the capability.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../../common/index.ts';

/** One plugin's configuration in a list (at least its `type`). */
export type CniPluginConf = Record<string, unknown> & { type: string };

/** A network configuration list as libcni has it. */
export interface CniNetworkList {
  cniVersion: string;
  name: string;
  plugins: CniPluginConf[];
  /** The file it was read from. */
  file: string;
}

/** What a runtime tells every plugin about one attachment. */
export interface CniRuntimeConf {
  containerId: string;
  /** Path of the network namespace (e.g. /run/netns/<name>). */
  netns: string;
  ifname: string;
  /** CNI_ARGS, in order (K8S_POD_NAMESPACE, K8S_POD_NAME, ...). */
  args: Array<[string, string]>;
  /** Capability arguments by capability name (portMappings, ...): each plugin gets those it declares. */
  capabilityArgs: Record<string, unknown>;
}

/** A CNI result (SPEC 1.0.0), as much of it as Boson reads; the rest is kept as the plugin wrote it. */
export interface CniResult {
  cniVersion?: string;
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number }>;
  routes?: Array<{ dst: string; gw?: string }>;
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
  [more: string]: unknown;
}

/** The settings of CNI on this host. */
export interface CniSettings {
  /** Where network configuration lists are read (BOSON_CNI_CONF_DIR, default /etc/cni/net.d). */
  confDir: string;
  /** Where plugins are looked for, in order (BOSON_CNI_BIN_DIRS, default /usr/lib/cni:/opt/cni/bin). */
  binDirs: string[];
  /** What the default list Boson writes when `confDir` has none uses. */
  defaults: { bridge: string; subnet: string; dataDir: string };
}

/** The list Boson writes when the configuration directory has none: bridge + host-local, then portmap. */
export function defaultNetworkList(defaults: CniSettings['defaults']): Omit<CniNetworkList, 'file'> {
  return {
    cniVersion: '1.0.0',
    name: 'boson-pods',
    plugins: [
      {
        type: 'bridge',
        bridge: defaults.bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: defaults.subnet }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: defaults.dataDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/** The file name of the default list. */
export const DEFAULT_LIST_FILE = '10-boson.conflist';

function bad(file: string, why: string): never {
  throw new BosonError('CNI_FAILED', `CNI configuration ${file}: ${why}`);
}

/** A list (or a single plugin's configuration, made a list of one as libcni does) from the text of `file`. */
export function parseNetworkList(text: string, file: string): CniNetworkList {
  let conf: Record<string, unknown>;
  try {
    conf = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    bad(file, `not JSON: ${(err as Error).message}`);
  }
  if (typeof conf !== 'object' || conf === null) bad(file, 'not a JSON object');
  const name = conf.name;
  if (typeof name !== 'string' || name === '') bad(file, 'no "name"');
  const cniVersion = typeof conf.cniVersion === 'string' ? conf.cniVersion : '0.2.0';
  let plugins: unknown;
  if (file.endsWith('.conflist')) plugins = conf.plugins;
  else {
    const { name: _n, cniVersion: _v, ...plugin } = conf;
    plugins = [plugin];
  }
  if (!Array.isArray(plugins) || plugins.length === 0) bad(file, 'no "plugins"');
  for (const p of plugins)
    if (typeof p !== 'object' || p === null || typeof (p as { type?: unknown }).type !== 'string') bad(file, 'a plugin without a "type"');
  return { cniVersion, name, plugins: plugins as CniPluginConf[], file };
}

/**
 * The network list pods use: the first configuration file of `confDir` by name; when there is none, Boson's
 * default list is written there first (atomically) and used.
 */
export async function loadNetworkList(settings: CniSettings): Promise<CniNetworkList> {
  const files = (await readdir(settings.confDir).catch(() => [] as string[]))
    .filter((f) => /\.(conflist|conf|json)$/.test(f) && !f.startsWith('.'))
    .sort();
  if (files.length > 0) {
    const file = path.join(settings.confDir, files[0]!);
    return parseNetworkList(await readFile(file, 'utf8'), file);
  }
  const list = defaultNetworkList(settings.defaults);
  const file = path.join(settings.confDir, DEFAULT_LIST_FILE);
  await mkdir(settings.confDir, { recursive: true, mode: 0o755 });
  // Two pods run at once may both write it: each its own temporary file, the same content renamed over the name.
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, JSON.stringify(list, null, 2) + '\n', { mode: 0o644 });
  await rename(tmp, file);
  return { ...list, file };
}

/** The path of plugin `type` on `binDirs`; CNI_FAILED naming the directories when none has it. */
export async function findPlugin(type: string, binDirs: string[]): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(type)) throw new BosonError('CNI_FAILED', `invalid CNI plugin type ${JSON.stringify(type)}`);
  for (const dir of binDirs) {
    const p = path.join(dir, type);
    if (
      await access(p, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return p;
  }
  throw new BosonError('CNI_FAILED', `CNI plugin ${type} not found in ${binDirs.join(':')} (install containernetworking-plugins)`);
}

/** The configuration one plugin gets on stdin (libcni's buildOneConfig). */
export function pluginConfig(
  list: Pick<CniNetworkList, 'name' | 'cniVersion'>,
  plugin: CniPluginConf,
  rt: CniRuntimeConf,
  prevResult: CniResult | undefined,
): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
  const caps = (plugin.capabilities ?? {}) as Record<string, unknown>;
  const runtimeConfig: Record<string, unknown> = {};
  for (const [cap, value] of Object.entries(rt.capabilityArgs)) if (caps[cap] === true) runtimeConfig[cap] = value;
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  if (prevResult !== undefined) conf.prevResult = prevResult;
  return conf;
}

/** How long one plugin may run. */
const PLUGIN_TIMEOUT_MS = 60_000;

/** Runs one plugin: its result (ADD) or nothing; CNI_FAILED with the plugin's own error message otherwise. */
export async function execPlugin(
  command: 'ADD' | 'DEL' | 'CHECK',
  plugin: CniPluginConf,
  conf: Record<string, unknown>,
  rt: CniRuntimeConf,
  binDirs: string[],
): Promise<CniResult | undefined> {
  const bin = await findPlugin(plugin.type, binDirs);
  const env: NodeJS.ProcessEnv = {
    // Plugins run iptables, ip and the like: the system's directories (not the daemon's environment).
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: command,
    CNI_CONTAINERID: rt.containerId,
    CNI_NETNS: rt.netns,
    CNI_IFNAME: rt.ifname,
    CNI_ARGS: rt.args.map(([k, v]) => `${k}=${v}`).join(';'),
    CNI_PATH: binDirs.join(':'),
  };
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), PLUGIN_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new BosonError('CNI_FAILED', `cannot run CNI plugin ${bin}: ${e.message}`, { cause: e }));
    });
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve({ code: c, stdout: out, stderr: err });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(conf));
  });
  if (code !== 0) {
    let msg = stderr.trim() || `exited with ${code}`;
    try {
      const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
      if (e.msg) msg = `${e.msg}${e.details ? ` (${e.details})` : ''} [CNI error ${e.code}]`;
    } catch {
      // not a CNI error object: stderr says what happened
    }
    throw new BosonError('CNI_FAILED', `CNI plugin ${plugin.type} ${command} for ${rt.ifname} failed: ${msg}`, {
      details: { plugin: plugin.type, command },
    });
  }
  if (command !== 'ADD') return undefined;
  try {
    return JSON.parse(stdout) as CniResult;
  } catch {
    throw new BosonError('CNI_FAILED', `CNI plugin ${plugin.type} ADD printed no JSON result: ${stdout.slice(0, 200)}`);
  }
}

/** ADD of a whole list: each plugin in order with the previous result; the last plugin's result. */
export async function addNetworkList(list: CniNetworkList, rt: CniRuntimeConf, binDirs: string[]): Promise<CniResult> {
  let prev: CniResult | undefined;
  for (const plugin of list.plugins) prev = await execPlugin('ADD', plugin, pluginConfig(list, plugin, rt, prev), rt, binDirs);
  return prev ?? {};
}

/**
 * DEL of a whole list, last plugin first, each given `cached` (the ADD's result) as prevResult. Every plugin is
 * asked even when one fails (a later one may hold what must go: IPAM leases, rules); the first failure is thrown
 * afterwards. A plugin that is not installed is skipped: it cannot have made anything.
 */
export async function delNetworkList(list: CniNetworkList, rt: CniRuntimeConf, binDirs: string[], cached?: CniResult): Promise<void> {
  let first: unknown;
  for (const plugin of [...list.plugins].reverse()) {
    if (
      !(await findPlugin(plugin.type, binDirs).then(
        () => true,
        () => false,
      ))
    )
      continue;
    await execPlugin('DEL', plugin, pluginConfig(list, plugin, rt, cached), rt, binDirs).catch((err: unknown) => {
      first ??= err;
    });
  }
  if (first !== undefined) throw first;
}

/** What the pod's interface gets from a result: the first IPv4 address of interface `ifname`, its gateway and routes. */
export interface PodInterfaceConfig {
  address: string;
  prefixLen: number;
  /** The default route's gateway (the address's gateway when the route names none); '' without a default route. */
  gateway: string;
  mac: string | undefined;
  /** Routes other than the default one (dst CIDR, gw or '' for on-link). */
  routes: Array<{ dst: string; gw: string }>;
  dns: string[];
  dnsSearch: string[];
}

const IPV4_CIDR = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/;

/** The pod interface's configuration in `result`; CNI_FAILED when it has no IPv4 address for it. */
export function podInterfaceOf(result: CniResult, ifname: string): PodInterfaceConfig {
  const ifaces = result.interfaces ?? [];
  const idx = ifaces.findIndex((i) => i.name === ifname && (i.sandbox ?? '') !== '');
  const ip = (result.ips ?? []).find((i) => IPV4_CIDR.test(i.address) && (idx < 0 || i.interface === undefined || i.interface === idx));
  if (!ip) throw new BosonError('CNI_FAILED', `the CNI result gives ${ifname} no IPv4 address: ${JSON.stringify(result).slice(0, 300)}`);
  const [, address, len] = IPV4_CIDR.exec(ip.address)!;
  let gateway = '';
  const routes: Array<{ dst: string; gw: string }> = [];
  for (const r of result.routes ?? []) {
    if (!IPV4_CIDR.test(r.dst)) continue;
    if (r.dst === '0.0.0.0/0') gateway = r.gw ?? ip.gateway ?? '';
    else routes.push({ dst: r.dst, gw: r.gw ?? '' });
  }
  return {
    address: address!,
    prefixLen: Number(len),
    gateway,
    mac: idx >= 0 ? ifaces[idx]!.mac : undefined,
    routes,
    dns: result.dns?.nameservers ?? [],
    dnsSearch: result.dns?.search ?? [],
  };
}
