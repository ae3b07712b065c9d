/**
 * runc as bench/tax.ts's baseline: bundles with a minimal OCI config.json (from `runc spec`) on a root filesystem
 * unpacked by umoci from the same OCI image Boson runs, an overlayfs writable layer for long-running containers (as
 * Docker gives one), a network namespace joined to the host by a veth pair, and cgroups under one parent of the
 * bench's own. Everything it makes is recorded in a RuncLab and removed by `cleanup()`, also after a failure.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Options of one bundle's config.json. */
export interface BundleOptions {
  args: string[];
  /** The root filesystem directory (read-only unless `writable`). */
  rootfs: string;
  writable?: boolean;
  /** A network namespace to join (/run/netns/NAME); default a new one (loopback only). */
  netns?: string;
  /** Host directories bind-mounted into the container: [host, container]. */
  binds?: Array<[string, string]>;
  env?: string[];
}

/** The bench's runc containers, bundles, mounts, namespaces and cgroups. */
export class RuncLab {
  private readonly containers = new Set<string>();
  private readonly mounts: string[] = [];
  private readonly netnses: string[] = [];
  readonly cgroupParent: string;
  private seq = 0;

  constructor(
    readonly workDir: string,
    readonly tag: string,
  ) {
    this.cgroupParent = `/boson-tax-${tag}`;
  }

  /** Unpacks `image` ("layout:name") with umoci; returns its root filesystem directory. */
  async unpack(image: string, name: string): Promise<string> {
    const dir = path.join(this.workDir, `image-${name}`);
    await run('umoci', ['unpack', '--image', image, dir]);
    return path.join(dir, 'rootfs');
  }

  /** An overlayfs over `lower` with a fresh upper layer (Docker's writable layer); returns the merged directory. */
  async overlay(lower: string, name: string): Promise<string> {
    const base = path.join(this.workDir, `overlay-${name}`);
    for (const d of ['upper', 'work', 'merged']) await mkdir(path.join(base, d), { recursive: true });
    const merged = path.join(base, 'merged');
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${base}/upper,workdir=${base}/work`, merged]);
    this.mounts.push(merged);
    return merged;
  }

  /**
   * A network namespace with a veth pair to the host: the host side gets `hostIp`/30, the namespace's side
   * `containerIp`/30 and loopback. Returns the namespace's path.
   */
  async network(hostIp: string, containerIp: string): Promise<string> {
    const ns = `boson-tax-${this.tag}`;
    const host = `taxh${this.tag}`.slice(0, 15);
    const peer = `taxc${this.tag}`.slice(0, 15);
    await run('ip', ['netns', 'add', ns]);
    this.netnses.push(ns);
    await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer]);
    await run('ip', ['link', 'set', peer, 'netns', ns]);
    await run('ip', ['addr', 'add', `${hostIp}/30`, 'dev', host]);
    await run('ip', ['link', 'set', host, 'up']);
    await run('ip', ['-n', ns, 'addr', 'add', `${containerIp}/30`, 'dev', peer]);
    await run('ip', ['-n', ns, 'link', 'set', peer, 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return `/run/netns/${ns}`;
  }

  /** A bundle directory with a config.json from `runc spec`, edited to `opts`; returns its path and container id. */
  async bundle(name: string, opts: BundleOptions): Promise<{ bundle: string; id: string }> {
    const id = `boson-tax-${this.tag}-${name}-${++this.seq}`;
    const bundle = path.join(this.workDir, `bundle-${name}-${this.seq}`);
    await mkdir(bundle, { recursive: true });
    await run('runc', ['spec'], { cwd: bundle });
    const file = path.join(bundle, 'config.json');
    const spec = JSON.parse(await readFile(file, 'utf8')) as {
      process: { terminal: boolean; args: string[]; env: string[] };
      root: { path: string; readonly: boolean };
      mounts: Array<{ destination: string; type: string; source: string; options: string[] }>;
      linux: { namespaces: Array<{ type: string; path?: string }>; cgroupsPath?: string };
    };
    spec.process.terminal = false;
    spec.process.args = opts.args;
    if (opts.env) spec.process.env = [...spec.process.env, ...opts.env];
    spec.root = { path: opts.rootfs, readonly: !opts.writable };
    for (const [src, dst] of opts.binds ?? []) spec.mounts.push({ destination: dst, type: 'bind', source: src, options: ['rbind', 'rw'] });
    if (opts.netns)
      spec.linux.namespaces = spec.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', path: opts.netns } : n));
    spec.linux.cgroupsPath = `${this.cgroupParent}/${id}`;
    await writeFile(file, JSON.stringify(spec, null, 2));
    return { bundle, id };
  }

  /**
   * `runc run` in the foreground; resolves with the ms from spawn to the first byte on stdout and the output, once
   * the container has ended (runc deletes it then).
   */
  runForeground(b: { bundle: string; id: string }): Promise<{ firstOutputMs: number; stdout: string }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      let first: number | undefined;
      let out = '';
      let err = '';
      const child = spawn('runc', ['run', '--bundle', b.bundle, b.id], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (d: Buffer) => {
        first ??= performance.now() - t0;
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code !== 0 || first === undefined) reject(new Error(`runc run ${b.id} exited ${code}: ${err}`));
        else resolve({ firstOutputMs: first, stdout: out });
      });
    });
  }

  /** `runc run -d`: returns once the container runs (its stdio is /dev/null). */
  async runDetached(b: { bundle: string; id: string }): Promise<void> {
    this.containers.add(b.id);
    await new Promise<void>((resolve, reject) => {
      const child = spawn('runc', ['run', '-d', '--bundle', b.bundle, b.id], { stdio: 'ignore' });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc run -d ${b.id} exited ${code}`))));
    });
  }

  /** `runc exec ID argv`: its stdout and the wall-clock ms it took; throws for a non-zero status. */
  async exec(id: string, argv: string[]): Promise<{ ms: number; stdout: string }> {
    const t0 = performance.now();
    const { stdout } = await run('runc', ['exec', id, ...argv], { maxBuffer: 16 << 20 });
    return { ms: performance.now() - t0, stdout };
  }

  /** The pids in a container's cgroup. */
  async pids(id: string): Promise<number[]> {
    const text = await readFile(path.join(await this.cgroupDir(id, 'memory'), 'cgroup.procs'), 'utf8');
    return text.split('\n').filter(Boolean).map(Number);
  }

  /** A container's memory cgroup usage in bytes (cgroup v1 memory.usage_in_bytes or v2 memory.current). */
  async cgroupMemoryBytes(id: string): Promise<number> {
    const dir = await this.cgroupDir(id, 'memory');
    const v2 = await readFile(path.join(dir, 'memory.current'), 'utf8').catch(() => null);
    return Number((v2 ?? (await readFile(path.join(dir, 'memory.usage_in_bytes'), 'utf8'))).trim());
  }

  private async cgroupDir(id: string, controller: string): Promise<string> {
    const v2 = path.join('/sys/fs/cgroup', this.cgroupParent, id);
    const exists = await readFile(path.join(v2, 'cgroup.procs'), 'utf8').then(
      () => true,
      () => false,
    );
    return exists ? v2 : path.join('/sys/fs/cgroup', controller, this.cgroupParent, id);
  }

  /** Deletes a container (force). */
  async delete(id: string): Promise<void> {
    await run('runc', ['delete', '-f', id]).catch(() => undefined);
    this.containers.delete(id);
  }

  /** Removes every container, mount, namespace and cgroup the lab made, and its work directory. */
  async cleanup(): Promise<void> {
    for (const id of [...this.containers]) await this.delete(id);
    for (const m of this.mounts.reverse()) {
      try {
        execFileSync('umount', [m], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      }
    }
    for (const ns of this.netnses) await run('ip', ['netns', 'del', ns]).catch(() => undefined); // its veth goes with it
    for (const c of [
      '',
      'memory',
      'pids',
      'cpu',
      'cpuacct',
      'cpu,cpuacct',
      'blkio',
      'devices',
      'freezer',
      'net_cls',
      'perf_event',
      'hugetlb',
      'cpuset',
      'systemd',
    ])
      await rmdir(path.join('/sys/fs/cgroup', c, this.cgroupParent)).catch(() => undefined);
    await rm(this.workDir, { recursive: true, force: true });
  }
}
