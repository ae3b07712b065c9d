import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeFrame,
  FrameDecoder,
  FrameType,
  encodeSpec,
  encodeExec,
  decodeExit,
  decodeLogRecord,
  parseLogRecords,
  MAX_PAYLOAD,
  HEADER_SIZE,
  PROTOCOL_VERSION,
  encodeChunked,
  type RunSpec,
} from './protocol.ts';
import { isBosonError } from '../common/index.ts';

test('frames round-trip through the decoder when split at every byte boundary', () => {
  const a = encodeFrame(FrameType.STDOUT, Buffer.from('hello'), 0);
  const b = encodeFrame(FrameType.EXIT, Buffer.from([0, 0, 0, 3, 0, 0, 0, 0]), 7);
  const wire = Buffer.concat([a, b]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const dec = new FrameDecoder();
    const frames = [...dec.push(wire.subarray(0, cut)), ...dec.push(wire.subarray(cut))];
    assert.equal(frames.length, 2, `cut at ${cut}`);
    assert.equal(frames[0]!.payload.toString(), 'hello');
    assert.equal(frames[1]!.session, 7);
    assert.deepEqual(decodeExit(frames[1]!), { status: 3, signal: 0 });
    assert.equal(dec.buffered, 0);
  }
});

test('the decoder refuses a header announcing more than the payload limit', () => {
  const head = Buffer.alloc(HEADER_SIZE);
  head.writeUInt8(FrameType.STDOUT, 0);
  head.writeUInt32BE(MAX_PAYLOAD + 1, 4);
  assert.throws(
    () => new FrameDecoder().push(head),
    (e) => isBosonError(e, 'GUEST_PROTOCOL'),
  );
});

test('large stdin is split into frames within the limit, preserving every byte', () => {
  const data = Buffer.alloc(MAX_PAYLOAD * 2 + 5, 0xab);
  const frames = encodeChunked(FrameType.STDIN, data);
  assert.equal(frames.length, 3);
  const decoded = new FrameDecoder().push(Buffer.concat(frames));
  assert.equal(Buffer.concat(decoded.map((f) => f.payload)).length, data.length);
});

test('spec records are tag, u32 length, bytes, in the documented order', () => {
  const spec = encodeSpec({ argv: ['echo', 'hé'], env: ['A=1'], tty: true, rootDisk: 'boson-root' });
  const records: Array<[number, string]> = [];
  for (let off = 0; off < spec.length;) {
    const tag = spec.readUInt8(off);
    const len = spec.readUInt32BE(off + 1);
    records.push([tag, spec.subarray(off + 5, off + 5 + len).toString('latin1')]);
    off += 5 + len;
  }
  assert.deepEqual(
    records.map((r) => r[0]),
    [1, 1, 2, 6, 9],
  );
  assert.equal(Buffer.from(records[1]![1], 'latin1').toString('utf8'), 'hé');
  assert.equal(records[4]![1], 'boson-root');
});

test('a spec without a command, or with a NUL in a string, is refused', () => {
  assert.throws(
    () => encodeSpec({ argv: [], env: [], rootDisk: 'r' }),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => encodeSpec({ argv: ['a\0b'], env: [], rootDisk: 'r' }),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
});

/** Splits SPEC/EXEC records into [tag, value] pairs. */
function records(buf: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  for (let off = 0; off < buf.length;) {
    const len = buf.readUInt32BE(off + 1);
    out.push([buf.readUInt8(off), buf.subarray(off + 5, off + 5 + len)]);
    off += 5 + len;
  }
  return out;
}

test('version 2: EXEC is 0x86 and HELLO carries version 2', () => {
  assert.equal(PROTOCOL_VERSION, 2);
  assert.equal(FrameType.EXEC, 0x86);
});

test('version 2 spec records: clock, interfaces, DNS, hosts, mounts, log port', () => {
  const spec = encodeSpec({
    argv: ['sh'],
    env: [],
    rootDisk: 'boson-root',
    clockNs: 1_732_460_000_123_456_789n,
    interfaces: [
      { mac: '52:54:00:12:34:56', address: '10.88.0.5', prefixLen: 16, gateway: '10.88.0.1', mtu: 1500 },
      { mac: '52:54:00:AB:CD:EF', address: '192.168.1.2', prefixLen: 24, mtu: 9000 },
    ],
    dns: ['10.88.0.1', '1.1.1.1'],
    dnsSearch: ['example.com'],
    hosts: ['10.88.0.5\tweb'],
    mounts: [
      { kind: 'disk', source: 'vol-data', target: '/data', fstype: 'ext4', readOnly: false },
      { kind: '9p', source: 'share0', target: '/srv', fstype: '9p', readOnly: true },
    ],
    logPort: true,
  });
  const recs = records(spec);
  assert.deepEqual(
    recs.map((r) => r[0]),
    [1, 9, 12, 13, 13, 14, 14, 15, 16, 17, 17, 18],
  );
  const text = (i: number): string => recs[i]![1].toString('utf8');
  assert.equal(recs[2]![1].readBigUInt64BE(0), 1_732_460_000_123_456_789n);
  assert.equal(recs[2]![1].length, 8);
  assert.equal(text(3), '52:54:00:12:34:56 10.88.0.5/16 10.88.0.1 1500');
  assert.equal(text(4), '52:54:00:ab:cd:ef 192.168.1.2/24 - 9000');
  assert.deepEqual([text(5), text(6), text(7), text(8)], ['10.88.0.1', '1.1.1.1', 'example.com', '10.88.0.5\tweb']);
  assert.equal(text(9), 'disk\tvol-data\t/data\text4\trw');
  assert.equal(text(10), '9p\tshare0\t/srv\t9p\tro');
  assert.deepEqual([...recs[11]![1]], [1]);
  // Resolver options (a pod's DnsConfig) after the search domains.
  const withOptions = records(encodeSpec({ argv: ['sh'], env: [], rootDisk: 'r', dnsSearch: ['a.b'], dnsOptions: ['ndots:5', 'edns0'] }));
  assert.deepEqual(
    withOptions.map((r) => [r[0], r[1].toString()]),
    [
      [1, 'sh'],
      [9, 'r'],
      [15, 'a.b'],
      [41, 'ndots:5'],
      [41, 'edns0'],
    ],
  );
  // EPHEMERAL (--rm: no sync at the end): one byte, after LOG_PORT; absent when false.
  assert.deepEqual(
    records(encodeSpec({ argv: ['sh'], env: [], rootDisk: 'r', logPort: true, ephemeral: true })).map((r) => [r[0], [...r[1]]]),
    [
      [1, [...Buffer.from('sh')]],
      [9, [...Buffer.from('r')]],
      [18, [1]],
      [46, [1]],
    ],
  );
  assert.deepEqual(
    records(encodeSpec({ argv: ['sh'], env: [], rootDisk: 'r', ephemeral: false })).map((r) => r[0]),
    [1, 9],
  );
  // Without them, a version 1 spec comes out unchanged.
  assert.deepEqual(
    records(encodeSpec({ argv: ['sh'], env: [], rootDisk: 'r', logPort: false })).map((r) => r[0]),
    [1, 9],
  );
});

test('malformed interfaces and mounts are refused before they reach the guest', () => {
  const base: RunSpec = { argv: ['sh'], env: [], rootDisk: 'r' };
  const iface = { mac: '52:54:00:12:34:56', address: '10.0.0.2', prefixLen: 24, mtu: 1500 };
  const mount = { kind: 'disk' as const, source: 's', target: '/t', fstype: 'ext4', readOnly: false };
  const bad: RunSpec[] = [
    { ...base, interfaces: [{ ...iface, mac: '52:54:00:12:34' }] },
    { ...base, interfaces: [{ ...iface, address: '10.0.0.256' }] },
    { ...base, interfaces: [{ ...iface, prefixLen: 33 }] },
    { ...base, interfaces: [{ ...iface, gateway: 'router' }] },
    { ...base, interfaces: [{ ...iface, mtu: 10 }] },
    { ...base, mounts: [{ ...mount, target: 'rel' }] },
    { ...base, mounts: [{ ...mount, target: '/a/../b' }] },
    { ...base, mounts: [{ ...mount, source: 'a\tb' }] },
    { ...base, mounts: [{ ...mount, fstype: '' }] },
    { ...base, mounts: [{ ...mount, kind: 'nfs' as 'disk' }] },
    { ...base, dns: ['a\0b'] },
    { ...base, dnsOptions: ['ndots: 5'] },
    { ...base, dnsSearch: ['a.b\nnameserver 6.6.6.6'] },
    { ...base, dns: [''] },
    { ...base, dnsOptions: [''] },
  ];
  for (const spec of bad)
    assert.throws(
      () => encodeSpec(spec),
      (e) => isBosonError(e, 'INVALID_ARGUMENT'),
      JSON.stringify(spec),
    );
});

test('EXEC payloads carry only the process records', () => {
  const exec = encodeExec({
    argv: ['ls', '-l'],
    env: ['A=1'],
    cwd: '/tmp',
    user: 'app',
    tty: true,
    stdin: true,
    winsize: { rows: 50, cols: 200 },
  });
  const recs = records(exec);
  assert.deepEqual(
    recs.map((r) => r[0]),
    [1, 1, 2, 3, 4, 6, 7, 8],
  );
  assert.equal(recs[4]![1].toString(), 'app');
  assert.deepEqual([...recs[7]![1]], [0, 50, 0, 200]);
  assert.deepEqual(
    records(encodeExec({ argv: ['true'], env: [] })).map((r) => r[0]),
    [1],
  );
  assert.throws(
    () => encodeExec({ argv: [], env: [] }),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  // A pod container's root, read-only or not; never relative or climbing out.
  const rooted = records(encodeExec({ argv: ['sh'], env: [], root: '/.boson/pod/c1/rootfs', readOnlyRoot: true }));
  assert.deepEqual(
    rooted.map((r) => r[0]),
    [1, 19, 20],
  );
  assert.equal(rooted[1]![1].toString(), '/.boson/pod/c1/rootfs');
  assert.deepEqual(
    records(encodeExec({ argv: ['sh'], env: [], root: '/r' })).map((r) => r[0]),
    [1, 19],
  );
  for (const root of ['relative', '/a/../etc'])
    assert.throws(
      () => encodeExec({ argv: ['sh'], env: [], root }),
      (e) => isBosonError(e, 'INVALID_ARGUMENT'),
    );
  // A pod container's cgroup, supplementary groups, capability bounding set and no_new_privs: with a root only.
  const confined = records(
    encodeExec({
      argv: ['sh'],
      env: [],
      root: '/r',
      cgroup: 'boson/c1',
      groups: [10, 20],
      capabilities: 0xa80425fbn,
      noNewPrivileges: true,
    }),
  );
  assert.deepEqual(
    confined.map((r) => r[0]),
    [1, 19, 42, 43, 44, 45],
  );
  assert.equal(confined[2]![1].toString(), 'boson/c1');
  assert.equal(confined[3]![1].toString(), '10,20');
  assert.equal(confined[4]![1].readBigUInt64BE(0), 0xa80425fbn);
  assert.deepEqual([...confined[5]![1]], [1]);
  for (const bad of [
    { cgroup: '/abs' },
    { cgroup: 'a/../b' },
    { cgroup: 'a b' },
    { groups: [-1] },
    { groups: [1.5] },
    { capabilities: 1n << 64n },
  ])
    assert.throws(
      () => encodeExec({ argv: ['sh'], env: [], root: '/r', ...bad }),
      (e) => isBosonError(e, 'INVALID_ARGUMENT'),
      JSON.stringify(bad, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
    );
  assert.throws(
    () => encodeExec({ argv: ['sh'], env: [], cgroup: 'boson/c1' }),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  const frame = encodeFrame(FrameType.EXEC, exec, 7);
  const [decoded] = new FrameDecoder().push(frame);
  assert.equal(decoded!.type, 0x86);
  assert.equal(decoded!.session, 7);
});

/** A log-port record as boson-init writes it. */
function logRecord(type: number, ts: bigint, data: Buffer): Buffer {
  const payload = Buffer.alloc(8 + data.length);
  payload.writeBigUInt64BE(ts, 0);
  data.copy(payload, 8);
  return encodeFrame(type, payload);
}

test('log records decode to type, timestamp and data; partial records are left for later', () => {
  const exit = Buffer.alloc(8);
  exit.writeInt32BE(3, 0);
  const file = Buffer.concat([
    logRecord(FrameType.STARTED, 1n, Buffer.from([0, 0, 0, 42])),
    logRecord(FrameType.STDOUT, 2n, Buffer.from('hello\n')),
    logRecord(FrameType.STDERR, 3n, Buffer.from('oops')),
    logRecord(FrameType.EXIT, 18_000_000_000_000_000_000n, exit),
  ]);
  const all = parseLogRecords(file);
  assert.equal(all.consumed, file.length);
  assert.deepEqual(
    all.records.map((r) => [r.type, r.tsNs]),
    [
      [2, 1n],
      [3, 2n],
      [4, 3n],
      [5, 18_000_000_000_000_000_000n],
    ],
  );
  assert.equal(all.records[1]!.data.toString(), 'hello\n');
  assert.equal(all.records[0]!.data.readUInt32BE(0), 42);
  assert.deepEqual(decodeExit({ type: 5, session: 0, payload: all.records[3]!.data }), { status: 3, signal: 0 });
  for (let cut = 0; cut < file.length; cut++) {
    const part = parseLogRecords(file.subarray(0, cut));
    const rest = parseLogRecords(file.subarray(part.consumed));
    assert.equal(part.records.length + rest.records.length, 4, `cut at ${cut}`);
    assert.equal(part.consumed + rest.consumed, file.length);
  }
  assert.throws(
    () => decodeLogRecord({ type: 3, session: 0, payload: Buffer.alloc(7) }),
    (e) => isBosonError(e, 'GUEST_PROTOCOL'),
  );
  const huge = Buffer.alloc(HEADER_SIZE);
  huge.writeUInt32BE(MAX_PAYLOAD + 9, 4);
  assert.throws(
    () => parseLogRecords(huge),
    (e) => isBosonError(e, 'GUEST_PROTOCOL'),
  );
});
