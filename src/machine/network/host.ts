/**
 * The host's network plumbing, through iproute2 and nftables: links (bridges, taps), addresses, sysctls, routes,
 * and applying a firewall ruleset. Every change goes through here, so the manager stays testable and the commands
 * Boson runs on a host are in one place.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { BosonError } from '../../common/index.ts';

const exec = promisify(execFile);

async function tool(cmd: string, args: string[], input?: string): Promise<string> {
  try {
    if (input === undefined) return (await exec(cmd, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
    return await new Promise<string>((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve(out) : reject(Object.assign(new Error(`${cmd} exited with ${code}`), { stderr: err })),
      );
      child.stdin.end(input);
    });
  } catch (cause) {
    const detail = (cause as { stderr?: string }).stderr?.trim() || (cause as Error).message;
    throw new BosonError('TOOL_FAILED', `${cmd} ${args.join(' ')} failed: ${detail}`, { cause, details: { command: cmd } });
  }
}

/** A link as `ip -d -j link show` describes it. */
export interface LinkInfo {
  name: string;
  kind: string | undefined;
  master: string | undefined;
  up: boolean;
}

/** All links of the host. */
export async function listLinks(): Promise<LinkInfo[]> {
  const out = JSON.parse(await tool('ip', ['-d', '-j', 'link', 'show'])) as Array<{
    ifname: string;
    master?: string;
    flags?: string[];
    linkinfo?: { info_kind?: string };
  }>;
  return out.map((l) => ({ name: l.ifname, kind: l.linkinfo?.info_kind, master: l.master, up: (l.flags ?? []).includes('UP') }));
}

/** IPv4 addresses (with prefix) of one link. */
export async function linkAddresses(name: string): Promise<string[]> {
  const out = JSON.parse(await tool('ip', ['-j', '-4', 'addr', 'show', 'dev', name])) as Array<{
    addr_info?: Array<{ local: string; prefixlen: number }>;
  }>;
  return out.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}

/** Destinations and devices of the host's IPv4 routes (main table). */
export async function listRoutes(): Promise<Array<{ dst: string; dev: string | undefined }>> {
  const out = JSON.parse(await tool('ip', ['-j', '-4', 'route', 'show'])) as Array<{ dst: string; dev?: string }>;
  return out.map((r) => ({ dst: r.dst, dev: r.dev }));
}

/** Runs several `ip` commands in one process (`ip -batch`); stops at the first failure unless `force`. */
export async function ipBatch(commands: string[], force = false): Promise<void> {
  if (commands.length === 0) return;
  await tool('ip', [...(force ? ['-force'] : []), '-batch', '-'], commands.join('\n') + '\n');
}

/** Writes a sysctl under /proc/sys (e.g. "net/ipv4/ip_forward"). */
export async function setSysctl(key: string, value: string): Promise<void> {
  try {
    await writeFile(`/proc/sys/${key}`, value);
  } catch (cause) {
    throw new BosonError('TOOL_FAILED', `cannot set ${key.replace(/\//g, '.')}=${value}: ${(cause as Error).message}`, { cause });
  }
}

/** Applies an nftables script atomically (`nft -f -`: one transaction, all or nothing). */
export async function nftApply(script: string): Promise<void> {
  await tool('nft', ['-f', '-'], script);
}

/** The ruleset of one of our tables, or '' when it does not exist. */
export async function nftListTable(family: string, table: string): Promise<string> {
  try {
    return await tool('nft', ['list', 'table', family, table]);
  } catch {
    return '';
  }
}
