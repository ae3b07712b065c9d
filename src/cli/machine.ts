/**
 * What the CLI's commands share about the machine they talk to: whether a daemon answers `GET /healthz` on its
 * socket, and how a pull request carries this user's credentials to it. The image commands' machine (the daemon's,
 * or this host's images in this process) is image-machine.ts.
 */
import { remoteReference } from '../image/index.ts';
import type { MachineClient } from '../machine/client/index.ts';
import type { ImageProgressListener, ImagePullRequest, MachineImages, RequestContext } from '../machine/port/index.ts';
import { clientCredentialStore } from '../main/index.ts';

/** Where the images are: through a daemon (`remote`), or embedded in this process. */
export interface ImageMachine {
  images: MachineImages;
  remote: boolean;
  ctx: RequestContext;
}

/** True when a daemon answers on `client`'s socket. */
export async function daemonAnswers(client: MachineClient): Promise<boolean> {
  // A project on a controller is never replaced by an embedded machine: its errors are the controller's.
  if (client.via) return true;
  return client.request('GET', '/healthz').then(
    () => true,
    () => false,
  );
}

/**
 * The credentials this user has for `reference`'s registry, sent along when a daemon pulls: it pulls as the user
 * would (docker sends X-Registry-Auth the same way), not with its own. None for an id or a malformed reference.
 */
export async function userAuth(reference: string): Promise<ImagePullRequest['auth']> {
  let registry: string;
  try {
    registry = remoteReference(reference).registry;
  } catch {
    return undefined;
  }
  return (await clientCredentialStore().get(registry)) ?? undefined;
}

/** A pull request for `machine`: through a daemon it carries this user's credentials for the registry. */
export async function pullRequest(machine: ImageMachine, request: ImagePullRequest): Promise<ImagePullRequest> {
  if (!machine.remote || request.auth) return request;
  const auth = await userAuth(request.reference);
  return auth ? { ...request, auth } : request;
}

/**
 * Pull progress as one-line summaries ("pulling x: 12.3/50.0 MB", total bytes over all layers), for a status line;
 * warnings go to `onWarning`.
 */
export function pullSteps(onStep: (text: string) => void, onWarning: (text: string) => void): ImageProgressListener {
  const layers = new Map<string, { current: number; total: number }>();
  const mb = (n: number): string => (n / 1e6).toFixed(1);
  let ref = '';
  return (e) => {
    if (e.phase === 'warning' && e.detail) onWarning(e.detail);
    else if (e.phase === 'resolve') onStep(`pulling ${(ref = e.detail ?? ref)}`);
    else if ((e.phase === 'download' || e.phase === 'downloaded' || e.phase === 'exists') && e.detail) {
      layers.set(e.detail, { current: e.current ?? 0, total: e.total ?? 0 });
      let cur = 0;
      let tot = 0;
      for (const l of layers.values()) {
        cur += l.current;
        tot += l.total;
      }
      onStep(`pulling ${ref}: ${mb(cur)}/${mb(tot)} MB`);
    } else if (e.phase === 'unpack') onStep(`pulling ${ref}: extracting layer ${e.current}/${e.total}`);
    else if (e.phase === 'mkfs') onStep(`pulling ${ref}: building the root disk`);
  };
}
