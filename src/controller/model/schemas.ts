/**
 * The controller's resource model as TypeBox schemas: the one definition of each object, used by the model, the
 * REST API (request and response schemas, /openapi.json) and the client. Names are DNS-label-like; quota limits
 * and usage are numbers in a key's base unit (bytes for memory and disk, a count otherwise).
 */
import { Type, type Static } from '@sinclair/typebox';

/** A tenant, project, flavor or user name: lower-case letters, digits and dashes, starting with a letter or digit. */
export const Name = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'lower-case letters, digits and -, at most 63' });

/** A quota key: vm.count, vm.cpu, vm.memory, disk.capacity, or a custom dotted key. */
export const QuotaKey = Type.String({ pattern: '^[a-z][a-z0-9_-]*(\\.[a-z0-9_-]+)*$', maxLength: 100 });

/** The unit of a quota key's numbers. */
export const QuotaUnit = Type.Union([Type.Literal('count'), Type.Literal('bytes')]);
export type QuotaUnit = Static<typeof QuotaUnit>;

/** One quota line item (Photon's QuotaLineItem): a key, a number in the key's unit, and the unit. */
export const QuotaItem = Type.Object({
  key: QuotaKey,
  value: Type.Number({ minimum: 0 }),
  unit: QuotaUnit,
});
export type QuotaItem = Static<typeof QuotaItem>;

/** The limits of a tenant or project (a key absent is not limited). */
export const Limits = Type.Array(QuotaItem);
export type Limits = Static<typeof Limits>;

/** A tenant: the top of the hierarchy, with the limits its projects are carved from. */
export const Tenant = Type.Object({
  name: Name,
  limits: Limits,
  /** The sum of its projects' limits, per key. */
  allocated: Limits,
  createdAt: Type.String({ description: 'RFC 3339' }),
});
export type Tenant = Static<typeof Tenant>;

/** A project: a tenant's unit of isolation and quota, carved from the tenant's limits. */
export const Project = Type.Object({
  tenant: Name,
  name: Name,
  limits: Limits,
  /** What its reservations hold now, per key. */
  usage: Limits,
  createdAt: Type.String({ description: 'RFC 3339' }),
});
export type Project = Static<typeof Project>;

/** A flavor: a named resource preset, with what one instance costs in quota keys. */
export const Flavor = Type.Object({
  name: Name,
  cpus: Type.Integer({ minimum: 1, maximum: 256 }),
  memoryBytes: Type.Integer({ minimum: 1 }),
  diskBytes: Type.Integer({ minimum: 0 }),
  /** The guest kernel profile its micro-VMs boot (e.g. "default"). */
  kernel: Type.String({ minLength: 1, maxLength: 63 }),
  /** The quota one instance takes: vm.count 1, vm.cpu, vm.memory, disk.capacity, and custom keys. */
  cost: Limits,
  createdAt: Type.String({ description: 'RFC 3339' }),
});
export type Flavor = Static<typeof Flavor>;

/** The roles, from most to least powerful. */
export const Role = Type.Union([
  Type.Literal('system-admin'),
  Type.Literal('tenant-admin'),
  Type.Literal('member'),
  Type.Literal('viewer'),
]);
export type Role = Static<typeof Role>;

/** What a token grants: a role over the whole system, a tenant, or one project. */
export const Grant = Type.Union([
  Type.Object({ role: Type.Literal('system-admin') }),
  Type.Object({ role: Type.Literal('tenant-admin'), tenant: Name }),
  Type.Object({ role: Type.Union([Type.Literal('member'), Type.Literal('viewer')]), tenant: Name, project: Name }),
]);
export type Grant = Static<typeof Grant>;

/** A user: a name, in a tenant (or a system user, without one). */
export const User = Type.Object({
  name: Name,
  tenant: Type.Optional(Name),
  createdAt: Type.String({ description: 'RFC 3339' }),
});
export type User = Static<typeof User>;

/** A token as listed: never its secret (only a hash of it is stored). */
export const TokenInfo = Type.Object({
  id: Type.String(),
  user: Name,
  grant: Grant,
  description: Type.String(),
  createdAt: Type.String({ description: 'RFC 3339' }),
  expiresAt: Type.Optional(Type.String({ description: 'RFC 3339' })),
});
export type TokenInfo = Static<typeof TokenInfo>;

/** A new token: the only answer that carries its secret. */
export const TokenCreated = Type.Object({
  token: Type.String({ description: 'the bearer token; shown once, not stored' }),
  info: TokenInfo,
});
export type TokenCreated = Static<typeof TokenCreated>;

/** Who is asking, as the API sees it. */
export const Principal = Type.Object({
  user: Type.String(),
  /** The token it authenticated with (absent on the local socket). */
  tokenId: Type.Optional(Type.String()),
  grant: Grant,
});
export type Principal = Static<typeof Principal>;

/** The states of a task: queued → running → succeeded | failed. */
export const TaskState = Type.Union([Type.Literal('queued'), Type.Literal('running'), Type.Literal('succeeded'), Type.Literal('failed')]);
export type TaskState = Static<typeof TaskState>;

/** An error as a task records it. */
export const TaskError = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type TaskError = Static<typeof TaskError>;

/** One step of a task. */
export const TaskStep = Type.Object({
  name: Type.String(),
  state: TaskState,
  startedAt: Type.Optional(Type.String()),
  endedAt: Type.Optional(Type.String()),
  error: Type.Optional(TaskError),
});
export type TaskStep = Static<typeof TaskStep>;

/** Who runs a task and until when: a replica that finds it expired takes the task over. */
export const TaskLease = Type.Object({
  owner: Type.String({ description: 'the id of the controller replica that runs the task' }),
  expiresAt: Type.String(),
});
export type TaskLease = Static<typeof TaskLease>;

/** A long operation (Photon's Task): its kind, what it works on, its steps, and how it ended. */
export const Task = Type.Object({
  id: Type.String(),
  kind: Type.String({ description: 'e.g. project.delete' }),
  state: TaskState,
  /** What it works on ("tenant/project", "tenant"), and the tenant and project it belongs to (for visibility). */
  target: Type.String(),
  tenant: Type.Optional(Name),
  project: Type.Optional(Name),
  steps: Type.Array(TaskStep),
  error: Type.Optional(TaskError),
  /** While running: the replica that runs it and until when its lease holds (renewed by its heartbeat). */
  lease: Type.Optional(TaskLease),
  createdAt: Type.String(),
  startedAt: Type.Optional(Type.String()),
  endedAt: Type.Optional(Type.String()),
});
export type Task = Static<typeof Task>;
