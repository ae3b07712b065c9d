/**
 * Registry credentials: Boson's own file <configDir>/auth.json (mode 0600, directory 0700), written by `boson login`,
 * and, read-only, Docker's config.json (`auths.<host>.auth`, base64 "user:password"). Boson's own entry wins.
 *
 * configDir: BOSON_CONFIG_DIR, else $XDG_CONFIG_HOME/boson, else ~/.config/boson.
 * Docker's file: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. Both are resolved by the composition root
 * (src/main/config.ts) and passed in. Docker credential helpers (credsStore, credHelpers) are not run.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../common/index.ts';
import { DOCKER_HUB, registryHostName } from './reference.ts';
import { tempName } from './tempfiles.ts';

/** A user name and password (or identity token) for one registry. */
export interface Credentials {
  username: string;
  password: string;
}

/** Where credentials are kept: Boson's file <configDir>/auth.json, and Docker's config.json (read only). */
export interface CredentialFiles {
  /** Boson's configuration directory (the composition root resolves it: BOSON_CONFIG_DIR, XDG_CONFIG_HOME, HOME). */
  configDir: string;
  /** Docker's config.json (the composition root resolves it: DOCKER_CONFIG, HOME). */
  dockerConfigFile: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
}

async function readAuthFile(file: string): Promise<AuthFile> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new BosonError('INVALID_ARGUMENT', `cannot read credentials file ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const parsed = JSON.parse(text) as AuthFile;
    return parsed && typeof parsed === 'object' ? parsed : {};
  } catch (err) {
    throw new BosonError('INVALID_ARGUMENT', `credentials file ${file} is not valid JSON`, { cause: err });
  }
}

/** The keys a registry may be filed under (Docker files Hub under its v1 URL). */
function keysFor(host: string): string[] {
  const h = registryHostName(host);
  if (h === DOCKER_HUB) return [DOCKER_HUB, 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];
  return [h, `https://${h}`, `http://${h}`, `https://${h}/v1/`];
}

function decode(entry: NonNullable<AuthFile['auths']>[string] | undefined): Credentials | null {
  if (!entry) return null;
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const text = Buffer.from(entry.auth, 'base64').toString('utf8');
    const i = text.indexOf(':');
    if (i > 0) return { username: text.slice(0, i), password: text.slice(i + 1) };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string')
    return { username: entry.username, password: entry.password };
  return null;
}

/** Credentials of Boson's and Docker's files. */
export class CredentialStore {
  readonly file: string;
  readonly dockerFile: string;

  constructor(files: CredentialFiles) {
    this.file = path.join(files.configDir, 'auth.json');
    this.dockerFile = files.dockerConfigFile;
  }

  /** Credentials for `host` (Boson's file first, then Docker's), or null. */
  async get(host: string): Promise<Credentials | null> {
    for (const file of [this.file, this.dockerFile]) {
      const auths = (await readAuthFile(file)).auths ?? {};
      for (const k of keysFor(host)) {
        const c = decode(auths[k]);
        if (c) return c;
      }
    }
    return null;
  }

  /** Stores credentials for `host` in Boson's file (0600, written atomically). */
  async set(host: string, creds: Credentials): Promise<void> {
    const data = await readAuthFile(this.file);
    data.auths ??= {};
    data.auths[registryHostName(host)] = { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') };
    await this.write(data);
  }

  /** Removes `host` from Boson's file; true when there was an entry. Docker's file is never written. */
  async remove(host: string): Promise<boolean> {
    const data = await readAuthFile(this.file);
    let found = false;
    for (const k of keysFor(host)) {
      if (data.auths?.[k]) {
        delete data.auths[k];
        found = true;
      }
    }
    if (found) await this.write(data);
    return found;
  }

  private async write(data: AuthFile): Promise<void> {
    const dir = path.dirname(this.file);
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const tmp = path.join(dir, tempName('auth', 'json'));
      await fs.writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
      await fs.rename(tmp, this.file);
    } catch (err) {
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot write credentials file ${this.file}: ${(err as Error).message}`, { cause: err });
    }
  }
}
