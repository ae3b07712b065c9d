/**
 * `boson context create|use|ls|rm|show`: named ways to reach a controller (its address, a token, TLS files), like
 * photon's target. `local` is always there: this host's controller on its socket, as its system admin.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { BosonError } from '../../common/index.ts';
import { ControllerClient } from '../../controller/index.ts';
import {
  controllerClient,
  LOCAL_CONTEXT,
  localContext,
  readContexts,
  writeContexts,
  type ControllerContext,
} from '../controller-target.ts';
import { printJson, printTable } from '../output.ts';
import { grantText } from './identity.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** Adds `context` to the program. */
export function registerContextCommands(program: Command): void {
  const context = program
    .command('context')
    .description('Choose the controller the tenant, project, flavor, user, token and task commands talk to');
  context
    .command('create')
    .description('Save a context (and, with --use, make it current)')
    .argument('<name>')
    .requiredOption('--controller <url>', 'unix:///path/controller.sock, https://host:port, or http://127.0.0.1:port')
    .option('--token <token>', 'the bearer token (stored 0600)')
    .option('--tlscacert <file>', 'the CA of the controller (https; default <config dir>/tls/ca.pem)')
    .option('--tlscert <file>', 'the client certificate (https; default <config dir>/tls/cert.pem)')
    .option('--tlskey <file>', 'its key (https; default <config dir>/tls/key.pem)')
    .option('--use', 'make it the current context')
    .action(async (name: string, flags: ControllerContext & { use?: boolean }) => {
      if (!NAME.test(name) || name === LOCAL_CONTEXT) throw new BosonError('USAGE', `invalid context name: ${JSON.stringify(name)}`);
      new ControllerClient({ url: flags.controller }); // checks the address
      const file = await readContexts();
      const abs = (f: string | undefined): string | undefined => (f === undefined ? undefined : path.resolve(f));
      file.contexts[name] = {
        controller: flags.controller,
        ...(flags.token !== undefined ? { token: flags.token } : {}),
        ...(flags.tlscacert !== undefined ? { tlscacert: abs(flags.tlscacert) } : {}),
        ...(flags.tlscert !== undefined ? { tlscert: abs(flags.tlscert) } : {}),
        ...(flags.tlskey !== undefined ? { tlskey: abs(flags.tlskey) } : {}),
      };
      if (flags.use) file.current = name;
      await writeContexts(file);
      process.stdout.write(`${name}\n`);
    });
  context
    .command('use')
    .description(`Make a context current (${LOCAL_CONTEXT}: this host's controller)`)
    .argument('<name>')
    .action(async (name: string) => {
      const file = await readContexts();
      if (name !== LOCAL_CONTEXT && !file.contexts[name])
        throw new BosonError('INVALID_ARGUMENT', `no such context: ${name} (boson context create makes one)`);
      file.current = name;
      await writeContexts(file);
      process.stdout.write(`${name}\n`);
    });
  context
    .command('ls')
    .description('List contexts (tokens are not shown)')
    .option('--json', 'print as JSON')
    .action(async (flags: { json?: boolean }) => {
      const file = await readContexts();
      const current = file.current ?? LOCAL_CONTEXT;
      const all = { [LOCAL_CONTEXT]: localContext(), ...file.contexts };
      const rows = Object.entries(all).map(([name, c]) => ({
        name,
        current: name === current,
        controller: c.controller,
        token: c.token !== undefined,
      }));
      if (flags.json) printJson(rows);
      else
        printTable(
          ['NAME', 'CURRENT', 'CONTROLLER', 'TOKEN'],
          rows.map((r) => [r.name, r.current ? '*' : '', r.controller, r.token ? 'yes' : 'no']),
        );
    });
  context
    .command('rm')
    .description('Remove contexts')
    .argument('<names...>')
    .action(async (names: string[]) => {
      const file = await readContexts();
      for (const n of names) {
        if (!file.contexts[n]) throw new BosonError('INVALID_ARGUMENT', `no such context: ${n}`);
        delete file.contexts[n];
        if (file.current === n) file.current = undefined;
      }
      await writeContexts(file);
      process.stdout.write(names.map((n) => `${n}\n`).join(''));
    });
  context
    .command('show')
    .description('Who you are on the current context (or --controller/--token)')
    .option('--controller <url>', 'the controller')
    .option('--token <token>', 'the bearer token')
    .option('--json', 'print as JSON')
    .action(async (flags: { controller?: string; token?: string; json?: boolean }) => {
      const client = await controllerClient(flags);
      const me = await client.whoami();
      if (flags.json) printJson({ controller: client.target.url, ...me });
      else process.stdout.write(`${me.user} (${grantText(me.grant)}) on ${client.target.url}\n`);
    });
}
