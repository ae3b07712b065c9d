/**
 * CRI's Attach: a one-time URL of Boson's streaming server that joins a running container's main process (its
 * output from then on, its stdin when the container has one, resize with a tty). The request must match how the
 * container was created: stdin only for a container with stdin, tty exactly as its config says.
 */
import * as grpc from '@grpc/grpc-js';
import type { PodMachine } from '../machine/port/index.ts';
import { CriRefusal } from './errors.ts';
import type { CriHandler } from './handler.ts';
import type { StreamingServer } from './streaming.ts';

/** The Attach handler over `streaming` (refused without one). */
export function attachHandlers(machine: PodMachine, streaming?: StreamingServer): Record<string, CriHandler> {
  return {
    Attach: async (ctx, req) => {
      if (!streaming) throw new CriRefusal(grpc.status.UNIMPLEMENTED, 'Attach: this CRI server runs without its streaming server');
      if (!req.containerId) throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'container_id is required');
      if (!req.stdout && !req.stderr && !req.stdin)
        throw new CriRefusal(grpc.status.INVALID_ARGUMENT, 'Attach needs at least one of stdin, stdout and stderr');
      const c = await machine.pods.inspectContainer(ctx, req.containerId);
      if (c.state !== 'running') throw new CriRefusal(grpc.status.FAILED_PRECONDITION, `container ${c.spec.name} is not running`);
      if (req.stdin && !c.spec.stdin)
        throw new CriRefusal(grpc.status.INVALID_ARGUMENT, `container ${c.spec.name} was created without stdin: Attach cannot write to it`);
      const tty = c.spec.tty ?? false;
      if (Boolean(req.tty) !== tty)
        throw new CriRefusal(
          grpc.status.INVALID_ARGUMENT,
          `Attach asks for tty=${Boolean(req.tty)}, but container ${c.spec.name} was created with tty=${tty}`,
        );
      return {
        url: streaming.attachUrl({
          containerId: c.id,
          tty,
          stdin: Boolean(req.stdin),
          stdout: Boolean(req.stdout),
          stderr: Boolean(req.stderr) && !tty,
        }),
      };
    },
  };
}
