/**
 * The `boson` command line. Each command lives in its own file under commands/; this file wires them into the
 * program of program.ts, which turns every error into one message and a distinct exit status (see docs/api.md).
 *
 * Start-up: only the modules of the command asked for are loaded (dynamic imports, which the esbuild bundle of
 * bin/boson turns into chunks): `boson pull` does not load the machine, the VMM or the table printer. Help,
 * version and anything unrecognised register every command. bin/boson sends run to run-light.ts and pull, login and
 * logout to light.ts, one-file bundles of just those; this file handles them too (through tsx, BOSON_NO_BUNDLE=1).
 */
import type { Command } from 'commander';
import { runProgram } from './program.ts';

/** Commands whose module registers exactly the top-level names listed (and nothing that another module needs). */
const LIGHT: Record<string, () => Promise<(program: Command) => void>> = {
  pull: async () => (await import('./commands/pull.ts')).registerPullCommands,
  login: async () => (await import('./commands/login.ts')).registerLoginCommands,
  logout: async () => (await import('./commands/login.ts')).registerLoginCommands,
  // `boson run` is the start of every container: it loads its own module only.
  run: async () => (await import('./commands/run.ts')).registerRun,
};

/**
 * `boson --project TENANT/PROJECT <command>`: the machine commands (run, exec, logs, ps, images…) go to that
 * project's machine API on the current context's controller instead of this host's daemon.
 */
function addProjectOption(program: Command): void {
  program.option('--project <tenant/project>', "send the machine commands to this project on the current context's controller");
  program.hook('preAction', async () => {
    const ref = program.opts<{ project?: string }>().project;
    if (ref === undefined) return;
    const [{ controllerClient, splitProject }, { selectMachine }] = await Promise.all([
      import('./controller-target.ts'),
      import('./target-machine.ts'),
    ]);
    const { tenant, project } = splitProject(ref);
    selectMachine((await controllerClient({})).projectMachine(tenant, project));
  });
}

async function registerAll(program: Command): Promise<void> {
  addProjectOption(program);
  const [run, info, images, up, containers, pull, login, tls, controller, tenancy, identity, catalog, context, fleet] = await Promise.all([
    import('./commands/run.ts'),
    import('./commands/info.ts'),
    import('./commands/images.ts'),
    import('./commands/up.ts'),
    import('./commands/containers.ts'),
    import('./commands/pull.ts'),
    import('./commands/login.ts'),
    import('./commands/tls.ts'),
    import('./commands/controller.ts'),
    import('./commands/tenancy.ts'),
    import('./commands/identity.ts'),
    import('./commands/catalog.ts'),
    import('./commands/context.ts'),
    import('./commands/fleet.ts'),
  ]);
  run.registerRun(program);
  info.registerInfo(program);
  images.registerImageCommands(program);
  up.registerUp(program);
  containers.registerContainerCommands(program);
  containers.registerVolumeCommands(program);
  containers.registerNetworkCommands(program);
  pull.registerPullCommands(program);
  login.registerLoginCommands(program);
  tls.registerTls(program);
  controller.registerController(program);
  tenancy.registerTenancyCommands(program);
  identity.registerIdentityCommands(program);
  catalog.registerCatalogCommands(program);
  context.registerContextCommands(program);
  fleet.registerFleetCommands(program);
}

await runProgram(
  async (program) => {
    const light = LIGHT[process.argv[2] ?? ''];
    if (light) (await light())(program);
    else await registerAll(program);
  },
  async (err, json) => (await import('./output.ts')).reportError(err, json),
);
