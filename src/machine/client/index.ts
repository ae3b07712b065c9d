/**
 * What an edge (the CLI, the Docker personality, later CRI and the controller) may use of src/machine besides the
 * port (src/machine/port/index.ts): the typed client of a machine behind a socket (RemoteMachine and its halves,
 * MachineClient's requests, upgrades and NDJSON streams), the wire helpers of those streams, and the pure helpers
 * that turn user syntax into the port's types (-v, -p, --restart, signals, sizes, image references) and the port's
 * types into text.
 * Nothing here holds or builds an implementation: those come from the composition root (src/main). The layer test
 * (test/layers.test.ts) lets the edges import these two surfaces of src/machine and nothing else.
 */
export { MachineClient, StreamDemuxer, errorFrom, execStatusError, type MachineTlsEndpoint, type MachineVia } from '../api/client.ts';
export { RemoteMachine, RemoteImages, RemoteVolumes, RemoteNetworks, RemoteEvents } from '../api/remote.ts';
export { pipeClientStdin, EXEC_STATUS_STREAM, RUN_CREATED_STREAM, RUN_NOTICE_STREAM, type ExecStatus } from '../api/exec-stream.ts';
export {
  parseSignal,
  parseRestartPolicy,
  DEFAULT_MEMORY_MIB,
  parseMemory,
  parseSizeMiB,
  parseCpus,
  parseEnvFile,
  expandEnvArgs,
  parseLogOptions,
} from '../container-config.ts';
export { parsePortSpec } from '../network/index.ts';
export { parseVolumeSpec } from '../volumes/index.ts';
export { validateContainerName } from '../containers.ts';
export { humanDuration, statusText } from '../status.ts';
export { hostCpuCount } from '../capacity.ts';
export { nsFromTime } from '../api/routing.ts';
export { remoteReference } from '../../image/index.ts';
