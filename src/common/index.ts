/** Public surface of src/common: errors, paths, private directories, upgrade request bodies, stream frames, the logger interface, TCP endpoints, the state store contract, a keyed mutex, backpressure toward slow readers. Imports nothing else of Boson's. */
export * from './errors.ts';
export * from './paths.ts';
export * from './private-dir.ts';
export * from './upgrade-body.ts';
export * from './log.ts';
export * from './tcp-endpoint.ts';
export * from './stream-frame.ts';
export * from './store.ts';
export { MemoryStateStore } from './store-memory.ts';
export { asyncStore } from './store-async.ts';
export { planCommit, WatchHub, compactedRevision, type PlannedWrite, type ChangeSource } from './store-core.ts';
export * from './process.ts';
export * from './keyed-mutex.ts';
export * from './backpressure.ts';
