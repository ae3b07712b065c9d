/**
 * passt: the user-mode network of a rootless micro-VM (a daemon that is not root has no taps or bridges). One passt
 * process per user-mode NIC, as the VM's user, joined to its QEMU by a socketpair: passt holds one end (`--fd`),
 * QEMU the other (`-netdev stream,addr.type=fd`). Neither end has a name in the filesystem, and passt quits when the
 * socket closes (--fd implies --one-off): whatever way QEMU ends, its passt follows, and a starter killed between
 * the two spawns leaves a passt whose peer is already closed.
 *
 * Why passt and not QEMU's slirp: slirp hands the guest the host's loopback through its gateway address (10.0.2.2)
 * with no switch to stop it. passt is told not to (`--no-map-gw`), and its outbound sockets are bound to the host's
 * default-route interface (`--outbound-if4`), so the kernel itself routes every guest connection out of that
 * interface: a destination in 127.0.0.0/8 (which guest root can put on the wire) never reaches the host's loopback.
 * passt 0.0~git20230309 (Debian 12) still connects to the host's loopback when the guest sends to 127.0.0.0/8 itself
 * (it special-cases that destination, outbound interface or not): every passt runs with passt-guard.c preloaded,
 * which refuses connects and sends to loopback addresses inside passt, and a passt in which it did not load is not
 * used (guardLoaded).
 * The guest's view is fixed (address and gateway from the NicSpec; IPv4 only; no DHCP, which boson-init does not
 * use), not copied from the host; its DNS servers are the host's non-loopback resolvers (NetworkManager).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import { BosonError, PACKAGE_ROOT } from '../common/index.ts';
import type { NicSpec } from './types.ts';

/** A user-mode NIC (what passt serves). */
export type UserNic = Extract<NicSpec, { kind: 'user' }>;

/** The passt binary used when none is configured (Debian's package). */
export const DEFAULT_PASST = '/usr/bin/passt';

/** The loopback guard as scripts/setup.sh builds it (from passt-guard.c). */
export const DEFAULT_PASST_GUARD = path.join(PACKAGE_ROOT, 'build', 'host', 'passt-guard.so');

/** The fd at which passt finds its end of the socketpair to QEMU. */
const PASST_TAP_FD = 3;

/** The pid file of the passt of NIC `i` in a VM's runtime directory (written by Boson, not by passt). */
export function passtPidFile(runtimeDir: string, i: number): string {
  return path.join(runtimeDir, `passt${i}.pid`);
}

/**
 * argv[0] of a VM's passt: a path in its runtime directory whose last part is "passt" (passt picks its mode from
 * that name), so that the orphan sweep and re-attachment recognise a VM's passt by its directory, as they do its
 * QEMU (whose command line names the directory).
 */
export function passtArgv0(runtimeDir: string | undefined): string {
  return runtimeDir === undefined ? 'passt' : path.join(runtimeDir, 'passt');
}

/** True if a command line (NUL-split) is one of passt's as Boson starts it. */
export function isPasstCommand(argv: string[]): boolean {
  return path.basename(argv[0] ?? '') === 'passt' && argv.includes('--fd');
}

/** The passt binary to run: `bin` as a path (BOSON_PASST names a file, not a program on PATH); PASST_MISSING when it is not executable. */
export function findPasst(bin: string = DEFAULT_PASST): string {
  const file = path.resolve(bin);
  try {
    accessSync(file, constants.X_OK);
    return file;
  } catch {
    throw new BosonError(
      'PASST_MISSING',
      `passt (${file}) is not installed or not executable: a rootless daemon gives each micro-VM its network through passt (Debian package passt; BOSON_PASST names another binary)`,
    );
  }
}

/**
 * The host interface of the IPv4 default route with the lowest metric, read from /proc/net/route's text;
 * undefined when the host has no IPv4 default route.
 */
export function defaultRouteInterface(routeTable: string): string | undefined {
  let best: { iface: string; metric: number } | undefined;
  for (const line of routeTable.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...: destination and mask 0, flags with RTF_UP (1).
    if (f.length < 8 || f[1] !== '00000000' || f[7] !== '00000000' || (parseInt(f[3]!, 16) & 1) === 0) continue;
    const metric = Number(f[6]);
    if (!best || metric < best.metric) best = { iface: f[0]!, metric };
  }
  return best?.iface;
}

/** The outbound interface for passt: the default route's; PASST_FAILED when the host has none. */
export function outboundInterface(): string {
  const iface = defaultRouteInterface(readFileSync('/proc/net/route', 'utf8'));
  if (iface === undefined)
    throw new BosonError(
      'PASST_FAILED',
      'the host has no IPv4 default route: a rootless micro-VM reaches the network through the default route interface',
    );
  return iface;
}

/**
 * passt's command line (without the binary) for one NIC. Every forward names its host address (none for 0.0.0.0,
 * all IPv4 addresses); `-u none` when no UDP port is published, or passt would also forward UDP for each TCP port.
 */
export function passtArgs(nic: UserNic, outboundIf: string, fd: number = PASST_TAP_FD): string[] {
  const args = [
    '--foreground',
    '--quiet',
    '--ipv4-only',
    // The gateway is not the host: no connection to it is turned into one to the host's loopback.
    '--no-map-gw',
    // Every outbound socket is bound to this interface: the kernel never routes one to 127.0.0.0/8.
    '--outbound-if4',
    outboundIf,
    '--address',
    nic.address,
    '--netmask',
    String(nic.prefixLen),
    '--gateway',
    nic.gateway,
    '--no-dhcp',
    '--no-ndp',
    '--no-dhcpv6',
    '--no-ra',
  ];
  // No DNS of passt's: the guest is told the host's resolvers and reaches them as any address (passt's forwarding of
  // a DNS address, --dns-forward, sent queries whose answers never came back in this version).
  args.push('--dns', 'none');
  const spec = (f: UserNic['forwards'][number]): string =>
    `${f.hostIp === '0.0.0.0' || f.hostIp === '' ? '' : `${f.hostIp}/`}${f.hostPort}:${f.guestPort}`;
  for (const f of nic.forwards) args.push(f.protocol === 'tcp' ? '--tcp-ports' : '--udp-ports', spec(f));
  if (!nic.forwards.some((f) => f.protocol === 'udp')) args.push('--udp-ports', 'none');
  args.push('--fd', String(fd));
  return args;
}

/** The line passt-guard.c prints once it is loaded into a process. */
export const GUARD_MARK = 'boson-passt-guard: loaded';

/** How many processes announced the guard in a log's text (passt may re-exec itself: each image prints it). */
export function guardLoaded(log: string): number {
  return log.split('\n').filter((l) => l === GUARD_MARK).length;
}

/** The guard library: PASST_MISSING when it has not been built or cannot be read. */
export function checkGuard(guard: string): string {
  try {
    accessSync(guard, constants.R_OK);
    return guard;
  } catch {
    throw new BosonError(
      'PASST_MISSING',
      `the loopback guard of passt (${guard}) is missing or not readable: run scripts/setup.sh, which builds it`,
    );
  }
}

/** PASST_MISSING unless the configured passt and its loopback guard are there (what `boson info` checks). */
export function checkPasst(options: { passt?: string; passtGuard?: string }): void {
  findPasst(options.passt ?? DEFAULT_PASST);
  checkGuard(options.passtGuard ?? DEFAULT_PASST_GUARD);
}

/** A started passt: its process and the parent's end of its socketpair, to hand to QEMU and then close. */
export interface StartedPasst {
  proc: ChildProcess;
  /** The other end of passt's socket: pass it to QEMU's spawn, then destroy it in the same tick (unread). */
  tap: Socket;
  /** What it printed, when it has no log file (an attached VM's passt): read from its stderr. */
  printed: () => string;
}

/**
 * Starts passt for `nic` in its own session (it outlives its starter, as a detached QEMU does), with the loopback
 * guard preloaded, printing to `logFd` (the VM's log), or, without one (an attached VM, which dies with this
 * process), to a pipe read here. Synchronous: call it right before QEMU's spawn, in the same tick, so that nothing in this
 * process ever reads from the socketpair (Node starts reading a child's pipe on the next turn of the event loop).
 */
export function startPasst(
  bin: string,
  guard: string,
  nic: UserNic,
  outboundIf: string,
  runtimeDir: string | undefined,
  logFd: number | undefined,
): StartedPasst {
  const proc = spawn(bin, passtArgs(nic, outboundIf), {
    argv0: passtArgv0(runtimeDir),
    stdio: ['ignore', logFd ?? 'ignore', logFd ?? 'pipe', 'pipe'],
    // Nothing of the daemon's environment: only the guard.
    env: { LD_PRELOAD: guard },
    detached: true,
  });
  const tap = proc.stdio[PASST_TAP_FD] as Socket | null;
  if (!tap) {
    proc.kill('SIGKILL');
    throw new BosonError('PASST_FAILED', `cannot start passt (${bin})`);
  }
  let printed = '';
  proc.stderr?.on('data', (d: Buffer) => (printed = (printed + d.toString()).slice(-16_384)));
  proc.stderr?.on('error', () => undefined);
  return { proc, tap, printed: () => printed };
}

/** What passt printed (its log, without the lines about a missing system logger), for an error message. */
export function passtWords(log: string): string {
  return log
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^Failed to send \d+ bytes to syslog/.test(l))
    .slice(-6)
    .join('\n');
}
