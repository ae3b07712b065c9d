/** Public surface of src/machine: running containers in micro-VMs on this host. */
export { ContainerRunner, hostCpuCount, DEFAULT_MEMORY_MIB, type RunRequest, type RunHooks, type RunningContainer, type RunTimings } from './runner.ts';
export { ContainerRegistry, validateContainerName, type ContainerRecord } from './containers.ts';
export { parseMemory, parseCpus, parseEnvFile, expandEnvArgs, resolveProcessConfig, type ProcessConfig } from './container-config.ts';
export type { ProcessExit, SessionOutput } from './guest-session.ts';
