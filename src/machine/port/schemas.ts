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

/** A context for calls made by the host itself (the CLI on this host, the daemon's own restarts). */
export function localContext(requestId?: string): RequestContext {
  return requestId === undefined ? { principal: 'local' } : { principal: 'local', requestId };
}

/** A mount of a container: a named or anonymous volume (name '' = anonymous), or a host directory. */
export const MountSpec = Type.Union([
  Type.Object({
    type: Type.Literal('volume'),
    name: Type.String({ description: "'' for a new anonymous volume" }),
    destination: Type.String({ minLength: 1 }),
    readOnly: Type.Boolean(),
    anonymous: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('bind'),
    source: Type.String({ minLength: 1 }),
    destination: Type.String({ minLength: 1 }),
    readOnly: Type.Boolean(),
  }, { additionalProperties: false }),
]);
export type MountSpec = Static<typeof MountSpec>;

/** A port to publish: hostPort 0 takes a free port; hostIp '' is every address. */
export const PortBinding = Type.Object({
  hostIp: Type.String(),
  hostPort: Type.Integer({ minimum: 0, maximum: 65535 }),
  containerPort: Type.Integer({ minimum: 1, maximum: 65535 }),
  protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')]),
  hostPortEnd: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
}, { additionalProperties: false });
export type PortBinding = Static<typeof PortBinding>;

/** Docker's restart policies. */
export const RestartPolicy = Type.Object({
  name: Type.Union([Type.Literal('no'), Type.Literal('on-failure'), Type.Literal('always'), Type.Literal('unless-stopped')]),
  maximumRetryCount: Type.Integer({ minimum: 0, description: 'on-failure: restarts at most (0: no limit)' }),
}, { additionalProperties: false });
export type RestartPolicy = Static<typeof RestartPolicy>;

/** The container's process, as asked; what is left out comes from the image (Docker's precedence rules). */
export const ProcessSpec = Type.Object({
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
}, { additionalProperties: false });
export type ProcessSpec = Static<typeof ProcessSpec>;

/** The micro-VM's size. */
export const ResourceSpec = Type.Object({
  memoryMiB: Type.Optional(Type.Integer({ minimum: 64 })),
  cpus: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Size of the writable layer's disk (sparse; default 8 GiB). */
  diskBytes: Type.Optional(Type.Integer({ minimum: 64 * 1024 * 1024 })),
}, { additionalProperties: false });
export type ResourceSpec = Static<typeof ResourceSpec>;

/** Everything a machine needs to create a container: the one container request of Boson. */
export const ContainerSpec = Type.Object({
  image: Type.String({ minLength: 1 }),
  name: Type.Optional(Type.String()),
  process: Type.Optional(ProcessSpec),
  resources: Type.Optional(ResourceSpec),
  mounts: Type.Optional(Type.Array(MountSpec)),
  /** Network name or id; 'none' for no network; absent: the host's default. */
  network: Type.Optional(Type.String()),
  ports: Type.Optional(Type.Array(PortBinding)),
  /** Publish every port the image exposes, on free host ports (`-P`). */
  publishAll: Type.Optional(Type.Boolean()),
  restartPolicy: Type.Optional(RestartPolicy),
  autoRemove: Type.Optional(Type.Boolean()),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
}, { additionalProperties: false });
export type ContainerSpec = Static<typeof ContainerSpec>;

/** A further process in a running container. */
export const ExecSpec = Type.Object({
  argv: Type.Array(Type.String(), { minItems: 1 }),
  env: Type.Optional(Type.Array(Type.String())),
  cwd: Type.Optional(Type.String()),
  user: Type.Optional(Type.String()),
  tty: Type.Optional(Type.Boolean()),
  stdin: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type ExecSpec = Static<typeof ExecSpec>;

/** The states a container goes through. */
export const ContainerState = Type.Union([Type.Literal('created'), Type.Literal('running'), Type.Literal('restarting'), Type.Literal('exited'), Type.Literal('dead')]);
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
  ports: Type.Array(PortBinding),
  endpoint: Type.Union([Endpoint, Type.Null()]),
  /** Why the running VM is paused (the host's disk is full), while it is. */
  pausedReason: Type.Optional(Type.String()),
});
export type Container = Static<typeof Container>;

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

/** An image in the local store. */
export const Image = Type.Object({
  id: Type.String({ description: 'sha256:… of the config' }),
  names: Type.Array(Type.String()),
  created: Type.Optional(Type.String()),
  size: Type.Number(),
}, { additionalProperties: true });
export type Image = Static<typeof Image>;

/** A volume. */
export const Volume = Type.Object({
  name: Type.String(),
  created: Type.String(),
  anonymous: Type.Boolean(),
  sizeBytes: Type.Number(),
  labels: Type.Record(Type.String(), Type.String()),
  mountpoint: Type.String(),
});
export type Volume = Static<typeof Volume>;

/** A network. */
export const Network = Type.Object({
  id: Type.String(),
  name: Type.String(),
  subnet: Type.String(),
  gateway: Type.String(),
}, { additionalProperties: true });
export type Network = Static<typeof Network>;

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
