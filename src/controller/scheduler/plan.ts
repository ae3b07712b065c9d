/**
 * The pure scheduler: `plan(snapshot, request)` returns a Plan (this container on this machine) or a CapacityError.
 * No I/O, no clock, no global randomness: the same snapshot, request and random source give the same plan.
 *
 * 1. Feasibility, per machine, in this order (the first failure is the reason counted): READY; every constraint
 *    (labels, zone); affinity (a container of the same project matching each selector is there); anti-affinity (none
 *    matching any selector is there); room for every resource.
 * 2. Sampling: machines are visited in a random order until K feasible ones are found, K = max(4, ceil(log2 N))
 *    (Photon sampled 4 hosts, Nomad ceil(log2 N)): the cost of a placement grows with log N, not N, and the best of K
 *    random feasible machines is better than all but about 1/(K+1) of them. `sampleSize: Infinity` looks at all.
 * 3. Score, the highest wins (ties: the first visited, so the random order decides):
 *    binpack = mean fraction of capacity used after placing; spread = (1 - that) / (1 + the project's containers
 *    already there), so a project's containers go to different machines first, then to the emptiest; plus
 *    IMAGE_LOCALITY_BONUS when the machine has the image cached (a pull is seconds; a tenth of a machine's load is not).
 *
 * When no machine is feasible every machine has been examined, so the CapacityError's counts are complete.
 */
import { BosonError } from '../../common/index.ts';
import { CapacityError, type CapacityFacts } from './capacity-error.ts';
import {
  RESOURCE_NAMES,
  type Constraint,
  type ContainerSelector,
  type ExclusionReason,
  type MachineSnapshot,
  type Plan,
  type PlacementRequest,
  type Resources,
  type Snapshot,
} from './types.ts';

/** A random source in [0, 1). */
export type Rng = () => number;

/** How plan() samples and scores. */
export interface PlanOptions {
  /** The random source (default Math.random); inject a seeded one (seededRng) for tests. */
  rng?: Rng;
  /** How many feasible machines to score (default: sampleSizeFor(N)); Infinity scores every feasible machine. */
  sampleSize?: number;
}

/** The score added for a machine that has the request's image cached. */
export const IMAGE_LOCALITY_BONUS = 0.2;

/** K for a fleet of `n` machines: max(4, ceil(log2 n)). */
export function sampleSizeFor(n: number): number {
  return Math.max(4, Math.ceil(Math.log2(Math.max(1, n))));
}

/** A deterministic random source (mulberry32) from a 32-bit seed. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** INVALID_ARGUMENT unless the request is well formed (nothing else is checked here: the API validates its shape). */
export function validateRequest(req: PlacementRequest): void {
  const bad = (m: string): never => {
    throw new BosonError('INVALID_ARGUMENT', `placement request: ${m}`);
  };
  if (!req.containerId) bad('a container id is required');
  if (!req.project) bad('a project is required');
  if (req.policy !== 'spread' && req.policy !== 'binpack') bad(`unknown policy ${String(req.policy)} (spread or binpack)`);
  for (const r of RESOURCE_NAMES) {
    const v = req.resources?.[r];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(`${r} must be a finite number ≥ 0, not ${String(v)}`);
  }
  for (const c of req.constraints ?? []) {
    if (c.type === 'label') {
      if (!c.key) bad('a label constraint needs a key');
      if (c.values.length === 0) bad(`the label constraint on ${c.key} needs a value`);
      if (c.op === 'equals' && c.values.length !== 1) bad(`'equals' on ${c.key} takes one value`);
    } else if (c.type === 'zone') {
      if (c.zones.length === 0) bad('a zone constraint needs a zone');
    } else if (c.type === 'machine') {
      if (c.ids.length === 0) bad('a machine constraint needs a machine id');
    } else bad(`unknown constraint ${JSON.stringify(c)}`);
  }
}

function meets(m: MachineSnapshot, c: Constraint): boolean {
  if (c.type === 'zone') return c.zones.includes(m.zone);
  if (c.type === 'machine') return c.ids.includes(m.id);
  const v = m.labels[c.key];
  const hit = v !== undefined && c.values.includes(v);
  return c.op === 'not' ? !hit : hit;
}

function matches(project: string, sel: ContainerSelector): (c: MachineSnapshot['containers'][number]) => boolean {
  const entries = Object.entries(sel.labels);
  return (c) => c.project === project && entries.every(([k, v]) => c.labels[k] === v);
}

/** Why `m` cannot take `req`, or undefined when it can; fills `short` with the resources it lacks. */
export function exclusion(m: MachineSnapshot, req: PlacementRequest, short?: Set<string>): ExclusionReason | undefined {
  if (m.state !== 'READY') return 'not-ready';
  for (const c of req.constraints ?? []) if (!meets(m, c)) return 'constraint';
  for (const sel of req.affinity ?? []) if (!m.containers.some(matches(req.project, sel))) return 'affinity';
  for (const sel of req.antiAffinity ?? []) if (m.containers.some(matches(req.project, sel))) return 'anti-affinity';
  let fits = true;
  for (const r of RESOURCE_NAMES) {
    if (m.allocated[r] + req.resources[r] > m.capacity[r] + 1e-9) {
      fits = false;
      short?.add(r);
    }
  }
  return fits ? undefined : 'capacity';
}

/** The score of placing `req` on the feasible machine `m` (higher is better; see the module comment). */
export function score(m: MachineSnapshot, req: PlacementRequest): number {
  let used = 0;
  for (const r of RESOURCE_NAMES) used += m.capacity[r] > 0 ? (m.allocated[r] + req.resources[r]) / m.capacity[r] : 0;
  used /= RESOURCE_NAMES.length;
  let s: number;
  if (req.policy === 'binpack') s = used;
  else {
    const mine = m.containers.filter((c) => c.project === req.project).length;
    s = (1 - used) / (1 + mine);
  }
  if (req.image !== undefined && m.images.includes(req.image)) s += IMAGE_LOCALITY_BONUS;
  return s;
}

const zero = (): Resources => ({ cpus: 0, memoryBytes: 0, diskBytes: 0 });

/** Chooses a machine for `req` in `snapshot` (see the module comment). INVALID_ARGUMENT for a malformed request. */
export function plan(snapshot: Snapshot, req: PlacementRequest, opts: PlanOptions = {}): Plan | CapacityError {
  validateRequest(req);
  const rng = opts.rng ?? Math.random;
  const machines = snapshot.machines;
  const n = machines.length;
  const k = opts.sampleSize ?? sampleSizeFor(n);
  const order = Array.from({ length: n }, (_, i) => i);
  const excluded: Record<ExclusionReason, number> = { 'not-ready': 0, constraint: 0, affinity: 0, 'anti-affinity': 0, capacity: 0 };
  const shortOf = { cpus: 0, memoryBytes: 0, diskBytes: 0 };
  const mostFree = zero();
  let best: MachineSnapshot | undefined;
  let bestScore = -Infinity;
  let sampled = 0;
  let examined = 0;
  // A lazy Fisher-Yates shuffle: each step draws the next machine uniformly from those not yet visited.
  for (let i = 0; i < n && sampled < k; i++) {
    const j = i + Math.floor(rng() * (n - i));
    [order[i], order[j]] = [order[j]!, order[i]!];
    const m = machines[order[i]!]!;
    examined++;
    const short = new Set<string>();
    const why = exclusion(m, req, short);
    if (why) {
      excluded[why]++;
      if (why === 'capacity') {
        for (const r of RESOURCE_NAMES) {
          if (short.has(r)) shortOf[r]++;
          mostFree[r] = Math.max(mostFree[r], m.capacity[r] - m.allocated[r]);
        }
      }
      continue;
    }
    sampled++;
    const s = score(m, req);
    if (s > bestScore) {
      bestScore = s;
      best = m;
    }
  }
  if (!best) {
    const facts: CapacityFacts = { requested: { ...req.resources }, machines: n, excluded, shortOf, mostFree };
    return new CapacityError(facts);
  }
  return {
    containerId: req.containerId,
    project: req.project,
    machineId: best.id,
    request: req,
    snapshotRevision: snapshot.revision,
    machineRevision: best.revision,
    allocRevision: best.allocRevision,
    containers: best.containers,
    score: bestScore,
    sampled,
    examined,
  };
}
