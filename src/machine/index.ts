/** Public surface of src/machine: running containers in micro-VMs on this host. */
export { ContainerRunner, hostCpuCount, DEFAULT_MEMORY_MIB, type RunRequest, type RunHooks, type RunningContainer, type RunTimings } from './runner.ts';
export { ContainerRegistry, validateContainerName, type ContainerRecord, type RestartPolicy } from './containers.ts';
export { parseMemory, parseSizeMiB, parseCpus, parseEnvFile, expandEnvArgs, resolveProcessConfig, type ProcessConfig } from './container-config.ts';
export type { ProcessExit, SessionOutput } from './guest-session.ts';
export { MachineClient, StreamDemuxer, daemonSocketPath, execStatusError } from './api/client.ts';
export { pipeClientStdin, type ExecStatus } from './api/exec-stream.ts';
export { parseSignal, parseRestartPolicy, type CreateRequest, type ExecInstance, type ContainerStats, type WaitResult, type WaitCondition, type StreamSink, type MachineService } from './service.ts';
export type { ContainerState, MachineEvent } from './containers.ts';
export { readLog, type LogLine } from './logs.ts';
export type { VolumeRecord, MountSpec } from './volumes/index.ts';
export type { DaemonOptions, RunningDaemon, DaemonPersonality } from './daemon.ts';

/** Starts the machine daemon (loaded on demand, so that other commands do not pay for the server's modules). */
export async function startDaemon(options: import('./daemon.ts').DaemonOptions): Promise<import('./daemon.ts').RunningDaemon> {
  const daemon = await import('./daemon.ts');
  return daemon.startDaemon(options);
}
export { NetworkManager, parsePortSpec, type PortBinding } from './network/index.ts';
export { humanDuration, statusText } from './status.ts';
export { bootBundle } from './boot-bundle.ts';
