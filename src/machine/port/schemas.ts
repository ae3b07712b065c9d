/**
 * The machine port's types, as TypeBox schemas: what a machine can be asked (ContainerSpec, ExecSpec) and what it
 * answers (Container, Image, Volume, Network, Event). Every edge (CLI, REST, Docker, later CRI and the controller)
 * speaks these and nothing else to a machine; the REST API validates requests and describes responses with the
 * same schemas, so its OpenAPI document is generated from them.
 */
import { Type, type Static } from '@sinclair/typebox';

/**
 * Who asks, for whom, until when. Every call of the port carries one. The single host fills only `requestId`
 * today; authentication and the controller fill the rest, so no signature changes when they come.
 */
export const RequestContext = Type.Object({
  requestId: Type.Optional(Type.String()),
  principal: Type.Optional(Type.String({ description: 'who is asking (a user, a certificate subject)' })),
  tenant: Type.Optional(Type.String()),
  project: Type.Optional(Type.String()),
  deadline: Type.Optional(Type.Number({ description: 'unix milliseconds after which the caller no longer waits' })),
});
export type RequestContext = Static<typeof RequestContext>;

/** A mount of a container: a named or anonymous volume (name '' = anonymous), or a host directory. */
export const MountSpec = Type.Union([
  Type.Object(
    {
      type: Type.Literal('volume'),
      name: Type.String({ description: "'' for a new anonymous volume" }),
      destination: Type.String({ minLength: 1 }),
      readOnly: Type.Boolean(),
      anonymous: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      type: Type.Literal('bind'),
      source: Type.String({ minLength: 1 }),
      destination: Type.String({ minLength: 1 }),
      readOnly: Type.Boolean(),
    },
    { additionalProperties: false },
  ),
]);
export type MountSpec = Static<typeof MountSpec>;

/** A port to publish: hostPort 0 takes a free port; hostIp '' is every address. */
export const PortBinding = Type.Object(
  {
    hostIp: Type.String(),
    hostPort: Type.Integer({ minimum: 0, maximum: 65535 }),
    containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]),
    hostPortEnd: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  },
  { additionalProperties: false },
);
export type PortBinding = Static<typeof PortBinding>;

/** Docker's restart policies. */
export const RestartPolicy = Type.Object(
  {
    name: Type.Union([Type.Literal('no'), Type.Literal('on-failure'), Type.Literal('always'), Type.Literal('unless-stopped')]),
    maximumRetryCount: Type.Integer({ minimum: 0, description: 'on-failure: restarts at most (0: no limit)' }),
  },
  { additionalProperties: false },
);
export type RestartPolicy = Static<typeof RestartPolicy>;

/** The container's process, as asked; what is left out comes from the image (Docker's precedence rules). */
export const ProcessSpec = Type.Object(
  {
    /** Arguments (Docker's Cmd); empty or absent: the image's Cmd. */
    args: Type.Optional(Type.Array(Type.String())),
    /** Replaces the image's Entrypoint (and drops its Cmd); an empty array clears it. */
    entrypoint: Type.Optional(Type.Array(Type.String())),
    /** KEY=value entries, already expanded by the caller (a bare KEY is taken from nowhere: the machine is remote). */
    env: Type.Optional(Type.Array(Type.String())),
    cwd: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    hostname: Type.Optional(Type.String()),
    tty: Type.Optional(Type.Boolean()),
    /** Keep stdin open for attach. */
    stdin: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ProcessSpec = Static<typeof ProcessSpec>;

/** The micro-VM's size. */
export const ResourceSpec = Type.Object(
  {
    memoryMiB: Type.Optional(Type.Integer({ minimum: 64 })),
    cpus: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Size of the writable layer's disk (sparse; default 8 GiB). */
    diskBytes: Type.Optional(Type.Integer({ minimum: 64 * 1024 * 1024 })),
  },
  { additionalProperties: false },
);
export type ResourceSpec = Static<typeof ResourceSpec>;

/** A legacy link: another container (name or id) and the name this container knows it by. */
export const LinkSpec = Type.Object(
  { container: Type.String({ minLength: 1 }), alias: Type.String({ minLength: 1 }) },
  { additionalProperties: false },
);
export type LinkSpec = Static<typeof LinkSpec>;

/**
 * How a container's log is capped: Docker json-file's max-size (bytes; absent: never rotated) and max-file (how many
 * files, the current one included, are kept; default 1).
 */
export const LogOptions = Type.Object(
  {
    maxSizeBytes: Type.Optional(Type.Integer({ minimum: 1 })),
    maxFiles: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);
export type LogOptions = Static<typeof LogOptions>;

/** Everything a machine needs to create a container: the one container request of Boson. */
export const ContainerSpec = Type.Object(
  {
    image: Type.String({ minLength: 1 }),
    name: Type.Optional(Type.String()),
    process: Type.Optional(ProcessSpec),
    resources: Type.Optional(ResourceSpec),
    mounts: Type.Optional(Type.Array(MountSpec)),
    /** Network name or id; 'none' for no network; absent: the host's default. */
    network: Type.Optional(Type.String()),
    /** More names the container answers to by DNS on its network (`--network-alias`). */
    aliases: Type.Optional(Type.Array(Type.String())),
    /** A static IPv4 address on its (user-defined) network (`--ip`). */
    ipv4Address: Type.Optional(Type.String()),
    /** Legacy links (`--link name:alias`): `alias` and the container's name resolve, for this container only, to its address. */
    links: Type.Optional(Type.Array(LinkSpec)),
    ports: Type.Optional(Type.Array(PortBinding)),
    /** Publish every port the image exposes, on free host ports (`-P`). */
    publishAll: Type.Optional(Type.Boolean()),
    restartPolicy: Type.Optional(RestartPolicy),
    autoRemove: Type.Optional(Type.Boolean()),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    /** Nameservers and search domains that replace the network's in the guest's /etc/resolv.conf. */
    dns: Type.Optional(
      Type.Object(
        { servers: Type.Array(Type.String()), searches: Type.Array(Type.String()), options: Type.Array(Type.String()) },
        { additionalProperties: false },
      ),
    ),

    /** Log rotation (`--log-opt max-size=… max-file=…`); absent: the host's default. */
    log: Type.Optional(LogOptions),
  },
  { additionalProperties: false },
);
export type ContainerSpec = Static<typeof ContainerSpec>;

/** A further process in a running container. */
export const ExecSpec = Type.Object(
  {
    argv: Type.Array(Type.String(), { minItems: 1 }),
    env: Type.Optional(Type.Array(Type.String())),
    cwd: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    tty: Type.Optional(Type.Boolean()),
    stdin: Type.Optional(Type.Boolean()),
    /**
     * When the container is not running, run in a short-lived helper micro-VM booted from its disks (no network,
     * not its command) instead of refusing: how its files are reached while it is stopped (`docker cp`).
     */
    offline: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ExecSpec = Static<typeof ExecSpec>;

/** The states a container goes through. */
export const ContainerState = Type.Union([
  Type.Literal('created'),
  Type.Literal('running'),
  Type.Literal('restarting'),
  Type.Literal('exited'),
  Type.Literal('dead'),
  /** Saved to a file with no VM running (boson suspend); `resume` continues it where it was. */
  Type.Literal('suspended'),
]);
export type ContainerState = Static<typeof ContainerState>;

/** Where a running container is reachable. */
export const Endpoint = Type.Object({
  network: Type.String(),
  address: Type.String(),
  gateway: Type.String(),
  mac: Type.String(),
  ports: Type.Array(PortBinding),
});

/** A container as the API shows it (not its database row). */
export const Container = Type.Object({
  id: Type.String(),
  name: Type.String(),
  image: Type.String(),
  imageId: Type.String(),
  created: Type.String(),
  config: Type.Object({
    argv: Type.Array(Type.String()),
    env: Type.Array(Type.String()),
    cwd: Type.String(),
    user: Type.String(),
    hostname: Type.String(),
    tty: Type.Boolean(),
    openStdin: Type.Boolean(),
    labels: Type.Record(Type.String(), Type.String()),
  }),
  resources: Type.Object({ memoryMiB: Type.Integer(), cpus: Type.Integer() }),
  autoRemove: Type.Boolean(),
  restartPolicy: RestartPolicy,
  /** Its log rotation, as fixed when it was created. */
  log: Type.Optional(LogOptions),
  restartCount: Type.Integer(),
  state: ContainerState,
  /** pid of the container's QEMU process, while running. */
  vmPid: Type.Union([Type.Integer(), Type.Null()]),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  startedAt: Type.Union([Type.String(), Type.Null()]),
  finishedAt: Type.Union([Type.String(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  mounts: Type.Array(MountSpec),
  network: Type.String(),
  /** Its DNS aliases on its network, when it has any. */
  aliases: Type.Optional(Type.Array(Type.String())),
  /** The static IPv4 address it asked for, if any. */
  ipv4Address: Type.Optional(Type.String()),
  /** Its legacy links, when it has any: `container` is the linked container's id, `name` its name when linked. */
  links: Type.Optional(Type.Array(Type.Object({ container: Type.String(), name: Type.String(), alias: Type.String() }))),
  ports: Type.Array(PortBinding),
  endpoint: Type.Union([Endpoint, Type.Null()]),
  /** Why the running VM is paused (the host's disk is full), while it is. */
  pausedReason: Type.Optional(Type.String()),
  /** When it was suspended, while it is. */
  suspendedAt: Type.Optional(Type.String()),
});
export type Container = Static<typeof Container>;

/** What a suspend or resume did: the size of the saved state and how long the step took. */
export const SuspendResult = Type.Object({
  id: Type.String(),
  state: ContainerState,
  /** Bytes of the saved state (the file a suspend wrote, or a resume read). */
  stateBytes: Type.Integer(),
  /** Milliseconds the whole call took in the daemon. */
  ms: Type.Integer(),
});
export type SuspendResult = Static<typeof SuspendResult>;

/** Docker's wait conditions. */
export const WaitCondition = Type.Union([Type.Literal('not-running'), Type.Literal('next-exit'), Type.Literal('removed')]);
export type WaitCondition = Static<typeof WaitCondition>;

/** What a wait returns. */
export const WaitResult = Type.Object({ statusCode: Type.Integer(), error: Type.Union([Type.String(), Type.Null()]) });
export type WaitResult = Static<typeof WaitResult>;

/** Resource usage of a container, from its QEMU process. */
export const ContainerStats = Type.Object({
  id: Type.String(),
  name: Type.String(),
  cpuNs: Type.Number(),
  memoryBytes: Type.Number(),
  memoryLimitBytes: Type.Number(),
  pids: Type.Integer(),
  read: Type.String(),
});
export type ContainerStats = Static<typeof ContainerStats>;

/** An exec instance as the API shows it. */
export const ExecInstance = Type.Object({
  id: Type.String(),
  containerId: Type.String(),
  argv: Type.Array(Type.String()),
  env: Type.Array(Type.String()),
  cwd: Type.Optional(Type.String()),
  user: Type.Optional(Type.String()),
  tty: Type.Boolean(),
  stdin: Type.Boolean(),
  running: Type.Boolean(),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  pid: Type.Union([Type.Integer(), Type.Null()]),
});
export type ExecInstance = Static<typeof ExecInstance>;

/** The runtime configuration an image gives its containers (from its config blob, with defaults filled in). */
export const ImageConfig = Type.Object({
  entrypoint: Type.Union([Type.Array(Type.String()), Type.Null()]),
  cmd: Type.Union([Type.Array(Type.String()), Type.Null()]),
  env: Type.Array(Type.String()),
  workingDir: Type.String(),
  user: Type.String(),
  volumes: Type.Array(Type.String()),
  labels: Type.Record(Type.String(), Type.String()),
  /** ExposedPorts keys ("80/tcp"); absent in records stored before it was read. */
  exposedPorts: Type.Optional(Type.Array(Type.String())),
});
export type ImageConfig = Static<typeof ImageConfig>;

/** An image in the machine's local store. */
export const Image = Type.Object({
  id: Type.String({ description: "sha256:… of the config blob (Docker's image ID)" }),
  manifestDigest: Type.String({ description: 'sha256:… of the manifest the image came from' }),
  references: Type.Array(Type.String(), { description: 'normalised names of the image, e.g. localhost/busybox:latest' }),
  config: ImageConfig,
  layers: Type.Array(
    Type.Object({ digest: Type.String(), size: Type.Number(), mediaType: Type.String(), diffId: Type.Optional(Type.String()) }),
  ),
  size: Type.Number({ description: 'sum of the layer blobs as stored (compressed when they are)' }),
  created: Type.Union([Type.String(), Type.Null()]),
  architecture: Type.String(),
  os: Type.String(),
  repoDigests: Type.Optional(Type.Array(Type.String({ description: '<registry>/<repository>@<digest> it was pulled by' }))),
  indexDigest: Type.Optional(Type.String({ description: 'the image index the manifest was chosen from' })),
});
export type Image = Static<typeof Image>;

/** An image with its whole config blob (`image inspect`). */
export const ImageInspect = Type.Intersect([
  Image,
  Type.Object({ configBlob: Type.Unknown({ description: 'the parsed OCI / Docker config blob' }) }),
]);
export type ImageInspect = Static<typeof ImageInspect>;

/**
 * One progress event of a pull or an import, as the image store emits them. Phases: resolve, download (current and
 * total bytes of the layer named by detail), downloaded, exists, unpack (layer current of total), mkfs (detail: the
 * file system), done, pulled (detail: the image id); of an import: extract, copy, verify; and warning (something the
 * user should know that did not fail the operation, in detail).
 */
export const ImageProgressEvent = Type.Object({
  phase: Type.String(),
  current: Type.Optional(Type.Number()),
  total: Type.Optional(Type.Number()),
  detail: Type.Optional(Type.String()),
});
export type ImageProgressEvent = Static<typeof ImageProgressEvent>;

/** What a machine is asked to pull. */
export const ImagePullRequest = Type.Object(
  {
    reference: Type.String({ minLength: 1, description: 'name, name:tag, host:port/ns/name:tag or name@sha256:…' }),
    platform: Type.Optional(Type.String({ description: 'os/arch[/variant] chosen from an image index; default linux/amd64' })),
    insecure: Type.Optional(Type.Boolean({ description: "plain HTTP to this reference's registry" })),
    auth: Type.Optional(
      Type.Union([Type.Object({ username: Type.String(), password: Type.String() }, { additionalProperties: false }), Type.Null()], {
        description:
          "credentials for the registry; null: none (an anonymous pull, as dockerd does without X-Registry-Auth); absent: the machine's own",
      }),
    ),
    ifMissing: Type.Optional(
      Type.Boolean({
        description:
          'pull only when no local image answers the reference (docker run); an image already here is the result as it is, and a pull that finds nothing is IMAGE_NOT_FOUND',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ImagePullRequest = Static<typeof ImagePullRequest>;

/** What a pull did. */
export const ImagePullResult = Type.Object({
  image: Image,
  reference: Type.String({ description: 'the canonical reference pulled (docker.io/library/alpine:latest)' }),
  digest: Type.String({ description: 'digest of the manifest or index the reference named' }),
  upToDate: Type.Boolean({ description: 'the image was complete here already: nothing was downloaded' }),
});
export type ImagePullResult = Static<typeof ImagePullResult>;

/** What removing an image reference did: the names untagged, and the image id when the image went with them. */
export const ImageRemoveResult = Type.Object({ untagged: Type.Array(Type.String()), deleted: Type.Union([Type.String(), Type.Null()]) });
export type ImageRemoveResult = Static<typeof ImageRemoveResult>;

/** What an image prune removed, and the bytes it freed. */
export const ImagePruneResult = Type.Object({
  images: Type.Array(Type.String()),
  blobs: Type.Array(Type.String()),
  disks: Type.Array(Type.String()),
  partials: Type.Array(Type.String()),
  bytes: Type.Number(),
});
export type ImagePruneResult = Static<typeof ImagePruneResult>;

/** An error as the REST API sends it (problem JSON, RFC 9457, with the catalogue's code). */
export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.String(),
  /** The error's structured facts (the quota key that was short, the name that was taken...), when it has some. */
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type Problem = Static<typeof Problem>;

/** One line of a streamed pull: a progress event, then the result, or the error that ended it. */
export const ImagePullStreamItem = Type.Union([
  Type.Object({ progress: ImageProgressEvent }),
  Type.Object({ result: ImagePullResult }),
  Type.Object({ error: Problem }),
]);
export type ImagePullStreamItem = Static<typeof ImagePullStreamItem>;

/** A volume: a named (or anonymous) ext4 disk that outlives its containers. */
export const Volume = Type.Object({
  name: Type.String(),
  created: Type.String(),
  anonymous: Type.Boolean({ description: 'made for one container (an image VOLUME or a bare -v /path)' }),
  sizeBytes: Type.Number({ description: 'the disk size (sparse)' }),
  labels: Type.Record(Type.String(), Type.String()),
  mountpoint: Type.String({ description: "the disk file on the machine's host" }),
});
export type Volume = Static<typeof Volume>;

/** What a machine is asked to create a volume from. */
export const VolumeCreateRequest = Type.Object(
  {
    name: Type.Optional(Type.String({ description: "absent or '': a random name" })),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    sizeBytes: Type.Optional(Type.Integer({ minimum: 16 * 1024 * 1024, description: 'the disk size; default 16 GiB (sparse)' })),
  },
  { additionalProperties: false },
);
export type VolumeCreateRequest = Static<typeof VolumeCreateRequest>;

/** A volume with what its disk uses and the containers that refer to it (`volume inspect`). */
export const VolumeInspect = Type.Intersect([
  Volume,
  Type.Object({
    usageBytes: Type.Number({ description: 'bytes the disk really takes on the host' }),
    usedBy: Type.Array(Type.String(), { description: 'ids of the containers that mount it' }),
  }),
]);
export type VolumeInspect = Static<typeof VolumeInspect>;

/** What a volume prune removed. */
export const VolumePruneResult = Type.Object({ removed: Type.Array(Type.String()) });
export type VolumePruneResult = Static<typeof VolumePruneResult>;

/** A network: a bridge with its own subnet. */
export const Network = Type.Object({
  id: Type.String(),
  name: Type.String(),
  driver: Type.Literal('bridge'),
  bridge: Type.String({ description: "the Linux bridge device ('' in rootless mode)" }),
  subnet: Type.String(),
  gateway: Type.String(),
  internal: Type.Boolean({ description: 'no access to the outside' }),
  labels: Type.Record(Type.String(), Type.String()),
  created: Type.String(),
  builtin: Type.Boolean({ description: 'the predefined default network, which cannot be removed' }),
});
export type Network = Static<typeof Network>;

/** What a machine is asked to create a network from. */
export const NetworkCreateRequest = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    subnet: Type.Optional(Type.String({ description: 'CIDR; default: a free /24 of the pool' })),
    gateway: Type.Optional(Type.String()),
    internal: Type.Optional(Type.Boolean()),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: false },
);
export type NetworkCreateRequest = Static<typeof NetworkCreateRequest>;

/** A container on a network, with its address while it runs. */
export const NetworkContainer = Type.Object({
  id: Type.String(),
  name: Type.String(),
  state: ContainerState,
  address: Type.Union([Type.String(), Type.Null()]),
  mac: Type.Union([Type.String(), Type.Null()]),
});
export type NetworkContainer = Static<typeof NetworkContainer>;

/** A network with the containers that join it (`network inspect`). */
export const NetworkInspect = Type.Intersect([Network, Type.Object({ containers: Type.Array(NetworkContainer) })]);
export type NetworkInspect = Static<typeof NetworkInspect>;

/**
 * How a container joins a network (`connect`, Docker's EndpointSettings): its DNS aliases there and a static address
 * (both replace the old ones), and legacy links (replace the old ones when given).
 */
export const NetworkConnectOptions = Type.Object(
  {
    aliases: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
    ipv4Address: Type.Optional(Type.String({ description: "a static IPv4 address in the network's subnet" })),
    links: Type.Optional(Type.Array(LinkSpec)),
  },
  { additionalProperties: false },
);
export type NetworkConnectOptions = Static<typeof NetworkConnectOptions>;

/** What can change of a container after create (`update`); absent fields are left as they are. */
export const ContainerUpdate = Type.Object({ restartPolicy: Type.Optional(RestartPolicy) }, { additionalProperties: false });
export type ContainerUpdate = Static<typeof ContainerUpdate>;

/** What a network prune removed (names). */
export const NetworkPruneResult = Type.Object({ removed: Type.Array(Type.String()) });
export type NetworkPruneResult = Static<typeof NetworkPruneResult>;

/** One entry of the event log. */
export const Event = Type.Object({
  seq: Type.Integer(),
  timeNano: Type.String({ description: 'nanoseconds since the epoch, as a decimal string' }),
  type: Type.Union([Type.Literal('container'), Type.Literal('image'), Type.Literal('network'), Type.Literal('volume')]),
  action: Type.String(),
  actorId: Type.String(),
  attributes: Type.Record(Type.String(), Type.String()),
});
export type Event = Static<typeof Event>;

/** One line of a container's log as the REST API streams it (NDJSON). */
export const LogEntry = Type.Object({
  stream: Type.Union([Type.Literal('stdout'), Type.Literal('stderr')]),
  time: Type.String({ description: 'nanoseconds since the epoch, as a decimal string' }),
  data: Type.String({ description: 'the bytes of the line, base64' }),
});
export type LogEntry = Static<typeof LogEntry>;

/** DNS settings of a pod (Kubernetes' DNSConfig): the guest's /etc/resolv.conf, which its containers share. */
export const DnsConfig = Type.Object(
  {
    servers: Type.Array(Type.String()),
    searches: Type.Array(Type.String()),
    options: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type DnsConfig = Static<typeof DnsConfig>;

/**
 * What a machine is asked to run as a pod sandbox: one micro-VM that its containers join later (Kubernetes' pod, as
 * CRI's RunPodSandbox describes it). The VM's size is the pod's resources; its hostname, DNS, labels and annotations
 * are the pod's.
 */
export const PodSpec = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    uid: Type.String(),
    namespace: Type.String(),
    attempt: Type.Integer({ minimum: 0 }),
    hostname: Type.Optional(Type.String()),
    dns: Type.Optional(DnsConfig),
    labels: Type.Record(Type.String(), Type.String()),
    annotations: Type.Record(Type.String(), Type.String()),
    resources: Type.Optional(ResourceSpec),
    /** The directory under which kubelet keeps the pod's container logs (absolute, on the machine's host). */
    logDirectory: Type.Optional(Type.String()),
    /** The runtime handler asked for ('' or 'boson': the only one). */
    runtimeHandler: Type.Optional(Type.String()),
    /** Host ports published to the pod's micro-VM (Kubernetes' hostPort). */
    ports: Type.Optional(Type.Array(PortBinding)),
  },
  { additionalProperties: false },
);
export type PodSpec = Static<typeof PodSpec>;

/** The states of a pod sandbox: ready while its micro-VM runs, notready once it stopped (or failed). */
export const PodState = Type.Union([Type.Literal('ready'), Type.Literal('notready')]);
export type PodState = Static<typeof PodState>;

/** A pod sandbox as the port shows it. */
export const Pod = Type.Object({
  id: Type.String(),
  spec: PodSpec,
  state: PodState,
  /** Creation time, nanoseconds since the epoch as a decimal string. */
  createdNs: Type.String(),
  /** The pod's micro-VM, as a machine container (the pod's infrastructure). */
  vmContainerId: Type.String(),
  /** pid of the pod VM's QEMU process, while it runs. */
  vmPid: Type.Union([Type.Integer(), Type.Null()]),
  /** The guest kernel's accelerator (kvm or tcg). */
  accelerator: Type.String(),
  /** The pod's IPv4 address on the machine's network, while it runs. */
  address: Type.Union([Type.String(), Type.Null()]),
  network: Type.String(),
  resources: Type.Object({ memoryMiB: Type.Integer(), cpus: Type.Integer() }),
});
export type Pod = Static<typeof Pod>;

/** A container to create in a pod: its own image (its own root filesystem), process and log file. */
/**
 * Limits of one container of a pod, inside its pod VM (cgroup v2 of the guest): CPU time as quota per period (CFS
 * bandwidth), CPU shares (a relative weight), memory in bytes, a number of processes; 0 or absent is no limit.
 */
export const PodContainerResources = Type.Object(
  {
    cpuPeriodUs: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    cpuQuotaUs: Type.Optional(Type.Integer({ minimum: 0 })),
    cpuShares: Type.Optional(Type.Integer({ minimum: 0, maximum: 262_144 })),
    memoryBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    pids: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type PodContainerResources = Static<typeof PodContainerResources>;

export const PodContainerSpec = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    attempt: Type.Integer({ minimum: 0 }),
    image: Type.String({ minLength: 1 }),
    /** Replaces the image's Entrypoint (Kubernetes' command). */
    command: Type.Optional(Type.Array(Type.String())),
    /** Replaces the image's Cmd (Kubernetes' args). */
    args: Type.Optional(Type.Array(Type.String())),
    env: Type.Optional(Type.Array(Type.String())),
    cwd: Type.Optional(Type.String()),
    /** A user name or uid[:gid], as in the image's /etc/passwd. */
    user: Type.Optional(Type.String()),
    labels: Type.Record(Type.String(), Type.String()),
    annotations: Type.Record(Type.String(), Type.String()),
    /** Where its output is written in the CRI log format (absolute, on the machine's host); none when absent. */
    logPath: Type.Optional(Type.String()),
    /** Its root filesystem is read-only for its processes (Kubernetes' readOnlyRootFilesystem). */
    readOnlyRoot: Type.Optional(Type.Boolean()),
    /** Its main process has a stdin that attach writes to (else /dev/null). */
    stdin: Type.Optional(Type.Boolean()),
    /** With stdin: the main process's stdin closes when the first attach that wrote to it ends. */
    stdinOnce: Type.Optional(Type.Boolean()),
    /** Its main process runs on a terminal (stdout and stderr are one stream). */
    tty: Type.Optional(Type.Boolean()),
    /** Capabilities added to and dropped from the default set (names with or without CAP_, or ALL), as containerd does. */
    capAdd: Type.Optional(Type.Array(Type.String())),
    capDrop: Type.Optional(Type.Array(Type.String())),
    /** Its processes cannot gain privileges by exec (setuid files, file capabilities): no_new_privs. */
    noNewPrivileges: Type.Optional(Type.Boolean()),
    /** Supplementary group ids of its processes, on top of its user's groups. */
    groups: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 4294967294 }))),
    /** What its processes may use inside the pod VM (a cgroup of the guest per container); unlimited when absent. */
    resources: Type.Optional(PodContainerResources),
    /** Host files and directories bound into it (kubelet's volumes, /etc/hosts, the termination log), in order. */
    mounts: Type.Optional(
      Type.Array(
        Type.Object(
          { hostPath: Type.String({ minLength: 1 }), containerPath: Type.String({ minLength: 1 }), readOnly: Type.Boolean() },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { additionalProperties: false },
);
export type PodContainerSpec = Static<typeof PodContainerSpec>;

/** The states of a container of a pod (CRI's ContainerState). */
export const PodContainerState = Type.Union([Type.Literal('created'), Type.Literal('running'), Type.Literal('exited')]);
export type PodContainerState = Static<typeof PodContainerState>;

/** A container of a pod as the port shows it. */
export const PodContainer = Type.Object({
  id: Type.String(),
  podId: Type.String(),
  spec: PodContainerSpec,
  imageId: Type.String(),
  /** What it runs: the image's config with the spec applied. */
  argv: Type.Array(Type.String()),
  state: PodContainerState,
  createdNs: Type.String(),
  startedNs: Type.String({ description: "'0' until it started" }),
  finishedNs: Type.String({ description: "'0' until it exited" }),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  /** Why it is as it is (Completed, Error, ...), with a message, once it exited. */
  reason: Type.String(),
  message: Type.String(),
  /** Its process's pid inside the pod VM, while it runs. */
  pid: Type.Union([Type.Integer(), Type.Null()]),
});
export type PodContainer = Static<typeof PodContainer>;

/** The daemon's pool of pre-booted micro-VMs (warm start), as GET /v1/warm, `boson info` and /metrics show it. */
export const WarmPoolView = Type.Object({
  enabled: Type.Boolean(),
  mode: Type.Optional(
    Type.Union([Type.Literal('pool'), Type.Literal('template')], {
      description: 'pool: pre-booted paused micro-VMs, each taken by one start; template: snapshots every start of the shape clones',
    }),
  ),
  images: Type.Array(Type.String()),
  perShape: Type.Integer(),
  memoryBudgetMiB: Type.Integer(),
  memoryUsedMiB: Type.Integer(),
  shapes: Type.Array(
    Type.Object({
      image: Type.String(),
      memoryMiB: Type.Integer(),
      cpus: Type.Number(),
      journal: Type.Boolean({ description: 'the writable layer has a journal (containers kept after they exit)' }),
      nic: Type.Boolean({ description: 'the VM has a network card' }),
      ready: Type.Integer(),
      booting: Type.Integer(),
      ramMiB: Type.Optional(Type.Integer({ description: "a template's host memory (its RAM and state files), MiB" })),
      clones: Type.Optional(Type.Integer({ description: 'starts that cloned this template' })),
    }),
  ),
  hits: Type.Integer({ description: 'starts that took a warm micro-VM' }),
  misses: Type.Integer({ description: 'starts of a kept image that found none of their shape (booted cold)' }),
  fallbacks: Type.Integer({ description: 'starts whose warm micro-VM turned out bad, booted cold instead' }),
  bootFailures: Type.Integer(),
  discarded: Type.Integer(),
});
export type WarmPoolView = Static<typeof WarmPoolView>;
