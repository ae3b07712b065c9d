/** Public surface of the scheduler: the pure planner, its capacity error, the store view of the fleet and the plan applier. */
export * from './types.ts';
export { CapacityError, isCapacityError, type CapacityFacts } from './capacity-error.ts';
export {
  plan,
  score,
  exclusion,
  validateRequest,
  sampleSizeFor,
  seededRng,
  IMAGE_LOCALITY_BONUS,
  type Rng,
  type PlanOptions,
} from './plan.ts';
export {
  MACHINE_KIND,
  ALLOC_KIND,
  PLACEMENT_KIND,
  machineSnapshot,
  readSnapshot,
  sumResources,
  SnapshotCache,
  type MachineRecord,
  type AllocRecord,
  type PlacementRecord,
} from './state.ts';
export { applyPlan, planOps, isStalePlan, releasePlacement, Placer, type Placed, type PlacerOptions } from './apply.ts';
