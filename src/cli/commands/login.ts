/** `boson login` and `boson logout`: this user's registry credentials (mode 0600, in the Boson config directory). */
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { BosonError } from '../../common/index.ts';
import { RegistryClient, registryHostName } from '../../image/index.ts';
import { credentialStore, loadConfig, registryOptions } from '../../main/index.ts';

/** Reads one line from the terminal; with `hidden`, typed characters are not echoed. */
async function prompt(question: string, hidden: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new BosonError('USAGE', 'no terminal to ask on: give --username and --password-stdin');
  let muted = false;
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!muted) process.stderr.write(chunk);
      cb();
    },
  });
  const rl = createInterface({ input: process.stdin, output: out, terminal: true });
  try {
    const answer = new Promise<string>((resolve) => rl.question(question, resolve));
    muted = hidden;
    const line = await answer;
    if (hidden) process.stderr.write('\n');
    return line;
  } finally {
    rl.close();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function loginCommand(host: string, flags: { username?: string; passwordStdin?: boolean; insecure?: boolean }): Promise<void> {
  const name = registryHostName(host);
  const username = flags.username ?? (await prompt('Username: ', false)).trim();
  const password = flags.passwordStdin ? await readStdin() : await prompt('Password: ', true);
  if (username === '' || password === '') throw new BosonError('USAGE', 'a user name and a password are required');
  const apiHost = name === 'docker.io' ? 'registry-1.docker.io' : name;
  const config = loadConfig();
  const client = new RegistryClient(apiHost, name, {
    ...registryOptions(config),
    credentials: async () => ({ username, password }),
    ...(flags.insecure ? { insecure: [name] } : {}),
  });
  try {
    await client.checkLogin(`login ${name}`);
  } finally {
    client.close();
  }
  const creds = credentialStore(config);
  await creds.set(name, { username, password });
  process.stdout.write(`Login Succeeded (credentials stored in ${creds.file})\n`);
}

async function logoutCommand(host: string): Promise<void> {
  const name = registryHostName(host);
  const removed = await credentialStore().remove(name);
  process.stdout.write(removed ? `Removing login credentials for ${name}\n` : `Not logged in to ${name}\n`);
}

/** Adds `login` and `logout`. */
export function registerLoginCommands(program: Command): void {
  program
    .command('login')
    .description('Log in to a registry; credentials are stored with mode 0600 in the Boson config directory')
    .argument('[host]', 'registry host[:port]', 'docker.io')
    .option('-u, --username <name>', 'user name (asked for when missing)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--insecure', 'allow plain HTTP to this registry')
    .action(loginCommand);
  program
    .command('logout')
    .description('Remove the stored credentials of a registry')
    .argument('[host]', 'registry host[:port]', 'docker.io')
    .action(logoutCommand);
}
