/**
 * A local StateStore in the promise form of the contract (AsyncStateStore): what the controller programs against,
 * so that SQLite and memory stores serve it as an etcd store will. Every call answers on a later turn of the event
 * loop, as a remote store does, so code that reads, decides and commits interleaves with its concurrent callers
 * exactly as it would against etcd (its compare-and-swap must hold, not the single thread).
 */
import type { AsyncStateStore, StateStore, StoreChange } from './store.ts';

/** `store` with every method returning a promise, settled on a later turn (errors become rejections). */
export function asyncStateStore(store: StateStore): AsyncStateStore {
  const later = <T>(fn: () => T): Promise<T> =>
    new Promise<T>((resolve, reject) =>
      setImmediate(() => {
        try {
          resolve(fn());
        } catch (err) {
          reject(err as Error);
        }
      }),
    );
  return {
    revision: () => later(() => store.revision()),
    get: <T>(kind: string, key: string) => later(() => store.get<T>(kind, key)),
    list: <T>(kind: string, opts?: { prefix?: string }) => later(() => store.list<T>(kind, opts)),
    put: (kind, key, value, opts) => later(() => store.put(kind, key, value, opts)),
    delete: (kind, key, opts) => later(() => store.delete(kind, key, opts)),
    commit: (ops) => later(() => store.commit(ops)),
    watch: <T>(kind: string, fromRevision: number, onChange: (change: StoreChange<T>) => void) =>
      later(() => store.watch<T>(kind, fromRevision, onChange)),
    appendEvent: (event) => later(() => store.appendEvent(event)),
    events: (query) => later(() => store.events(query)),
    close: () => later(() => store.close()),
  };
}
