/**
 * The Machine interface: everything a Boson machine (one host) can be asked, over the port's types. One
 * implementation runs containers on this host (src/machine/runtime.ts); the typed client of a daemon
 * (src/machine/api/client.ts) answers the same calls over REST. The edges (CLI, REST, Docker, later CRI and the
 * controller) hold a Machine and never its implementation.
 */
import type {
  Container,
  ContainerSpec,
  ContainerStats,
  ContainerUpdate,
  Event,
  ExecInstance,
  ExecSpec,
  Image,
  ImageInspect,
  ImageProgressEvent,
  ImagePruneResult,
  ImagePullRequest,
  ImagePullResult,
  ImageRemoveResult,
  Network,
  NetworkConnectOptions,
  NetworkCreateRequest,
  NetworkInspect,
  NetworkPruneResult,
  Pod,
  PodContainer,
  PodContainerResources,
  PodContainerSpec,
  PodSpec,
  RequestContext,
  Volume,
  VolumeCreateRequest,
  VolumeInspect,
  VolumePruneResult,
  WaitCondition,
  WaitResult,
} from './schemas.ts';

/** Where output of a container or exec goes; a write returning false asks the writer to wait for `onDrain`. */
export interface StreamSink {
  stdout(data: Buffer): void;
  stderr(data: Buffer): void;
  /**
   * Resolves when the sink can take more output (its client keeps up). A follower of the container's output waits
   * for it between batches, so that a client that does not read holds the output back in the log file instead of
   * the daemon's memory.
   */
  ready?(): Promise<void>;
}

/** Controls of a process whose streams are attached. */
export interface ProcessControls {
  stdin(data: Buffer): void;
  closeStdin(): void;
  resize(rows: number, cols: number): void;
}

/**
 * An attached container: its output goes to the sink until `done`. Stdin written before the container's process
 * runs (an attach before start, as `docker run` does it) is held and delivered in order, EOF too, once it runs.
 */
export interface Attachment extends ProcessControls {
  /** Resolves when the output has ended (the container exited, was removed, or the attach was aborted). */
  done: Promise<void>;
}

/** An attach to a container of a pod: `done` when the container exited or `detach` was called. */
export interface PodAttachment extends Attachment {
  detach(): void;
}

/** A started exec. */
export interface ExecSession extends ProcessControls {
  signal(signo: number): void;
  /** The exec's exit code. */
  exit: Promise<number>;
}

/** A container run in one call: created, attached from its first byte, started; `exit` once it has ended. */
export interface RunSession extends ProcessControls {
  container: Container;
  /** Sends a signal (a number, or a name such as TERM) to the container's process. */
  signal(signo: number): void;
  /**
   * Resolves when the container has exited and every byte of its output has reached the sink; with autoRemove,
   * after it has been removed.
   */
  exit: Promise<WaitResult>;
}

/** Options of a run. */
export interface RunOptions {
  /** The pty's size from the start (with a TTY). */
  winsize?: { rows: number; cols: number };
  /** Called once the container exists, before it starts (and before any of its output reaches the sink). */
  onCreated?: (container: Container) => void;
  /** Told what the user should know while it runs, that does not end it (its micro-VM paused on a full disk). */
  onNotice?: (text: string) => void;
}

/** One output record of a container's log (a line, or the start of one still being written). */
export interface LogLine {
  stream: 'stdout' | 'stderr';
  timeNs: bigint;
  data: Buffer;
}

/** Which lines of a log, as `docker logs` has them. */
export interface LogQuery {
  stdout?: boolean;
  stderr?: boolean;
  sinceNs?: bigint;
  untilNs?: bigint;
  /** Only the last N lines. */
  tail?: number;
}

/** The container half of a machine. */
export interface MachineContainers {
  /** Creates a container (not started); validates everything first, so bad input changes nothing. */
  create(ctx: RequestContext, spec: ContainerSpec): Promise<Container>;
  /** Starts a created or exited container; a running one is left as it is. */
  start(ctx: RequestContext, ref: string): Promise<void>;
  /** SIGTERM, then after `timeoutSec` the VM is killed. */
  stop(ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void>;
  restart(ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void>;
  /** Sends a signal (name or number; default KILL) to the container's process. */
  kill(ctx: RequestContext, ref: string, signal?: string): Promise<void>;
  /** Removes a container; a running one only with `force`; its anonymous volumes with `volumes`. */
  remove(ctx: RequestContext, ref: string, options?: { force?: boolean; volumes?: boolean }): Promise<void>;
  rename(ctx: RequestContext, ref: string, newName: string): Promise<void>;
  /** Changes a container's settings after create (its restart policy, read at its next exit), in any state. */
  update(ctx: RequestContext, ref: string, change: ContainerUpdate): Promise<Container>;
  wait(ctx: RequestContext, ref: string, condition?: WaitCondition): Promise<WaitResult>;
  /** Every container (running only unless `all`), newest first. */
  list(ctx: RequestContext, options?: { all?: boolean }): Promise<Container[]>;
  inspect(ctx: RequestContext, ref: string): Promise<Container>;
  stats(ctx: RequestContext, ref: string): Promise<ContainerStats>;
  /** Output from now on goes to `sink` until the container exits or `signal` aborts. */
  attach(ctx: RequestContext, ref: string, sink: StreamSink, signal: AbortSignal): Promise<Attachment>;
  resize(ctx: RequestContext, ref: string, rows: number, cols: number): Promise<void>;
  /** Reads a container's log (and follows it until the container ends or `signal` aborts, when `follow`). */
  logs(
    ctx: RequestContext,
    ref: string,
    query: LogQuery,
    follow: boolean,
    onLine: (line: LogLine) => void,
    signal: AbortSignal,
    /** Resolves when `onLine`'s client can take more; awaited between batches (see StreamSink.ready). */
    ready?: () => Promise<void>,
  ): Promise<void>;
  /** create + attach + start + wait as one call (what `boson run` and `docker run` do). */
  run(ctx: RequestContext, spec: ContainerSpec, sink: StreamSink, options?: RunOptions): Promise<RunSession>;
  createExec(ctx: RequestContext, ref: string, spec: ExecSpec): Promise<ExecInstance>;
  inspectExec(ctx: RequestContext, id: string): Promise<ExecInstance>;
  startExec(ctx: RequestContext, id: string, sink: StreamSink): Promise<ExecSession>;
}

/** Told each progress event of a pull or an import (it must not throw). */
export type ImageProgressListener = (event: ImageProgressEvent) => void;

/**
 * What an import reads: a path on the machine's own host (an OCI image layout directory or a `docker save` tar),
 * or the bytes of such a tar (a `docker save` archive or an OCI layout packed as a tar).
 */
export type ImageImportSource = { path: string } | { tar: AsyncIterable<Uint8Array> };

/** The image half of a machine: its local image store. */
export interface MachineImages {
  /** Pulls an image from its registry (and builds its root disk), telling `onProgress` as it goes. */
  pull(ctx: RequestContext, request: ImagePullRequest, onProgress?: ImageProgressListener): Promise<ImagePullResult>;
  /** Imports every image of an OCI layout or `docker save` archive; `tag` names the image (one image only). */
  import(ctx: RequestContext, source: ImageImportSource, options?: { tag?: string; onProgress?: ImageProgressListener }): Promise<Image[]>;
  list(ctx: RequestContext): Promise<Image[]>;
  /** The image a reference (name, id or id prefix) names, with its config blob; IMAGE_NOT_FOUND otherwise. */
  inspect(ctx: RequestContext, ref: string): Promise<ImageInspect>;
  /** Gives the image `ref` names the further name `name`. */
  tag(ctx: RequestContext, ref: string, name: string): Promise<Image>;
  /** Untags a name; the image goes with its last name (an id: with all of them); IMAGE_IN_USE while a container uses it, unless `force`. */
  remove(ctx: RequestContext, ref: string, options?: { force?: boolean }): Promise<ImageRemoveResult>;
  /** Removes images without names that no container uses, and blobs, root disks and partial downloads nothing needs. */
  prune(ctx: RequestContext): Promise<ImagePruneResult>;
}

/** The volume half of a machine. */
export interface MachineVolumes {
  /** Creates a volume (a random name when none is given); like Docker, creating an existing name returns it. */
  create(ctx: RequestContext, request: VolumeCreateRequest): Promise<Volume>;
  /** Every volume, oldest first. */
  list(ctx: RequestContext): Promise<Volume[]>;
  /** A volume with its disk usage and the containers that mount it; VOLUME_NOT_FOUND otherwise. */
  inspect(ctx: RequestContext, name: string): Promise<VolumeInspect>;
  /** Removes a volume; VOLUME_IN_USE while a container refers to it. */
  remove(ctx: RequestContext, name: string): Promise<void>;
  /** Removes the anonymous volumes no container refers to (with `all`, the named ones too). */
  prune(ctx: RequestContext, options?: { all?: boolean }): Promise<VolumePruneResult>;
}

/** The network half of a machine. */
export interface MachineNetworks {
  /** Creates a network (a bridge with its own subnet); NETWORK_NAME_IN_USE, SUBNET_OVERLAP otherwise. */
  create(ctx: RequestContext, request: NetworkCreateRequest): Promise<Network>;
  list(ctx: RequestContext): Promise<Network[]>;
  /** A network (by id, id prefix or name) with the containers that join it; NETWORK_NOT_FOUND otherwise. */
  inspect(ctx: RequestContext, ref: string): Promise<NetworkInspect>;
  /** Removes a network; NETWORK_IN_USE while containers join it, and for the predefined one. */
  remove(ctx: RequestContext, ref: string): Promise<void>;
  /**
   * Makes a container join network `ref` (instead of the one it joins: a container has one network), with the
   * aliases and static address of `options`. A running container is refused (CONTAINER_RUNNING): a micro-VM gets
   * its one network card at boot; the network is what its next start joins. If it joins `ref` already: with
   * `options`, they replace its aliases and address there; without, ALREADY_CONNECTED.
   */
  connect(ctx: RequestContext, ref: string, container: string, options?: NetworkConnectOptions): Promise<void>;
  /** Takes a container off network `ref` (it then has no network); refused while it runs (CONTAINER_RUNNING). */
  disconnect(ctx: RequestContext, ref: string, container: string): Promise<void>;
  /** Removes the networks no container joins (never the predefined one). */
  prune(ctx: RequestContext): Promise<NetworkPruneResult>;
}

/** Which events: those logged within [sinceNs, untilNs] (both optional), after sequence number `afterSeq`. */
export interface EventQuery {
  sinceNs?: bigint;
  untilNs?: bigint;
  afterSeq?: number;
}

/** The event log of a machine. */
export interface MachineEvents {
  /** Logged events within the query's range, oldest first. */
  past(ctx: RequestContext, query?: EventQuery): Promise<Event[]>;
  /**
   * The logged events since `sinceNs` (when given), then every new one as it happens (none after `untilNs`),
   * until `signal` aborts or `untilNs` arrives (at once when it has passed already).
   */
  follow(ctx: RequestContext, query: EventQuery, onEvent: (event: Event) => void, signal: AbortSignal): Promise<void>;
}

/** A whole machine as an edge holds it: its containers, and its images, volumes, networks and events. */
export interface Machine {
  readonly containers: MachineContainers;
  readonly images: MachineImages;
  readonly volumes: MachineVolumes;
  readonly networks: MachineNetworks;
  readonly events: MachineEvents;
}

/** What a one-shot command in a container of a pod produced (CRI's ExecSync). */
export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
  /** The command outlived its timeout and was killed (its exit code is then the kill's). */
  timedOut: boolean;
}

/** What a pod's micro-VM uses, seen from the host (its QEMU process): the pod's cost, whatever runs inside. */
export interface PodStats {
  timestampNs: string;
  /** CPU time of the VM's QEMU process, ns. */
  cpuNs: number;
  /** Resident memory of the VM's QEMU process. */
  memoryBytes: number;
  /** The VM's memory size. */
  memoryLimitBytes: number;
  /** Processes of its containers that run now. */
  processes: number;
}

/** What a container of a pod uses, read in its pod VM (its main process: CPU time and resident memory). */
export interface PodContainerStats {
  id: string;
  timestampNs: string;
  cpuNs: number;
  memoryBytes: number;
}

/**
 * The pod half of a machine: a pod sandbox is one micro-VM, booted by `run`, that takes containers after it booted;
 * each container has its own root filesystem from its own image and its own process inside that VM. Pods and their
 * containers are found by id (or a unique id prefix); POD_NOT_FOUND and CONTAINER_NOT_FOUND otherwise.
 */
export interface MachinePods {
  /** Boots the pod's micro-VM (its size, hostname, DNS) and resolves once it is ready to take containers. */
  run(ctx: RequestContext, spec: PodSpec): Promise<Pod>;
  /** Stops every container of the pod and its micro-VM; the pod stays (notready) until removed. Idempotent. */
  stop(ctx: RequestContext, id: string): Promise<void>;
  /** Removes a pod with its containers, stopping what still runs. A pod that is gone already is no error. */
  remove(ctx: RequestContext, id: string): Promise<void>;
  inspect(ctx: RequestContext, id: string): Promise<Pod>;
  /** Every pod, newest first. */
  list(ctx: RequestContext): Promise<Pod[]>;
  /** Creates a container in a ready pod: resolves its image and gives it its own root filesystem (not started). */
  createContainer(ctx: RequestContext, podId: string, spec: PodContainerSpec): Promise<PodContainer>;
  /** Starts a created container's process in the pod's VM; its output goes to its log path in the CRI log format. */
  startContainer(ctx: RequestContext, id: string): Promise<void>;
  /** SIGTERM to the container's process, SIGKILL after `timeoutSec`; a container that is not running is left as it is. */
  stopContainer(ctx: RequestContext, id: string, timeoutSec: number): Promise<void>;
  /** Removes a container (killing it if it runs) and its root filesystem; one that is gone already is no error. */
  removeContainer(ctx: RequestContext, id: string): Promise<void>;
  inspectContainer(ctx: RequestContext, id: string): Promise<PodContainer>;
  /** Every container of every pod (of one pod, with `podId`), newest first. */
  listContainers(ctx: RequestContext, podId?: string): Promise<PodContainer[]>;
  /** Runs `argv` in a running container (its root, env, user) and collects its output; killed after `timeoutSec` (0: none). */
  execSync(ctx: RequestContext, id: string, argv: string[], timeoutSec: number): Promise<ExecSyncResult>;
  /** Opens the container's log file again (after kubelet rotated it). */
  reopenLog(ctx: RequestContext, id: string): Promise<void>;
  /**
   * Starts `argv` in a running container (its root, env, user), interactively: output goes to `sink`, the session
   * takes stdin (with `stdin`), resizes (with `tty`) and signals, and `exit` resolves with its status.
   */
  exec(ctx: RequestContext, id: string, options: { argv: string[]; tty: boolean; stdin: boolean }, sink: StreamSink): Promise<ExecSession>;
  /**
   * Attaches to a running container's main process: its output from now on goes to `sink` (stdout only with a
   * tty) until it exits or `detach` is called; stdin reaches it when it was created with stdin (else
   * INVALID_ARGUMENT when `stdin` is asked). Closing stdin closes the process's stdin only with stdinOnce.
   */
  attach(ctx: RequestContext, id: string, options: { stdin: boolean }, sink: StreamSink): Promise<PodAttachment>;
  /** Changes the limits of a container (created or running) inside its pod VM; absent fields become unlimited. */
  updateContainerResources(ctx: RequestContext, id: string, resources: PodContainerResources): Promise<void>;
  /** What each running container (of pod `podId`, when given) uses now; containers not running are left out. */
  containerStats(ctx: RequestContext, podId?: string): Promise<PodContainerStats[]>;
  /** What the pod's micro-VM uses now (zeros when it is not running). */
  stats(ctx: RequestContext, id: string): Promise<PodStats>;
  /**
   * Connects to TCP `port` on the pod's own localhost, inside its micro-VM (what kubelet's port-forward dials): the
   * session's stdin goes to the connection and what the pod answers to `sink.stdout`; `sink.stderr` says why a
   * connection failed; `exit` resolves when the connection has ended (0) or could not be made.
   */
  portForward(ctx: RequestContext, id: string, port: number, sink: StreamSink): Promise<ExecSession>;
  /** Whether new pods can get a network now (CNI configured and its plugins installed), and if not why. */
  networkStatus(ctx: RequestContext): Promise<{ ready: boolean; reason: string; message: string }>;
}

/** A machine that runs pods as well (this host's runtime; the REST client does not serve pods yet). */
export interface PodMachine extends Machine {
  readonly pods: MachinePods;
}
