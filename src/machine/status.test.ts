import { test } from 'node:test';
import assert from 'node:assert/strict';
import { humanDuration, statusText } from './status.ts';
import type { ContainerRecord } from './containers.ts';

test('human durations read as Docker words them', () => {
  assert.equal(humanDuration(400), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(5000), '5 seconds');
  assert.equal(humanDuration(65_000), 'About a minute');
  assert.equal(humanDuration(3 * 60_000), '3 minutes');
  assert.equal(humanDuration(3600_000), 'About an hour');
  assert.equal(humanDuration(5 * 3600_000), '5 hours');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
});

test('status lines follow the container state', () => {
  const now = Date.parse('2026-01-01T00:01:00Z');
  const base = { startedAt: '2026-01-01T00:00:55Z', finishedAt: '2026-01-01T00:00:00Z', exitCode: 3 } as ContainerRecord;
  assert.equal(statusText({ ...base, state: 'running' }, now), 'Up 5 seconds');
  assert.equal(statusText({ ...base, state: 'exited' }, now), 'Exited (3) About a minute ago');
  assert.equal(statusText({ ...base, state: 'restarting' }, now), 'Restarting (3) About a minute ago');
  assert.equal(statusText({ ...base, state: 'created' }, now), 'Created');
});

test('a running container paused on a full host disk says so', () => {
  const now = Date.parse('2026-01-01T00:01:00Z');
  const r = { state: 'running', startedAt: '2026-01-01T00:00:55Z', pausedReason: 'the disk holding /x is full' } as ContainerRecord;
  assert.equal(statusText(r, now), 'Up 5 seconds (Paused: host disk full)');
});
