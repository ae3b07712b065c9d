/**
 * The daemon-backed container commands, one file per group: container-lifecycle.ts (create, start, stop, restart,
 * kill, rm, wait, rename), container-list.ts (ps, inspect, stats), logs.ts, exec.ts (attach, exec), events.ts; and
 * volumes.ts, networks.ts. Each talks to the daemon through its typed client (RemoteMachine).
 */
import type { Command } from 'commander';
import { registerLifecycleCommands } from './container-lifecycle.ts';
import { registerListCommands, registerStats } from './container-list.ts';
import { registerEvents } from './events.ts';
import { registerExecCommands } from './exec.ts';
import { registerLogs } from './logs.ts';

export { registerVolumeCommands } from './volumes.ts';
export { registerNetworkCommands } from './networks.ts';

/** Adds the daemon-backed container commands to the program, in the order `boson --help` lists them. */
export function registerContainerCommands(program: Command): void {
  registerLifecycleCommands(program);
  registerListCommands(program);
  registerLogs(program);
  registerExecCommands(program);
  registerStats(program);
  registerEvents(program);
}
