/** The pure parts of the Docker routes: request bodies and queries into port calls, answers into Docker's JSON. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DockerError } from '../errors.ts';
import { onlyPids, psTable, statsJson } from './container-io.ts';
import { pruneMatcher, untilCutoff } from '../http.ts';
import { stopTimeout, terminalSize } from './containers.ts';
import { execInspect, execSpecOf } from './exec.ts';
import { labelMatches, referenceMatches } from './images.ts';
import { networkJson } from './networks.ts';
import { volumeCreateOf, volumeJson } from './volumes.ts';

const dockerError = (status: number, pattern: RegExp) => (err: unknown) =>
  err instanceof DockerError && err.status === status && pattern.test(err.message);

test("exec create bodies into the port's ExecSpec", () => {
  assert.deepEqual(
    execSpecOf({ Cmd: ['sh', '-c', 'id'], Env: ['A=1', 5], WorkingDir: '/w', User: 'nobody', Tty: true, AttachStdin: true }),
    {
      argv: ['sh', '-c', 'id'],
      env: ['A=1'],
      cwd: '/w',
      user: 'nobody',
      tty: true,
      stdin: true,
    },
  );
  assert.deepEqual(execSpecOf({ Cmd: 'ls', WorkingDir: '', User: '' }), {
    argv: ['ls'],
    env: [],
    cwd: undefined,
    user: undefined,
    tty: false,
    stdin: false,
  });
  for (const body of [{}, { Cmd: [] }, { Cmd: [1] }])
    assert.throws(() => execSpecOf(body), dockerError(400, /^No exec command specified$/));
  assert.throws(() => execSpecOf({ Cmd: ['ls'], Privileged: true }), dockerError(501, /^exec --privileged is not supported/));
  const doc = execInspect({
    id: 'e1',
    containerId: 'c1',
    argv: ['ls', '-l'],
    env: [],
    tty: false,
    stdin: true,
    running: false,
    exitCode: 2,
    pid: null,
  });
  assert.deepEqual(doc.ProcessConfig, { arguments: ['-l'], entrypoint: 'ls', privileged: false, tty: false, user: '' });
  assert.equal(doc.ExitCode, 2);
  assert.equal(doc.Pid, 0);
});

test('stop timeouts and terminal sizes from the query', () => {
  const q = (s: string): URLSearchParams => new URLSearchParams(s);
  assert.equal(stopTimeout(q('')), undefined);
  assert.equal(stopTimeout(q('t=5')), 5);
  assert.equal(stopTimeout(q('timeout=7')), 7);
  assert.equal(stopTimeout(q('t=-1')), 365 * 24 * 3600, 'negative: wait for ever');
  assert.throws(() => stopTimeout(q('t=soon')), dockerError(400, /^invalid value for t: soon$/));
  assert.deepEqual(terminalSize(q('h=24&w=80')), { h: 24, w: 80 });
  for (const bad of ['h=-1&w=80', 'h=24&w=x', 'h=70000&w=1'])
    assert.throws(() => terminalSize(q(bad)), dockerError(400, /^invalid terminal size/));
});

test('volume create bodies: the local driver and its size option only', () => {
  assert.deepEqual(volumeCreateOf({ Name: 'v', Labels: { a: 'b' }, DriverOpts: { size: '1g' } }), {
    name: 'v',
    labels: { a: 'b' },
    sizeBytes: 1024 ** 3,
  });
  assert.deepEqual(volumeCreateOf({}), { name: '', labels: undefined, sizeBytes: undefined });
  assert.throws(() => volumeCreateOf({ Driver: 'nfs' }), dockerError(501, /^volume driver "nfs" is not supported/));
  assert.throws(() => volumeCreateOf({ DriverOpts: { type: 'tmpfs' } }), dockerError(400, /^invalid option key: "type"/));
  assert.throws(() => volumeCreateOf({ DriverOpts: { size: 'lots' } }), dockerError(400, /^invalid size option: lots$/));
  const v = { name: 'v', created: 'now', labels: {}, mountpoint: '/m', sizeBytes: 5 };
  assert.deepEqual(volumeJson(v), {
    CreatedAt: 'now',
    Driver: 'local',
    Labels: {},
    Mountpoint: '/m',
    Name: 'v',
    Options: { size: '5' },
    Scope: 'local',
  });
  assert.equal(volumeJson({ ...v, sizeBytes: 16 * 1024 ** 3 }).Options, null, 'no options for a volume of the default size');
});

test('image reference and label filters', () => {
  const cases: Array<[string, string, boolean]> = [
    ['busybox:latest', 'busybox', true],
    ['busybox:latest', 'busybox:latest', true],
    ['busybox:latest', 'busy*', true],
    ['me/app:1', 'me/*', true],
    ['me/app:1', '*', false],
    ['localhost:5000/app', 'localhost:5000/app', true],
    ['alpine:3', 'busybox', false],
  ];
  for (const [ref, pattern, want] of cases) assert.equal(referenceMatches(ref, pattern), want, `${ref} ~ ${pattern}`);
  assert.equal(labelMatches({ a: 'b' }, 'a'), true);
  assert.equal(labelMatches({ a: 'b' }, 'a=b'), true);
  assert.equal(labelMatches({ a: 'b' }, 'a=c'), false);
  assert.equal(labelMatches({}, 'a'), false);
});

test('top: ps output without the guest kernel threads, boson-init and the ps itself', () => {
  const out = [
    'PID   USER     TIME  COMMAND',
    '    1 root      0:00 /init',
    '    2 root      0:00 [kthreadd]',
    '   40 root      0:00 sleep 100',
    '   41 root      0:00 ps',
  ].join('\n');
  assert.deepEqual(psTable(out, 'ps'), { Titles: ['PID', 'USER', 'TIME', 'COMMAND'], Processes: [['40', 'root', '0:00', 'sleep 100']] });
});

test('stats and network documents', () => {
  const stats = { id: 'c', name: 'web', cpuNs: 5, memoryBytes: 10, memoryLimitBytes: 20, pids: 1, read: 'r1' };
  const doc = statsJson({ id: 'c', name: 'web' }, { stats, system: 100 }, null) as Record<string, Record<string, unknown>>;
  assert.equal(doc.name as unknown, '/web');
  assert.equal(doc.preread as unknown, '0001-01-01T00:00:00Z');
  assert.deepEqual(doc.memory_stats, { usage: 10, limit: 20, stats: {} });
  assert.equal(doc.precpu_stats!.system_cpu_usage, 0, 'no previous sample: zeros');
  const n = networkJson({ id: 'n1', name: 'net', created: 't', subnet: '10.9.0.0/24', gateway: '10.9.0.1', internal: true, labels: {} });
  assert.deepEqual(n.IPAM, { Driver: 'default', Options: null, Config: [{ Subnet: '10.9.0.0/24', Gateway: '10.9.0.1' }] });
  assert.equal(n.Internal, true);
});

test("top with ps_args keeps the rows of the container's own processes, by PID", () => {
  const own = psTable(
    'PID   USER     TIME  COMMAND\n    1 root      0:00 /init\n    2 root      0:00 [kthreadd]\n   40 root      0:00 sleep 100\n   51 root      0:00 ps\n',
    'ps',
  );
  const custom = psTable('PID   COMMAND\n    1 init\n    2 kthreadd\n   40 sleep\n   52 ps\n', '');
  assert.deepEqual(onlyPids(custom, new Set(own.Processes.map((p) => p[0]!))), {
    Titles: ['PID', 'COMMAND'],
    Processes: [['40', 'sleep']],
  });
  assert.throws(() => onlyPids(psTable('COMMAND\nsleep\n', ''), new Set(['40'])), /Couldn't find PID field/);
});

test('prune filters: until as a duration, unix seconds or RFC 3339; labels all, label! none', () => {
  const now = Date.parse('2024-01-02T03:00:00Z');
  assert.equal(untilCutoff('1h30m', now), now - 5_400_000);
  assert.equal(untilCutoff('1704164400', now), 1704164400_000);
  assert.equal(untilCutoff('2024-01-01T00:00:00Z', now), Date.parse('2024-01-01T00:00:00Z'));
  assert.throws(() => untilCutoff('yesterday', now), /invalid filter 'until=yesterday'/);
  const { matches } = pruneMatcher(
    new URLSearchParams({ filters: JSON.stringify({ label: ['a=1', 'b'], 'label!': ['keep'], until: ['2024-01-01T00:00:00Z'] }) }),
  );
  assert.equal(matches({ a: '1', b: '' }, '2023-12-31T00:00:00Z'), true);
  assert.equal(matches({ a: '1' }, '2023-12-31T00:00:00Z'), false);
  assert.equal(matches({ a: '1', b: '', keep: '' }, '2023-12-31T00:00:00Z'), false);
  assert.equal(matches({ a: '1', b: '' }, '2024-01-01T00:00:01Z'), false);
});
