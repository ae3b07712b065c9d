/**
 * Which machine the CLI's machine commands (run, exec, logs, ps, images…) talk to: this host's daemon on its
 * socket, or, with `boson --project TENANT/PROJECT`, that project's machine API on the current context's controller
 * (the project as one machine: its containers wherever the fleet placed them).
 */
import { MachineClient } from '../machine/client/index.ts';
import { clientSocketPath } from '../main/index.ts';

let selected: MachineClient | undefined;

/** Sends the machine commands of this process to `client` (a project's machine API) instead of this host's daemon. */
export function selectMachine(client: MachineClient): void {
  selected = client;
}

/** The client of the machine the commands talk to. */
export function machineClient(): MachineClient {
  return selected ?? new MachineClient(clientSocketPath());
}
