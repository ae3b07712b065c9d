/**
 * Template snapshots (Kata's VM templating) with this host's QEMU, measured: a template micro-VM boots to
 * boson-init's HELLO with its RAM in a file on tmpfs (`memory-backend-file,share=on`), is stopped, and its device
 * state is saved with the `x-ignore-shared` capability (the RAM stays in the file). Each clone starts with the same
 * devices, `-incoming defer`, the RAM file mapped privately (`share=off`: copy-on-write), `migrate-incoming` from
 * the state file, and `cont`. Printed: the template's boot and save, and per clone the time to running, the time
 * until boson-init answers on its control port (a malformed SPEC, answered with ERROR), its RSS and its PSS.
 * Raw QEMU, no disks, no jail: this measures the mechanism (docs/design.md "Warm start"), not a Boson start.
 *
 *   npx tsx bench/template-snapshot.ts [--clones N]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { prepareBootBundle } from '../src/guest/index.ts';
import { guestKernelOptions, loadConfig } from '../src/main/index.ts';

const args = process.argv.slice(2);
const clones = Number(args[args.indexOf('--clones') + 1] ?? 5) || 5;
const dir = `/dev/shm/boson-template-bench-${process.pid}`;

function argv(kernel: string, initrd: string, name: string, share: boolean, incoming: boolean): string[] {
  return [
    ...['-M', 'microvm,acpi=off,rtc=on,memory-backend=mem', '-accel', 'tcg,tb-size=16', '-cpu', 'max', '-m', '256', '-smp', '1'],
    ...['-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'null'],
    ...['-object', `memory-backend-file,id=mem,size=256M,mem-path=${dir}/ram,share=${share ? 'on' : 'off'}`],
    ...['-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 rdinit=/init quiet pci=off reboot=t'],
    ...['-chardev', `socket,id=ctl,path=${dir}/${name}.ctl,server=on,wait=off`],
    ...['-chardev', `socket,id=qmp,path=${dir}/${name}.qmp,server=on,wait=off`, '-mon', 'chardev=qmp,mode=control'],
    ...['-device', 'virtio-balloon-device,free-page-reporting=on', '-device', 'virtio-serial-device'],
    ...['-device', 'virtserialport,chardev=ctl,name=boson.ctl'],
    ...(incoming ? ['-incoming', 'defer'] : []),
  ];
}

async function connect(socketPath: string): Promise<net.Socket> {
  for (;;) {
    if (existsSync(socketPath)) {
      try {
        return await new Promise((resolve, reject) => {
          const s = net.connect(socketPath);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      } catch {
        // not listening yet
      }
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A minimal QMP client: one command at a time, events dropped. */
class Qmp {
  private buf = '';
  private readonly waiters: Array<(v: { return?: Record<string, unknown>; error?: unknown }) => void> = [];
  constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString();
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = JSON.parse(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
        if (!line.event) this.waiters.shift()?.(line);
      }
    });
  }
  static async open(socketPath: string): Promise<Qmp> {
    const q = new Qmp(await connect(socketPath));
    await new Promise<void>((resolve) => q.waiters.push(() => resolve()));
    await q.cmd('qmp_capabilities');
    return q;
  }
  cmd(execute: string, args?: object): Promise<{ return?: Record<string, unknown>; error?: unknown }> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.socket.write(JSON.stringify({ execute, arguments: args }) + '\n');
    });
  }
}

function memoryOf(pid: number): { rssKiB: number; pssKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0), pssKiB: Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const bundle = await prepareBootBundle({ guestDir: config.paths.guestDir, ...guestKernelOptions(config) });
  mkdirSync(dir, { recursive: true });
  const running: Array<ReturnType<typeof spawn>> = [];
  const clonesAlive: Array<{ pid: number; ctl: net.Socket }> = [];
  try {
    const ignoreShared = { capabilities: [{ capability: 'x-ignore-shared', state: true }] };
    const t0 = performance.now();
    const template = spawn('qemu-system-x86_64', argv(bundle.kernelPath, bundle.initramfsPath, 'tmpl', true, false), { stdio: 'ignore' });
    running.push(template);
    const ctl = await connect(`${dir}/tmpl.ctl`);
    await new Promise<void>((resolve) => ctl.once('data', () => resolve())); // HELLO
    const boot = performance.now() - t0;
    const q = await Qmp.open(`${dir}/tmpl.qmp`);
    await q.cmd('stop');
    await q.cmd('migrate-set-capabilities', ignoreShared);
    const ts = performance.now();
    await q.cmd('migrate', { uri: `exec:cat > ${dir}/state` });
    for (;;) {
      const st = (await q.cmd('query-migrate')).return as { status: string };
      if (st.status === 'completed') break;
      if (st.status === 'failed') throw new Error('saving the template failed');
      await new Promise((r) => setTimeout(r, 5));
    }
    const save = performance.now() - ts;
    ctl.destroy();
    await q.cmd('quit');
    console.log(
      `template: boot to HELLO ${boot.toFixed(0)} ms, device state saved in ${save.toFixed(0)} ms (${statSync(`${dir}/state`).size} bytes)`,
    );
    for (let i = 0; i < clones; i++) {
      const c0 = performance.now();
      const clone = spawn('qemu-system-x86_64', argv(bundle.kernelPath, bundle.initramfsPath, `c${i}`, false, true), { stdio: 'ignore' });
      running.push(clone);
      const cq = await Qmp.open(`${dir}/c${i}.qmp`);
      await cq.cmd('migrate-set-capabilities', ignoreShared);
      const r = await cq.cmd('migrate-incoming', { uri: `exec:cat ${dir}/state` });
      if (r.error) throw new Error(`migrate-incoming: ${JSON.stringify(r.error)}`);
      for (;;) {
        const st = ((await cq.cmd('query-status')).return as { status: string }).status;
        if (st !== 'inmigrate') break;
        await new Promise((res) => setTimeout(res, 2));
      }
      await cq.cmd('cont');
      const restored = performance.now() - c0;
      const cctl = await connect(`${dir}/c${i}.ctl`);
      const header = Buffer.alloc(8);
      header[0] = 0x81; // SPEC, one byte long: malformed, so boson-init answers with ERROR
      header.writeUInt32BE(1, 4);
      const answered = new Promise<number>((resolve) => cctl.once('data', () => resolve(performance.now() - c0)));
      cctl.write(Buffer.concat([header, Buffer.from([0])]));
      const answer = await Promise.race([answered, new Promise<number>((res) => setTimeout(() => res(-1), 10_000))]);
      console.log(`clone ${i}: running after ${restored.toFixed(0)} ms, boson-init answered after ${answer.toFixed(0)} ms`);
      clonesAlive.push({ pid: clone.pid!, ctl: cctl });
    }
    // All clones alive at once: the RAM file's pages they did not write are shared, which PSS splits between them.
    await new Promise((r) => setTimeout(r, 1000));
    for (const [i, c] of clonesAlive.entries()) {
      const mem = memoryOf(c.pid);
      console.log(`clone ${i}: RSS ${(mem.rssKiB / 1024).toFixed(1)} MiB, PSS ${(mem.pssKiB / 1024).toFixed(1)} MiB`);
    }
  } finally {
    for (const c of clonesAlive) c.ctl.destroy();
    for (const p of running) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
