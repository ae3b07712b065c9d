/**
 * The composition root's builder of this host's images alone, for the commands that need nothing else (a pull in
 * a CLI process without a daemon): it opens neither the container state nor anything of the VMM, and it is kept
 * apart from root.ts so that the CLI's one-file pull bundle does not load them. It also turns the host
 * configuration into the image layer's options (registries, credentials, root disks, staging), which the image
 * layer never reads from the environment itself.
 */
import path from 'node:path';
import { CredentialStore, ImageStore, type ImageStoreOptions, type RegistryClientOptions } from '../image/index.ts';
import { ImageService, openStateStore } from '../machine/index.ts';
import { loadConfig, type HostConfig } from './config.ts';

/** The credential files of this host's configuration (Boson's auth.json, Docker's config.json). */
export function credentialStore(config: HostConfig = loadConfig()): CredentialStore {
  return new CredentialStore({ configDir: config.configDir, dockerConfigFile: config.dockerConfigFile });
}

/** How registries are reached: insecure hosts, the extra CA, certs.d under the configuration directory, credentials. */
export function registryOptions(config: HostConfig): RegistryClientOptions {
  const credentials = credentialStore(config);
  return {
    insecure: config.insecureRegistries,
    caFile: config.registryCa,
    configDir: config.configDir,
    credentials: (host) => credentials.get(host),
  };
}

/** The image store's options for this host. */
export function imageStoreOptions(config: HostConfig): ImageStoreOptions {
  return { rootless: config.paths.rootless, rootfs: config.rootfs, stagingDir: config.stagingDir, registry: registryOptions(config) };
}

/**
 * This host's images for pulls, lists and inspection. It does not know which images containers use, so removal
 * and prune are refused: those take the runtime's image service (buildRuntime(...).imageService).
 */
export function buildImages(config: HostConfig = loadConfig()): ImageService {
  const { paths } = config;
  return new ImageService(new ImageStore(openStateStore(paths.stateDir), paths.stateDir, imageStoreOptions(config)), {
    spoolDir: path.join(paths.stateDir, 'tmp'),
  });
}
