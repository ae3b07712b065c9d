/**
 * A Vmm whose guests are simulated in this process, for fast lifecycle tests of the runtime. Each fake guest speaks
 * boson-init's wire protocol on its control channel (HELLO, STARTED, output, ERROR, EXIT, exec sessions) and
 * appends the same log records boson-init writes on its log port, so the runtime under test cannot tell it from a
 * real micro-VM except by speed. What the fake "process" does is read from its argv:
 *   echo WORDS...   prints them on stdout, exits 0      exit N        exits with N
 *   sleep           runs until a signal (exit 128+N)    ignore-term   like sleep, but SIGTERM does nothing
 *   nosuch          fails to start (NOT_FOUND, 127)     die           the VM process ends with no EXIT
 *   flood BYTES     after 300 ms, writes BYTES of "x" on stdout at once, then runs like sleep
 * Execs print "exec ARGV" and exit 0. Real-VM suites (test/) check that boson-init does what this fake assumes.
 */
import { appendFileSync } from 'node:fs';
import { Duplex, PassThrough } from 'node:stream';
import { FrameDecoder, FrameType, GuestErrorReason, PROTOCOL_VERSION, SpecTag, encodeFrame, type Frame } from '../guest/index.ts';
import type { MicroVmConfig, Vm, Vmm, VmExit } from '../vmm/index.ts';

let nextPid = 4_000_000;

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

/** The ARG records of a SPEC or EXEC payload. */
function argvOf(payload: Buffer): string[] {
  const argv: string[] = [];
  for (let off = 0; off + 5 <= payload.length;) {
    const tag = payload.readUInt8(off);
    const len = payload.readUInt32BE(off + 1);
    if (tag === SpecTag.ARG) argv.push(payload.subarray(off + 5, off + 5 + len).toString('utf8'));
    off += 5 + len;
  }
  return argv;
}

/** One simulated guest and the VM around it. */
class FakeVm implements Vm {
  readonly pid = nextPid++;
  channel: Duplex;
  readonly exited: Promise<VmExit>;
  hasExited = false;
  qemuStderr = '';
  private toGuest!: PassThrough;
  private fromGuest!: PassThrough;
  private readonly decoder = new FrameDecoder();
  private finish!: (exit: VmExit) => void;
  private argv: string[] = [];
  private ended = false;

  constructor(
    private readonly config: MicroVmConfig,
    private readonly hang: boolean,
    private readonly onGone: (vm: FakeVm) => void,
  ) {
    this.exited = new Promise((resolve) => (this.finish = resolve));
    this.channel = this.connect();
    if (!hang) setImmediate(() => this.send(FrameType.HELLO, Buffer.concat([u32(PROTOCOL_VERSION), Buffer.alloc(8)])));
  }

  /** A new host end of the control channel (a re-attach after detach gets a fresh one). */
  connect(): Duplex {
    this.toGuest = new PassThrough();
    this.fromGuest = new PassThrough();
    this.toGuest.on('data', (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk)) this.onFrame(frame);
    });
    this.channel = Duplex.from({ readable: this.fromGuest, writable: this.toGuest });
    return this.channel;
  }

  private send(type: number, payload: Buffer = Buffer.alloc(0), session = 0): void {
    if (!this.hasExited) this.fromGuest.write(encodeFrame(type, payload, session));
  }

  /** Appends a log record as boson-init writes it on its log port. */
  private log(type: number, data: Buffer): void {
    if (this.config.logFile === undefined) return;
    const ts = Buffer.alloc(8);
    ts.writeBigUInt64BE(BigInt(Date.now()) * 1_000_000n);
    appendFileSync(this.config.logFile, encodeFrame(type, Buffer.concat([ts, data])));
  }

  private report(type: number, payload: Buffer): void {
    this.log(type, payload);
    this.send(type, payload);
  }

  private onFrame(frame: Frame): void {
    if (frame.type === FrameType.SPEC) this.start(argvOf(frame.payload));
    else if (frame.type === FrameType.SIGNAL && frame.session === 0) this.signal(frame.payload.readUInt32BE(0));
    else if (frame.type === FrameType.EXEC) {
      const argv = argvOf(frame.payload);
      this.send(FrameType.STARTED, u32(100 + frame.session), frame.session);
      this.send(FrameType.STDOUT, Buffer.from(`exec ${argv.join(' ')}\n`), frame.session);
      this.send(FrameType.EXIT, Buffer.concat([u32(0), u32(0)]), frame.session);
    }
  }

  private start(argv: string[]): void {
    this.argv = argv;
    const [cmd, ...args] = argv;
    if (cmd === 'nosuch') {
      this.report(
        FrameType.ERROR,
        Buffer.concat([Buffer.from([GuestErrorReason.NOT_FOUND]), Buffer.from(`exec "${cmd}": executable file not found in $PATH`)]),
      );
      this.exit(127);
      return;
    }
    this.report(FrameType.STARTED, u32(1));
    setImmediate(() => {
      if (cmd === 'echo') {
        this.log(FrameType.STDOUT, Buffer.from(`${args.join(' ')}\n`));
        this.exit(0);
      } else if (cmd === 'flood') {
        const chunk = Buffer.alloc(64 * 1024, 'x');
        setTimeout(() => {
          for (let left = Number(args[0] ?? 0); left > 0; left -= chunk.length)
            this.log(FrameType.STDOUT, chunk.subarray(0, Math.min(left, chunk.length)));
        }, 300);
      } else if (cmd === 'exit') this.exit(Number(args[0] ?? 0));
      else if (cmd === 'die') void this.end({ code: null, signal: 'SIGKILL' });
    });
  }

  private signal(signo: number): void {
    if (this.ended || (this.argv[0] === 'ignore-term' && signo === 15)) return;
    this.exit(128 + signo, signo);
  }

  private exit(status: number, signo = 0): void {
    if (this.ended) return;
    this.ended = true;
    this.report(FrameType.EXIT, Buffer.concat([u32(status), u32(signo)]));
  }

  private async end(exit: VmExit): Promise<VmExit> {
    if (!this.hasExited) {
      this.hasExited = true;
      this.fromGuest.end();
      this.finish(exit);
      this.onGone(this);
    }
    return this.exited;
  }

  async consoleTail(): Promise<string> {
    return this.hang ? '(a fake guest that never says HELLO)' : '';
  }

  shutdown(): Promise<VmExit> {
    return this.end({ code: 0, signal: null });
  }

  /**
   * The guest resets the machine while booting, as QEMU then ends under -no-reboot: it closes its chardevs (the
   * control channel ends) while it shuts down, and exits with code 0 a moment later (unless killed meanwhile).
   */
  crash(): void {
    this.fromGuest.end();
    setTimeout(() => void this.end({ code: 0, signal: null }), 30);
  }

  kill(): Promise<VmExit> {
    return this.end({ code: null, signal: 'SIGKILL' });
  }

  detach(): void {
    this.fromGuest.end();
  }

  onHostDiskFull(): void {}

  async pausedOnDiskError(): Promise<boolean> {
    return false;
  }

  async resume(): Promise<void> {}

  /** The runtime directory a detached fake VM is found by. */
  get runtimeDir(): string | undefined {
    return this.config.runtimeDir;
  }
}

/** The fake VMM: launches fake guests, re-attaches to detached ones that still run, counts what it did. */
export class FakeVmm implements Vmm {
  /** Boots to hang (never say HELLO) before the next ones boot normally. */
  hangNext = 0;
  /** Boots whose guest resets the machine before HELLO (QEMU exits 0: a guest kernel panic), before the next ones boot. */
  crashNext = 0;
  /** How long a launch takes (a real boot takes a while: races between starts show only then). */
  launchDelayMs = 0;
  launches = 0;
  private readonly running = new Set<FakeVm>();

  async accelerator(): Promise<'kvm' | 'tcg'> {
    return 'tcg';
  }

  async launch(config: MicroVmConfig): Promise<Vm> {
    this.launches++;
    const crash = this.crashNext > 0;
    if (crash) this.crashNext--;
    const hang = crash || this.hangNext > 0;
    if (hang && !crash) this.hangNext--;
    if (this.launchDelayMs > 0) await new Promise((r) => setTimeout(r, this.launchDelayMs));
    const vm = new FakeVm(config, hang, (gone) => this.running.delete(gone));
    this.running.add(vm);
    // The guest resets the machine at once: QEMU (under -no-reboot) closes the channel, then exits with code 0.
    if (crash) setImmediate(() => vm.crash());
    return vm;
  }

  async attach(runtimeDir: string): Promise<Vm | null> {
    const vm = [...this.running].find((v) => v.runtimeDir === runtimeDir);
    if (!vm) return null;
    vm.connect();
    return vm;
  }

  async cleanup(): Promise<void> {}

  /** How many fake VMs are still running. */
  get live(): number {
    return this.running.size;
  }
}
