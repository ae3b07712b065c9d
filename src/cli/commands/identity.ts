/**
 * `boson user create|ls|rm` and `boson token create|ls|revoke`, through the controller's client. A token is printed
 * once, when it is made (only a hash of it is kept); `--project T/P` grants member (or `--role viewer`),
 * `--tenant T` tenant-admin, `--system` system-admin.
 */
import type { Command } from 'commander';
import { BosonError } from '../../common/index.ts';
import type { Grant } from '../../controller/index.ts';
import { controllerClient, splitProject, withTarget, type TargetFlags } from '../controller-target.ts';
import { forEach } from '../daemon.ts';
import { printJson, printTable } from '../output.ts';

/** A duration such as 3600, 90m, 12h or 30d, in seconds. */
function parseTtl(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw new BosonError('USAGE', `invalid --ttl: ${JSON.stringify(text)} (e.g. 12h, 30d)`);
  return Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2]!]!;
}

/** The grant the token flags ask for. */
function grantOf(flags: { project?: string; tenant?: string; system?: boolean; role?: string }): Grant {
  const given = [flags.project, flags.tenant, flags.system].filter((x) => x !== undefined && x !== false).length;
  if (given !== 1) throw new BosonError('USAGE', 'give exactly one of --project TENANT/PROJECT, --tenant TENANT or --system');
  if (flags.project !== undefined) {
    const { tenant, project } = splitProject(flags.project);
    const role = flags.role ?? 'member';
    if (role !== 'member' && role !== 'viewer') throw new BosonError('USAGE', `--role for a project is member or viewer, not ${role}`);
    return { role, tenant, project };
  }
  if (flags.tenant !== undefined) {
    if (flags.role !== undefined && flags.role !== 'tenant-admin')
      throw new BosonError('USAGE', `--role for a tenant is tenant-admin, not ${flags.role}`);
    return { role: 'tenant-admin', tenant: flags.tenant };
  }
  if (flags.role !== undefined && flags.role !== 'system-admin')
    throw new BosonError('USAGE', `--role with --system is system-admin, not ${flags.role}`);
  return { role: 'system-admin' };
}

/** A grant as text. */
export function grantText(g: Grant): string {
  return g.role === 'system-admin'
    ? 'system-admin'
    : g.role === 'tenant-admin'
      ? `tenant-admin of ${g.tenant}`
      : `${g.role} of ${g.tenant}/${g.project}`;
}

/** Adds `user` and `token` to the program. */
export function registerIdentityCommands(program: Command): void {
  const user = program.command('user').description('Manage users of the controller');
  withTarget(user.command('create').description('Create a user in a tenant (or, without --tenant, a system user)').argument('<name>'))
    .option('--tenant <tenant>', 'the tenant the user belongs to')
    .option('--json', 'print the user as JSON')
    .action(async (name: string, flags: TargetFlags & { tenant?: string; json?: boolean }) => {
      const u = await (await controllerClient(flags)).createUser(name, flags.tenant);
      if (flags.json) printJson(u);
      else process.stdout.write(`${u.name}\n`);
    });
  withTarget(user.command('ls').description('List users'))
    .option('--json', 'print as JSON')
    .action(async (flags: TargetFlags & { json?: boolean }) => {
      const list = await (await controllerClient(flags)).listUsers();
      if (flags.json) printJson(list);
      else
        printTable(
          ['NAME', 'TENANT', 'CREATED'],
          list.map((u) => [u.name, u.tenant ?? '(system)', u.createdAt]),
        );
    });
  withTarget(user.command('rm').description('Remove users and all their tokens').argument('<names...>')).action(
    async (names: string[], flags: TargetFlags) => {
      const client = await controllerClient(flags);
      await forEach(names, async (n) => {
        await client.deleteUser(n);
        process.stdout.write(`${n}\n`);
      });
    },
  );

  const token = program.command('token').description('Manage bearer tokens of the controller');
  withTarget(token.command('create').description('Issue a token (printed once: only a hash of it is kept)'))
    .option('--project <tenant/project>', 'a token for a project (role member, or viewer with --role viewer)')
    .option('--tenant <tenant>', "a tenant admin's token")
    .option('--system', "a system admin's token")
    .option('--role <role>', 'member or viewer (with --project)')
    .option('--user <name>', 'whose token it is (default: you)')
    .option('--description <text>', 'what it is for')
    .option('--ttl <duration>', 'expires after (e.g. 12h, 30d; default never)')
    .option('--json', 'print the token and its record as JSON')
    .action(
      async (
        flags: TargetFlags & {
          project?: string;
          tenant?: string;
          system?: boolean;
          role?: string;
          user?: string;
          description?: string;
          ttl?: string;
          json?: boolean;
        },
      ) => {
        const grant = grantOf(flags);
        const made = await (
          await controllerClient(flags)
        ).createToken({
          grant,
          ...(flags.user !== undefined ? { user: flags.user } : {}),
          ...(flags.description !== undefined ? { description: flags.description } : {}),
          ...(flags.ttl !== undefined ? { ttlSeconds: parseTtl(flags.ttl) } : {}),
        });
        if (flags.json) printJson(made);
        else {
          process.stdout.write(`${made.token}\n`);
          if (process.stderr.isTTY)
            process.stderr.write(
              `Token ${made.info.id} for ${made.info.user}: ${grantText(made.info.grant)}. It is shown only now: keep it safe.\n`,
            );
        }
      },
    );
  withTarget(token.command('ls').description('List tokens (never their secrets)'))
    .option('--json', 'print as JSON')
    .action(async (flags: TargetFlags & { json?: boolean }) => {
      const list = await (await controllerClient(flags)).listTokens();
      if (flags.json) printJson(list);
      else
        printTable(
          ['ID', 'USER', 'GRANT', 'EXPIRES', 'DESCRIPTION'],
          list.map((t) => [t.id, t.user, grantText(t.grant), t.expiresAt ?? 'never', t.description]),
        );
    });
  withTarget(token.command('revoke').description('Revoke tokens (refused from the next request on)').argument('<ids...>')).action(
    async (ids: string[], flags: TargetFlags) => {
      const client = await controllerClient(flags);
      await forEach(ids, async (id) => {
        await client.revokeToken(id);
        process.stdout.write(`${id}\n`);
      });
    },
  );
}
