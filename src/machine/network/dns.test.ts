import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DnsServer, MAX_PENDING, buildResponse, parseQuery, readResolvConf } from './dns.ts';

function query(id: number, name: string, type = 1): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([header, ...labels, Buffer.from([0]), tail]);
}

function ask(port: number, msg: Buffer, from?: string): Promise<Buffer> {
  const s = dgram.createSocket('udp4');
  if (from !== undefined) s.bind(0, from);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.close();
      reject(new Error('no answer'));
    }, 3000);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(msg, port, '127.0.0.1');
  });
}

function answers(msg: Buffer): { rcode: number; ids: number; addrs: string[] } {
  const count = msg.readUInt16BE(6);
  const q = parseQuery(Buffer.concat([msg.subarray(0, 2), Buffer.from([1, 0]), msg.subarray(4)]))!;
  let off = 12 + q.question.length;
  const addrs: string[] = [];
  for (let i = 0; i < count; i++) {
    const rdlen = msg.readUInt16BE(off + 10);
    addrs.push([...msg.subarray(off + 12, off + 12 + rdlen)].join('.'));
    off += 12 + rdlen;
  }
  return { rcode: msg.readUInt16BE(2) & 0xf, ids: msg.readUInt16BE(0), addrs };
}

test('parseQuery reads the question; buildResponse answers with A records', () => {
  const q = parseQuery(query(7, 'Web.Example'))!;
  assert.equal(q.name, 'web.example');
  assert.equal(q.type, 1);
  const r = answers(buildResponse(q, ['10.1.0.2', '10.1.0.3']));
  assert.deepEqual(r, { rcode: 0, ids: 7, addrs: ['10.1.0.2', '10.1.0.3'] });
  assert.equal(parseQuery(Buffer.from([1, 2, 3])), undefined);
});

test('DNS server: answers names of the network, NODATA for their AAAA, forwards the rest, SERVFAIL when upstreams are silent', async () => {
  // A fake upstream that answers everything with 192.0.2.1.
  const upstream = dgram.createSocket('udp4');
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
  upstream.on('message', (m, rinfo) => upstream.send(buildResponse(parseQuery(m)!, ['192.0.2.1']), rinfo.port, rinfo.address));
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  const server = new DnsServer({
    address: '127.0.0.1',
    port: 0,
    upstreams: [
      { host: '127.0.0.1', port: silent.address().port },
      { host: '127.0.0.1', port: upstream.address().port },
    ],
    timeoutMs: 200,
  });
  const port = await server.start();
  server.setNames(new Map([['Web', ['10.1.0.2']]]));
  try {
    assert.deepEqual(answers(await ask(port, query(1, 'web'))), { rcode: 0, ids: 1, addrs: ['10.1.0.2'] });
    assert.deepEqual(answers(await ask(port, query(2, 'WEB', 28))), { rcode: 0, ids: 2, addrs: [] });
    // forwarded (after the silent upstream times out), with the client's own ID restored
    assert.deepEqual(answers(await ask(port, query(3, 'example.org'))), { rcode: 0, ids: 3, addrs: ['192.0.2.1'] });
    // A name of the network with a search domain appended is answered here, never forwarded (the silent upstream
    // would make it take the timeout); other names in that domain are forwarded.
    server.setSearch(['Corp.Example.']);
    assert.deepEqual(answers(await ask(port, query(6, 'web.corp.example'))), { rcode: 0, ids: 6, addrs: ['10.1.0.2'] });
    assert.deepEqual(answers(await ask(port, query(7, 'web.corp.example', 28))), { rcode: 0, ids: 7, addrs: [] });
    assert.deepEqual(answers(await ask(port, query(8, 'db.corp.example'))), { rcode: 0, ids: 8, addrs: ['192.0.2.1'] });
    assert.deepEqual(answers(await ask(port, query(9, 'web.other.example'))), { rcode: 0, ids: 9, addrs: ['192.0.2.1'] });
    server.setUpstreams([{ host: '127.0.0.1', port: silent.address().port }]);
    assert.equal(answers(await ask(port, query(4, 'example.org'))).rcode, 2);
    server.setUpstreams([]);
    assert.equal(answers(await ask(port, query(5, 'example.org'))).rcode, 5);
  } finally {
    await server.close();
    upstream.close();
    silent.close();
  }
});

test('names for one client (legacy links) answer only queries from that address, before the network-wide names', async () => {
  const server = new DnsServer({ address: '127.0.0.1', port: 0, upstreams: [] });
  const port = await server.start();
  server.setNames(
    new Map([['web', ['10.1.0.2']]]),
    new Map([
      [
        '127.0.0.2',
        new Map([
          ['DB', ['10.1.0.9']],
          ['web', ['10.1.0.7']],
        ]),
      ],
    ]),
  );
  server.setSearch(['corp.example']);
  try {
    assert.deepEqual(answers(await ask(port, query(1, 'db'), '127.0.0.2')), { rcode: 0, ids: 1, addrs: ['10.1.0.9'] });
    assert.deepEqual(answers(await ask(port, query(2, 'db.corp.example'), '127.0.0.2')).addrs, ['10.1.0.9']);
    assert.deepEqual(answers(await ask(port, query(3, 'web'), '127.0.0.2')).addrs, ['10.1.0.7']);
    // Another client does not see the link: no upstreams here, so a foreign name is REFUSED.
    assert.equal(answers(await ask(port, query(4, 'db'), '127.0.0.1')).rcode, 5);
    assert.deepEqual(answers(await ask(port, query(5, 'web'), '127.0.0.1')).addrs, ['10.1.0.2']);
  } finally {
    await server.close();
  }
});

test('readResolvConf: IPv4 nameservers and search domains', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-resolv-'));
  const file = path.join(dir, 'resolv.conf');
  await writeFile(
    file,
    '# comment\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\nsearch a.example b.example\noptions edns0\n',
  );
  assert.deepEqual(await readResolvConf(file), { nameservers: ['127.0.0.53', '10.0.0.2'], search: ['a.example', 'b.example'] });
  assert.deepEqual(await readResolvConf(path.join(dir, 'missing')), { nameservers: [], search: [] });
  await rm(dir, { recursive: true });
});

test('forwarded queries resist spoofing: a random ID and source port per query, and an answer must repeat the question', async () => {
  // An upstream that records what it is asked and answers only when told to.
  const upstream = dgram.createSocket('udp4');
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
  const seen: Array<{ msg: Buffer; port: number }> = [];
  upstream.on('message', (m, rinfo) => seen.push({ msg: m, port: rinfo.port }));
  const server = new DnsServer({
    address: '127.0.0.1',
    port: 0,
    upstreams: [{ host: '127.0.0.1', port: upstream.address().port }],
    timeoutMs: 5000,
  });
  const port = await server.start();
  try {
    const answersSoFar = Array.from({ length: 8 }, (_, i) => ask(port, query(100 + i, `n${i}.example`)).catch(() => undefined));
    while (seen.length < 8) await new Promise((r) => setTimeout(r, 10));
    const ids = seen.map((s) => s.msg.readUInt16BE(0));
    const ports = new Set(seen.map((s) => s.port));
    assert.ok(ports.size >= 7, `a source port per query (${ports.size} of 8)`);
    assert.ok(!ids.every((id, i) => i === 0 || id === ((ids[i - 1]! + 1) & 0xffff)), `IDs are not a sequence (${ids.join(',')})`);
    // A spoofed answer: right port and ID, but another question. Ignored; the genuine one is then taken.
    const first = seen[0]!;
    const spoofed = buildResponse({ ...parseQuery(query(first.msg.readUInt16BE(0), 'evil.example'))!, flags: 0x0100 }, ['203.0.113.66']);
    upstream.send(spoofed, first.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 50));
    upstream.send(buildResponse(parseQuery(first.msg)!, ['192.0.2.7']), first.port, '127.0.0.1');
    const got = await answersSoFar[0];
    assert.deepEqual(answers(got!), { rcode: 0, ids: 100, addrs: ['192.0.2.7'] });
  } finally {
    await server.close();
    upstream.close();
  }
});

test('a flood of queries to a silent upstream is bounded: past MAX_PENDING they get SERVFAIL at once, and names still answer', async () => {
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
  const server = new DnsServer({
    address: '127.0.0.1',
    port: 0,
    upstreams: [{ host: '127.0.0.1', port: silent.address().port }],
    timeoutMs: 10_000,
  });
  const port = await server.start();
  server.setNames(new Map([['web', ['10.1.0.2']]]));
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  const fails: number[] = [];
  client.on('message', (m) => {
    if ((m.readUInt16BE(2) & 0xf) === 2) fails.push(m.readUInt16BE(0));
  });
  try {
    const flood = MAX_PENDING + 200;
    // In batches, so that the kernel's socket buffers do not drop what the server is to see.
    for (let i = 0; i < flood; i++) {
      client.send(query(i, `x${i}.example`), port, '127.0.0.1');
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
    }
    const end = Date.now() + 5000;
    while (fails.length < 200 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(fails.length >= 200, `the queries past the bound were refused at once (${fails.length})`);
    assert.deepEqual(answers(await ask(port, query(1, 'web'))), { rcode: 0, ids: 1, addrs: ['10.1.0.2'] });
  } finally {
    client.close();
    await server.close();
    silent.close();
  }
});
