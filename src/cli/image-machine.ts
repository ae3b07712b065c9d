/**
 * The machine the CLI's image commands (pull, images, rmi, tag...) talk to: the daemon's, through its typed client,
 * when one answers; otherwise this host's images, built by the composition root in this process. Either way the
 * commands see the port's MachineImages and nothing of the store behind it. The builder of this host's images
 * (src/main/images.ts: neither the containers nor the VMM) is imported statically: a cached pull without a daemon
 * runs from one file (build/cli/light.mjs).
 */
import { RemoteImages } from '../machine/client/index.ts';
import { localContext } from '../machine/port/index.ts';
import { buildImages } from '../main/index.ts';
import { daemonAnswers, type ImageMachine } from './machine.ts';
import { machineClient } from './target-machine.ts';

/** The images of this host's machine: the daemon's when one answers, else built in this process. */
export async function imageMachine(): Promise<ImageMachine> {
  const client = machineClient();
  if (await daemonAnswers(client)) return { images: new RemoteImages(client), remote: true, ctx: localContext() };
  return { images: buildImages(), remote: false, ctx: localContext() };
}
