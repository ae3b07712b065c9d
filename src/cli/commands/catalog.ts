/** `boson flavor create|ls|show|rm` and `boson task ls|show|wait`, through the controller's client. */
import type { Command } from 'commander';
import { BosonError } from '../../common/index.ts';
import { formatLimits, formatQuotaValue, parseByteSize, parseQuotaItem, type Task } from '../../controller/index.ts';
import { collect, controllerClient, taskError, waitForTask, withTarget, type TargetFlags } from '../controller-target.ts';
import { forEach } from '../daemon.ts';
import { printJson, printTable } from '../output.ts';

const bytes = (n: number): string => formatQuotaValue({ value: n, unit: 'bytes' });

/** A task's row. */
const taskRow = (t: Task): string[] => [t.id, t.kind, t.target, t.state, t.createdAt, t.error ? `${t.error.code}: ${t.error.message}` : ''];

/** Prints a task with its steps. */
function printTask(t: Task): void {
  printTable(['ID', 'KIND', 'TARGET', 'STATE', 'CREATED', 'ERROR'], [taskRow(t)]);
  process.stdout.write('\n');
  printTable(
    ['STEP', 'STATE', 'STARTED', 'ENDED', 'ERROR'],
    t.steps.map((s) => [s.name, s.state, s.startedAt ?? '', s.endedAt ?? '', s.error ? `${s.error.code}: ${s.error.message}` : '']),
  );
}

/** Adds `flavor` and `task` to the program. */
export function registerCatalogCommands(program: Command): void {
  const flavor = program.command('flavor').description('Manage flavors: named resource presets with a cost in quota');
  withTarget(flavor.command('create').description('Create a flavor (system admins)').argument('<name>'))
    .requiredOption('--cpus <n>', 'virtual CPUs')
    .requiredOption('--memory <size>', 'memory (e.g. 512MiB)')
    .option('--disk <size>', 'disk (e.g. 10GiB)', '0')
    .option('--kernel <profile>', 'the guest kernel profile', 'default')
    .option('--cost <key=value>', 'an extra cost item, or an override of the derived ones (repeatable)', collect, [])
    .option('--json', 'print the flavor as JSON')
    .action(
      async (
        name: string,
        flags: TargetFlags & { cpus: string; memory: string; disk: string; kernel: string; cost: string[]; json?: boolean },
      ) => {
        if (!/^\d+$/.test(flags.cpus)) throw new BosonError('USAGE', `invalid --cpus: ${flags.cpus}`);
        const f = await (
          await controllerClient(flags)
        ).createFlavor({
          name,
          cpus: Number(flags.cpus),
          memoryBytes: parseByteSize(flags.memory, '--memory'),
          diskBytes: parseByteSize(flags.disk, '--disk'),
          kernel: flags.kernel,
          cost: flags.cost.map(parseQuotaItem),
        });
        if (flags.json) printJson(f);
        else process.stdout.write(`${f.name}\n`);
      },
    );
  withTarget(flavor.command('ls').description('List flavors'))
    .option('--json', 'print as JSON')
    .action(async (flags: TargetFlags & { json?: boolean }) => {
      const list = await (await controllerClient(flags)).listFlavors();
      if (flags.json) printJson(list);
      else
        printTable(
          ['NAME', 'CPUS', 'MEMORY', 'DISK', 'KERNEL', 'COST'],
          list.map((f) => [f.name, String(f.cpus), bytes(f.memoryBytes), bytes(f.diskBytes), f.kernel, formatLimits(f.cost)]),
        );
    });
  withTarget(flavor.command('show').description('Show a flavor as JSON').argument('<name>')).action(
    async (name: string, flags: TargetFlags) => {
      printJson(await (await controllerClient(flags)).getFlavor(name));
    },
  );
  withTarget(flavor.command('rm').description('Remove flavors (system admins)').argument('<names...>')).action(
    async (names: string[], flags: TargetFlags) => {
      const client = await controllerClient(flags);
      await forEach(names, async (n) => {
        await client.deleteFlavor(n);
        process.stdout.write(`${n}\n`);
      });
    },
  );

  const task = program.command('task').description("Follow the controller's long operations");
  withTarget(task.command('ls').description('List tasks, newest first'))
    .option('--json', 'print as JSON')
    .action(async (flags: TargetFlags & { json?: boolean }) => {
      const list = await (await controllerClient(flags)).listTasks();
      if (flags.json) printJson(list);
      else printTable(['ID', 'KIND', 'TARGET', 'STATE', 'CREATED', 'ERROR'], list.map(taskRow));
    });
  withTarget(task.command('show').description('Show a task with its steps').argument('<id>'))
    .option('--json', 'print as JSON')
    .action(async (id: string, flags: TargetFlags & { json?: boolean }) => {
      const t = await (await controllerClient(flags)).getTask(id);
      if (flags.json) printJson(t);
      else printTask(t);
    });
  withTarget(task.command('wait').description("Wait for a task to end; exits with its error's status when it failed").argument('<id>'))
    .option('--timeout <seconds>', 'give up after (TASK_TIMEOUT)', '300')
    .option('--json', 'print the task as JSON')
    .action(async (id: string, flags: TargetFlags & { timeout: string; json?: boolean }) => {
      if (!/^\d+$/.test(flags.timeout)) throw new BosonError('USAGE', `invalid --timeout: ${flags.timeout}`);
      const client = await controllerClient(flags);
      const t = await waitForTask(client, await client.getTask(id), Number(flags.timeout));
      if (flags.json) printJson(t);
      else process.stdout.write(`${t.id} ${t.state}\n`);
      if (t.state === 'failed') throw taskError(t);
    });
}
