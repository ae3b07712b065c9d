/**
 * Typed errors for every layer of Boson.
 *
 * Each error has a stable `code` (what went wrong, in SCREAMING_SNAKE) and a `kind` (the containerd-style class
 * that decides how an edge translates it: HTTP status, Docker status, CLI exit code). Code elsewhere branches on
 * `code` or `kind`, never on `message`. The catalogue below is the single list of codes; docs/api.md mirrors it
 * and a test keeps the two in sync.
 */

/** The small set of error classes every edge knows how to translate. */
export type ErrorKind =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'FailedPrecondition'
  | 'PermissionDenied'
  | 'Unauthenticated'
  | 'ResourceExhausted'
  | 'Unavailable'
  | 'DeadlineExceeded'
  | 'DataLoss'
  | 'Internal';

/**
 * How each edge translates a kind: the REST status (problem JSON), the Docker Engine API status, and the gRPC status
 * code (CRI and the controller's machine link). The one table; an edge may refine a code's wording, never its class.
 * ResourceExhausted is 507 on REST (RFC 4918's Insufficient Storage, as a full host is) and 500 on Docker, whose
 * clients know no other; gRPC codes are the numbers of google.rpc.Code. Unauthenticated (no credentials, or a token
 * that is unknown, revoked or expired) is 401, PermissionDenied (known, but not allowed) 403. DeadlineExceeded (a
 * wait whose timeout passed before the state it waited for came: Fly's 408) is 408 Request Timeout.
 */
export const KIND_TRANSLATION = {
  NotFound: { rest: 404, docker: 404, grpc: 5 },
  AlreadyExists: { rest: 409, docker: 409, grpc: 6 },
  InvalidArgument: { rest: 400, docker: 400, grpc: 3 },
  FailedPrecondition: { rest: 409, docker: 409, grpc: 9 },
  PermissionDenied: { rest: 403, docker: 403, grpc: 7 },
  Unauthenticated: { rest: 401, docker: 401, grpc: 16 },
  ResourceExhausted: { rest: 507, docker: 500, grpc: 8 },
  Unavailable: { rest: 503, docker: 503, grpc: 14 },
  DeadlineExceeded: { rest: 408, docker: 408, grpc: 4 },
  DataLoss: { rest: 500, docker: 500, grpc: 15 },
  Internal: { rest: 500, docker: 500, grpc: 13 },
} as const satisfies Record<ErrorKind, { rest: number; docker: number; grpc: number }>;

/** Every stable error code, with its kind and the `boson` CLI exit status it maps to (sysexits.h values). */
export const ERROR_CATALOGUE = {
  USAGE: { kind: 'InvalidArgument', exit: 64, summary: 'a command line flag or argument is missing or malformed' },
  INVALID_ARGUMENT: { kind: 'InvalidArgument', exit: 64, summary: 'a value given to Boson is not valid' },
  IMAGE_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no local image has that reference' },
  IMAGE_SOURCE_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'the path given to image import does not exist' },
  IMAGE_INVALID: { kind: 'InvalidArgument', exit: 65, summary: 'an image layout, manifest or config is malformed or unsupported' },
  IMAGE_CORRUPT: { kind: 'DataLoss', exit: 65, summary: 'an image blob does not match its digest or size, or is truncated' },
  LAYER_UNSAFE: { kind: 'InvalidArgument', exit: 65, summary: 'a layer entry would escape the root filesystem or is not allowed' },
  CONTAINER_USER_UNKNOWN: { kind: 'InvalidArgument', exit: 67, summary: 'the user or group asked for does not exist in the image' },
  CONTAINER_NAME_IN_USE: { kind: 'AlreadyExists', exit: 68, summary: 'another container already has that name' },
  CONTAINER_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no container has that id or name' },
  CONTAINER_NOT_RUNNING: { kind: 'FailedPrecondition', exit: 79, summary: 'the operation needs a running container' },
  CONTAINER_RUNNING: { kind: 'FailedPrecondition', exit: 80, summary: 'the container is running (stop it first, or use --force)' },
  EXEC_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no exec instance has that id' },
  DAEMON_UNAVAILABLE: { kind: 'Unavailable', exit: 81, summary: 'no Boson daemon answers on its socket (start one with boson up)' },
  VOLUME_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no volume has that name' },
  VOLUME_IN_USE: { kind: 'FailedPrecondition', exit: 82, summary: 'the volume is used by a container (remove the container first)' },
  HOST_CAPACITY_EXCEEDED: {
    kind: 'ResourceExhausted',
    exit: 83,
    summary: 'the host does not have the memory or disk space the container asks for',
  },
  CONTAINER_START_FAILED: {
    kind: 'FailedPrecondition',
    exit: 71,
    summary: 'the guest could not prepare the container (mounts, working directory)',
  },
  COMMAND_NOT_FOUND: { kind: 'NotFound', exit: 127, summary: 'the container command does not exist in the image' },
  COMMAND_NOT_EXECUTABLE: { kind: 'PermissionDenied', exit: 126, summary: 'the container command exists but cannot be executed' },
  QEMU_MISSING: { kind: 'Unavailable', exit: 69, summary: 'qemu-system-x86_64 is not installed or not runnable' },
  GUEST_KERNEL_MISSING: { kind: 'FailedPrecondition', exit: 72, summary: 'the guest kernel or its modules are not installed' },
  GUEST_INIT_MISSING: { kind: 'FailedPrecondition', exit: 72, summary: 'boson-init has not been built (run the setup command)' },
  GUEST_BOOT_TIMEOUT: {
    kind: 'Unavailable',
    exit: 75,
    summary: 'the micro-VM did not signal "booted" within the watchdog time, on every attempt',
  },
  GUEST_CRASHED: { kind: 'Unavailable', exit: 74, summary: 'QEMU or the guest ended without reporting an exit status' },
  GUEST_PROTOCOL: { kind: 'Internal', exit: 76, summary: 'the guest sent a malformed or unexpected frame' },
  STATE_DIR_UNWRITABLE: { kind: 'PermissionDenied', exit: 73, summary: 'a Boson state or cache directory cannot be created or written' },
  TOOL_FAILED: { kind: 'Internal', exit: 70, summary: 'a helper program Boson runs (mkfs, qemu-img) failed' },
  REGISTRY_AUTH_FAILED: {
    kind: 'PermissionDenied',
    exit: 77,
    summary: 'the registry refused the credentials, or needs credentials that were not given',
  },
  REGISTRY_UNREACHABLE: {
    kind: 'Unavailable',
    exit: 84,
    summary: 'the registry cannot be reached (connection refused, DNS, TLS, timeouts), after retries',
  },
  REGISTRY_ERROR: {
    kind: 'Unavailable',
    exit: 85,
    summary: 'the registry answered with an unexpected status (5xx after retries, 429, a missing blob)',
  },
  MANIFEST_UNKNOWN: { kind: 'NotFound', exit: 86, summary: 'the registry has no such repository, tag or digest' },
  PLATFORM_NOT_FOUND: { kind: 'NotFound', exit: 87, summary: 'the image index has no manifest for the requested platform' },
  IMAGE_IN_USE: { kind: 'FailedPrecondition', exit: 88, summary: 'the image is used by a container (rmi without --force)' },
  PORT_IN_USE: { kind: 'FailedPrecondition', exit: 89, summary: 'a host port asked to be published is already bound on the host' },
  NETWORK_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no network has that id or name' },
  NETWORK_NAME_IN_USE: { kind: 'AlreadyExists', exit: 90, summary: 'another network already has that name' },
  NETWORK_IN_USE: {
    kind: 'FailedPrecondition',
    exit: 91,
    summary: 'the network still has containers connected, or is a predefined network (rm)',
  },
  SUBNET_OVERLAP: { kind: 'FailedPrecondition', exit: 92, summary: "the network's subnet overlaps another network or a route of the host" },
  ADDRESS_EXHAUSTED: {
    kind: 'ResourceExhausted',
    exit: 93,
    summary: "no free address is left in the network's subnet, or no free subnet for a new network",
  },
  ALREADY_CONNECTED: { kind: 'AlreadyExists', exit: 94, summary: 'the container is already connected to that network' },
  ROOTLESS_UNSUPPORTED: {
    kind: 'FailedPrecondition',
    exit: 95,
    summary: 'the operation needs a root daemon (rootless mode uses user-mode networking)',
  },
  PASST_MISSING: {
    kind: 'Unavailable',
    exit: 120,
    summary: 'passt, the user-mode network of rootless micro-VMs, is not installed or not runnable',
  },
  PASST_FAILED: {
    kind: 'Unavailable',
    exit: 121,
    summary: 'passt, the user-mode network of a rootless micro-VM, failed to start or ended while its VM ran',
  },
  ROOTLESS_SETUP_MISSING: {
    kind: 'FailedPrecondition',
    exit: 96,
    summary:
      'a non-root daemon lacks host setup it needs (subordinate ids in /etc/subuid and /etc/subgid, newuidmap, a readable guest kernel)',
  },
  CONTAINER_PAUSED_DISK_FULL: {
    kind: 'ResourceExhausted',
    exit: 97,
    summary: "the container's micro-VM is paused because the host's disk is full; it resumes by itself once there is space",
  },
  DAEMON_ALREADY_RUNNING: {
    kind: 'AlreadyExists',
    exit: 98,
    summary:
      'another Boson daemon already runs on this run directory (it holds <run dir>/boson.pid), or a controller or migration uses that controller.db (it holds controller.db.lock)',
  },
  STORE_CONFLICT: {
    kind: 'FailedPrecondition',
    exit: 99,
    summary: 'a state store write expected a record at a revision it is no longer at (another writer was first)',
  },
  STORE_COMPACTED: { kind: 'FailedPrecondition', exit: 100, summary: 'a state store watch asked for changes older than the store keeps' },
  STORE_FULL: { kind: 'ResourceExhausted', exit: 101, summary: 'the disk holding the state store is full' },
  BIND_NOT_ALLOWED: {
    kind: 'PermissionDenied',
    exit: 102,
    summary:
      'the host path of a bind mount is outside what the bind-mount policy allows (BOSON_BIND_ALLOW), or a protected system or Boson path',
  },
  STORE_UNAVAILABLE: { kind: 'Unavailable', exit: 110, summary: 'the state store (etcd) cannot be reached, or did not answer in time' },
  PLACEMENT_NO_CAPACITY: {
    kind: 'ResourceExhausted',
    exit: 111,
    summary: 'no READY machine can take the container: the details say what was short and how many machines each reason excluded',
  },
  UNAUTHENTICATED: {
    kind: 'Unauthenticated',
    exit: 103,
    summary: 'the controller needs a bearer token, and the one given is unknown, revoked or expired',
  },
  PERMISSION_DENIED: { kind: 'PermissionDenied', exit: 104, summary: "the principal's role does not allow this operation" },
  QUOTA_EXCEEDED: {
    kind: 'ResourceExhausted',
    exit: 105,
    summary: "the request would take a quota key (vm.count, vm.memory...) above its project's or tenant's limit",
  },
  TENANT_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no tenant has that name (or it is not visible to the principal)' },
  PROJECT_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no project has that name (or it is not visible to the principal)' },
  FLAVOR_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no flavor has that name' },
  USER_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no user has that name (or it is not visible to the principal)' },
  TOKEN_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no token has that id (or it is not visible to the principal)' },
  TASK_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no task has that id (or it is not visible to the principal)' },
  NAME_IN_USE: { kind: 'AlreadyExists', exit: 106, summary: 'a tenant, project, flavor or user of that name already exists' },
  TENANT_IN_USE: { kind: 'FailedPrecondition', exit: 107, summary: 'the tenant still has projects (remove them first)' },
  PROJECT_IN_USE: { kind: 'FailedPrecondition', exit: 108, summary: 'the project still uses quota (remove what runs in it first)' },
  IDEMPOTENCY_KEY_REUSED: {
    kind: 'FailedPrecondition',
    exit: 109,
    summary: 'an Idempotency-Key was sent again with a different request, or while its first request is still running',
  },
  TASK_TIMEOUT: { kind: 'Unavailable', exit: 112, summary: 'a task did not reach the state waited for within the timeout' },
  CONTROLLER_UNAVAILABLE: {
    kind: 'Unavailable',
    exit: 113,
    summary: 'no Boson controller answers at the address of the current context (boson controller, boson up --controller)',
  },
  POD_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no pod sandbox has that id' },
  POD_NOT_READY: {
    kind: 'FailedPrecondition',
    exit: 117,
    summary: "the pod sandbox's micro-VM is not running (stopped, or it failed): it takes no containers",
  },
  CNI_FAILED: {
    kind: 'Unavailable',
    exit: 140,
    summary: "a CNI plugin failed to set up or tear down a pod's network, or the CNI configuration is missing or invalid",
  },
  POD_CGROUPS_UNAVAILABLE: {
    kind: 'FailedPrecondition',
    exit: 145,
    summary: "the pod VM's guest kernel has no cgroup v2: a container's CPU, memory and pids limits cannot be applied in it",
  },
  MACHINE_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'no machine of the fleet has that id' },
  MACHINE_IN_USE: {
    kind: 'FailedPrecondition',
    exit: 114,
    summary: 'the machine still has containers placed on it (remove them, or remove the machine with --force)',
  },
  JOIN_TOKEN_INVALID: {
    kind: 'Unauthenticated',
    exit: 115,
    summary: 'the join token is unknown, revoked or expired (boson machine token create makes one)',
  },
  MACHINE_UNREACHABLE: {
    kind: 'Unavailable',
    exit: 116,
    summary: 'the machine that holds the container did not answer the controller (it may be LOST)',
  },
  CONTAINER_LEASED: {
    kind: 'FailedPrecondition',
    exit: 130,
    summary: "the container is leased: a change must carry the lease's nonce (Boson-Lease-Nonce), or wait until it is released or expires",
  },
  LEASE_NOT_FOUND: { kind: 'NotFound', exit: 66, summary: 'the container holds no lease (never taken, released, or expired)' },
  TASK_RUNNER_DIED: {
    kind: 'Unavailable',
    exit: 131,
    summary: 'the replica running the task stopped renewing its lease, and the task is of a kind that is not resumed elsewhere',
  },
  CONTAINER_WAIT_TIMEOUT: {
    kind: 'DeadlineExceeded',
    exit: 132,
    summary: 'the container did not reach the state waited for within the timeout (the details say its state)',
  },
  PROJECT_RESOURCES_SPLIT: {
    kind: 'FailedPrecondition',
    exit: 135,
    summary: "a container asks for a project's volumes or networks that live on different machines (a container runs on one)",
  },
  CONTAINER_SUSPENDED: {
    kind: 'FailedPrecondition',
    exit: 150,
    summary: 'the container is suspended to a file (boson resume NAME first; stop and rm work as they are)',
  },
  CONTAINER_NOT_SUSPENDED: { kind: 'FailedPrecondition', exit: 151, summary: 'boson resume needs a suspended container' },
  SUSPEND_UNSUPPORTED: {
    kind: 'FailedPrecondition',
    exit: 152,
    summary:
      'this container cannot be suspended: it has bind mounts (QEMU cannot migrate virtiofs or 9p), an exec running, a paused VM, or no daemon',
  },
  SUSPEND_STATE_LOST: {
    kind: 'DataLoss',
    exit: 153,
    summary: "a suspended container's saved state is missing or does not load: it cannot resume (stop or rm it)",
  },
  STORE_NOT_EMPTY: {
    kind: 'FailedPrecondition',
    exit: 161,
    summary: 'boson controller migrate: the etcd prefix already holds controller records (nothing is overwritten; nothing was written)',
  },
  STORE_MIGRATION_INCOMPLETE: {
    kind: 'FailedPrecondition',
    exit: 162,
    summary: 'the etcd prefix holds a migration that has not completed: a controller does not start on a partial copy',
  },
  INTERNAL: { kind: 'Internal', exit: 70, summary: 'a bug in Boson' },
} as const satisfies Record<string, { kind: ErrorKind; exit: number; summary: string }>;

/** A stable error code from the catalogue. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The one error type Boson throws on purpose; anything else reaching an edge is reported as INTERNAL. */
export class BosonError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  /** Structured facts for machine-readable output (--json, problem JSON); never parsed from the message. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BosonError';
    this.code = code;
    this.kind = ERROR_CATALOGUE[code].kind;
    this.details = options.details ?? {};
  }
}

/** True when `err` is a BosonError, optionally with one of the given codes. */
export function isBosonError(err: unknown, ...codes: ErrorCode[]): err is BosonError {
  return err instanceof BosonError && (codes.length === 0 || codes.includes(err.code));
}

/** Returns `err` as a BosonError, wrapping anything unexpected as INTERNAL (keeping it as the cause). */
export function toBosonError(err: unknown): BosonError {
  if (err instanceof BosonError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BosonError('INTERNAL', `internal error: ${message}`, { cause: err });
}

/**
 * The problem JSON (RFC 9457) of an error, the one translation of a typed error to HTTP for every REST API (the
 * machine's and the controller's): the status from KIND_TRANSLATION, the catalogue's code, and the error's details.
 */
export function problemOf(err: unknown): {
  status: number;
  body: { type: string; title: string; status: number; detail: string; code: string; details?: Record<string, unknown> };
} {
  const e = toBosonError(err);
  const status = KIND_TRANSLATION[e.kind].rest;
  const body = { type: `urn:boson:error:${e.code}`, title: ERROR_CATALOGUE[e.code].summary, status, detail: e.message, code: e.code };
  return { status, body: Object.keys(e.details).length > 0 ? { ...body, details: { ...e.details } } : body };
}

/**
 * The typed error of a problem JSON answer (`text`, with HTTP `status`): the one reading of problemOf's output, for
 * every client of a Boson REST API (the machine's, the controller's). An answer that is not ours is INTERNAL.
 */
export function errorFromProblem(status: number, text: string, server = 'daemon'): BosonError {
  try {
    const body = JSON.parse(text) as { code?: string; detail?: string; details?: Record<string, unknown> };
    if (body.code && body.code in ERROR_CATALOGUE)
      return new BosonError(body.code as ErrorCode, body.detail ?? `${server} answered ${status}`, { details: body.details });
    return new BosonError('INTERNAL', body.detail ?? `${server} answered ${status}: ${text}`);
  } catch {
    return new BosonError('INTERNAL', `${server} answered ${status}: ${text.slice(0, 200)}`);
  }
}
