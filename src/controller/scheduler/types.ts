/**
 * The scheduler's vocabulary: what a machine looks like to placement (a snapshot at a store revision), what a
 * placement asks for, and the plan it yields. Plain data, no behaviour: plan.ts decides, apply.ts commits.
 */

/** An amount of each resource placement accounts for. */
export interface Resources {
  /** Virtual CPUs (fractions allowed). */
  cpus: number;
  memoryBytes: number;
  diskBytes: number;
}

/** The resource names, in the order errors list them. */
export const RESOURCE_NAMES = ['cpus', 'memoryBytes', 'diskBytes'] as const;
/** One resource name. */
export type ResourceName = (typeof RESOURCE_NAMES)[number];

/** READY takes new containers; MAINTENANCE (drained) keeps its containers and takes none; LOST missed its heartbeats. */
export type MachineState = 'READY' | 'MAINTENANCE' | 'LOST';

/** A container as placement sees it on a machine. */
export interface PlacedContainer {
  id: string;
  /** The owning project ("tenant/project"): affinity only ever matches containers of the same project. */
  project: string;
  labels: Record<string, string>;
  resources: Resources;
  image?: string;
}

/** One machine in a snapshot. */
export interface MachineSnapshot {
  id: string;
  state: MachineState;
  capacity: Resources;
  /** The sum of the resources of `containers`. */
  allocated: Resources;
  labels: Record<string, string>;
  zone: string;
  /** Images cached on the machine (references or digests, as requests name them). */
  images: string[];
  containers: PlacedContainer[];
  /** The store revision of the machine record (the applier checks it is unchanged). */
  revision: number;
  /** The store revision of the machine's allocation record (0: it has none yet). */
  allocRevision: number;
}

/** The fleet at a store revision. */
export interface Snapshot {
  revision: number;
  machines: MachineSnapshot[];
}

/** A hard constraint on the machine. */
export type Constraint =
  /** The machine's label `key` is one of `values` ('equals' takes one value), or none of them ('not'; absent counts as none). */
  | { type: 'label'; key: string; op: 'equals' | 'in' | 'not'; values: string[] }
  /** The machine is in one of `zones`. */
  | { type: 'zone'; zones: string[] }
  /** The machine is one of `ids` (a project's volume or network lives there: see fleet/project-resources.ts). */
  | { type: 'machine'; ids: string[] };

/** Containers of the requesting project whose labels include all of `labels`. */
export interface ContainerSelector {
  labels: Record<string, string>;
}

/** Spread: least loaded machine first, and away from the project's other containers. Binpack: fullest machine that fits. */
export type PlacementPolicy = 'spread' | 'binpack';

/** What to place. */
export interface PlacementRequest {
  /** The container being placed (its placement record is keyed by it, so it is placed once). */
  containerId: string;
  /** "tenant/project". */
  project: string;
  resources: Resources;
  labels?: Record<string, string>;
  image?: string;
  policy: PlacementPolicy;
  constraints?: Constraint[];
  /** The machine must already run a container of the project matching each selector. */
  affinity?: ContainerSelector[];
  /** The machine must run no container of the project matching any selector. */
  antiAffinity?: ContainerSelector[];
}

/** Why a machine was not feasible (each machine is counted under its first reason; see CapacityError). */
export type ExclusionReason = 'not-ready' | 'constraint' | 'affinity' | 'anti-affinity' | 'capacity';

/** The decision: this container on this machine, valid while the machine is as the snapshot saw it. */
export interface Plan {
  containerId: string;
  project: string;
  machineId: string;
  request: PlacementRequest;
  /** The snapshot's revision, and the machine's record and allocation revisions in it (what the applier compares). */
  snapshotRevision: number;
  machineRevision: number;
  allocRevision: number;
  /** The machine's containers in the snapshot (the applier writes them back with the new one). */
  containers: PlacedContainer[];
  score: number;
  /** How many feasible machines were scored (the sample), and how many machines were looked at to find them. */
  sampled: number;
  examined: number;
}
