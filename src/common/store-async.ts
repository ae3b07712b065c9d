/**
 * The promise form of a synchronous store: `asyncStore(sqlite)` is an AsyncStateStore, so that code written against
 * the async contract (the controller, which may run on etcd) runs unchanged on the memory and SQLite stores.
 */
import type { AsyncStateStore, StateStore } from './store.ts';

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
