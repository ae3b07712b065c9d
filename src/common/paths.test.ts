import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bosonPaths } from './index.ts';

test('root uses the system directories; overrides win', () => {
  assert.deepEqual(
    { ...bosonPaths({}, false), guestDir: '' },
    { stateDir: '/var/lib/boson', runDir: '/run/boson', guestDir: '', rootless: false },
  );
  const p = bosonPaths({ BOSON_STATE_DIR: '/s', BOSON_RUN_DIR: '/r', XDG_RUNTIME_DIR: '/run/user/7' }, false);
  assert.equal(p.stateDir, '/s');
  assert.equal(p.runDir, '/r');
});

test('rootless defaults follow XDG, with BOSON_* overrides', () => {
  const uid = process.geteuid?.() ?? 0;
  const xdg = bosonPaths({ HOME: '/home/u', XDG_DATA_HOME: '/home/u/data', XDG_RUNTIME_DIR: '/run/user/1000' }, true);
  assert.equal(xdg.stateDir, '/home/u/data/boson');
  assert.equal(xdg.runDir, '/run/user/1000/boson');
  assert.equal(xdg.rootless, true);
  const bare = bosonPaths({ HOME: '/home/u' }, true);
  assert.equal(bare.stateDir, '/home/u/.local/share/boson');
  assert.equal(bare.runDir, `/tmp/boson-${uid}`);
  const over = bosonPaths({ HOME: '/home/u', BOSON_STATE_DIR: '/x/state', BOSON_RUN_DIR: '/x/run' }, true);
  assert.deepEqual([over.stateDir, over.runDir], ['/x/state', '/x/run']);
});
