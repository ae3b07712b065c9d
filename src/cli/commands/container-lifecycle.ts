/** `boson create|start|stop|restart|kill|rm|wait|rename|suspend|resume`: a daemon container's lifecycle, through the typed client. */
import type { Command } from 'commander';
import { BosonError } from '../../common/index.ts';
import { parseSignal } from '../../machine/client/index.ts';
import { addContainerFlags, containerSpecOf, type ContainerFlags } from '../container-flags.ts';
import { ctx, forEach, machine, pump } from '../daemon.ts';
import { flushOutput } from '../output.ts';

/** Seconds of a -t value. */
function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new BosonError('INVALID_ARGUMENT', `invalid timeout: ${value}`);
  return n;
}

/** Adds the lifecycle commands. */
export function registerLifecycleCommands(program: Command): void {
  addContainerFlags(
    program
      .command('create')
      .description('Create a container (daemon-managed) without starting it')
      .argument('<image>')
      .argument('[command...]')
      .passThroughOptions(),
  ).action(async (image: string, command: string[], flags: ContainerFlags) => {
    const created = await machine().create(ctx, await containerSpecOf(image, command, flags));
    process.stdout.write(`${created.id}\n`);
  });

  program
    .command('start')
    .description('Start containers')
    .argument('<containers...>')
    .option('-a, --attach', 'attach to its output and wait for it')
    .action(async (refs: string[], flags: { attach?: boolean }) => {
      if (flags.attach) {
        if (refs.length !== 1) throw new BosonError('INVALID_ARGUMENT', 'start -a takes one container');
        const m = machine();
        const container = await m.inspect(ctx, refs[0]!);
        await m.start(ctx, container.id);
        const stream = await m.openAttach(ctx, container.id);
        await pump(stream, container.config.tty, container.config.openStdin);
        const result = await m.wait(ctx, container.id);
        await flushOutput();
        process.exit(result.statusCode);
      }
      await forEach(refs, async (ref) => {
        await machine().start(ctx, ref);
        process.stdout.write(`${ref}\n`);
      });
    });

  for (const [name, description] of [
    ['suspend', 'Save running containers to a file and end their micro-VMs (boson resume continues them)'],
    ['resume', 'Continue suspended containers from their saved state'],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument('<containers...>')
      .option('--json', 'print what was done as JSON (state size, time)')
      .action(async (refs: string[], flags: { json?: boolean }) => {
        await forEach(refs, async (ref) => {
          const done = name === 'suspend' ? await machine().suspend(ctx, ref) : await machine().resume(ctx, ref);
          process.stdout.write(flags.json ? `${JSON.stringify(done)}\n` : `${ref}\n`);
        });
      });
  }

  for (const [name, description] of [
    ['stop', 'Stop containers (SIGTERM, then kill after the timeout)'],
    ['restart', 'Restart containers'],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument('<containers...>')
      .option('-t, --time <seconds>', 'seconds to wait before killing', '10')
      .action(async (refs: string[], flags: { time: string }) => {
        await forEach(refs, async (ref) => {
          await machine()[name](ctx, ref, seconds(flags.time));
          process.stdout.write(`${ref}\n`);
        });
      });
  }

  program
    .command('kill')
    .description('Send a signal to containers')
    .argument('<containers...>')
    .option('-s, --signal <signal>', 'signal to send', 'KILL')
    .action(async (refs: string[], flags: { signal: string }) => {
      parseSignal(flags.signal);
      await forEach(refs, async (ref) => {
        await machine().kill(ctx, ref, flags.signal);
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('rm')
    .description('Remove containers')
    .argument('<containers...>')
    .option('-f, --force', 'kill and remove running containers')
    .option('-v, --volumes', 'also remove their anonymous volumes')
    .action(async (refs: string[], flags: { force?: boolean; volumes?: boolean }) => {
      await forEach(refs, async (ref) => {
        await machine().remove(ctx, ref, { force: flags.force, volumes: flags.volumes });
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('wait')
    .description('Wait for containers to stop; print their exit codes')
    .argument('<containers...>')
    .action(async (refs: string[]) => {
      await forEach(refs, async (ref) => {
        const r = await machine().wait(ctx, ref);
        process.stdout.write(`${r.statusCode}\n`);
      });
    });

  program
    .command('rename')
    .description('Rename a container')
    .argument('<container>')
    .argument('<new-name>')
    .action(async (ref: string, name: string) => {
      await machine().rename(ctx, ref, name);
    });
}
