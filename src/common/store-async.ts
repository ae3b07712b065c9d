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

/**
 * Wraps a synchronous StateStore as an AsyncStateStore: every method runs the synchronous one and returns its
 * result (or its error) as a promise. Nothing is cached or reordered: a write is done when its promise is made.
 */
export function asyncStore(store: StateStore): AsyncStateStore {
  const wrap =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    (...args: A): Promise<R> => {
      try {
        return Promise.resolve(fn(...args));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    };
  return {
    revision: wrap(() => store.revision()),
    get: wrap((kind, key) => store.get(kind, key)) as AsyncStateStore['get'],
    list: wrap((kind, opts) => store.list(kind, opts)) as AsyncStateStore['list'],
    put: wrap((kind: string, key: string, value: unknown, opts?: { expectRevision?: number }) => store.put(kind, key, value, opts)),
    delete: wrap((kind: string, key: string, opts?: { expectRevision?: number }) => store.delete(kind, key, opts)),
    commit: wrap((ops) => store.commit(ops)),
    watch: wrap((kind, from, onChange) => store.watch(kind, from, onChange)) as AsyncStateStore['watch'],
    appendEvent: wrap((event) => store.appendEvent(event)),
    events: wrap((query) => store.events(query)),
    close: wrap(() => store.close()),
  };
}
