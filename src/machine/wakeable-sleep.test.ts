import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WakeableSleep } from './wakeable-sleep.ts';

test('a sleep ends after its time, or at once when woken', async (t) => {
  // The sleep's timer does not keep a process alive (its promise): this test keeps its own process alive.
  const keepAlive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keepAlive));
  const nap = new WakeableSleep();
  let t0 = Date.now();
  await nap.sleep(30);
  assert.ok(Date.now() - t0 >= 25);
  t0 = Date.now();
  const slept = nap.sleep(10_000);
  nap.wake();
  await slept;
  assert.ok(Date.now() - t0 < 1000);
  nap.wake(); // nothing to wake: no effect
});
