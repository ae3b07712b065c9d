/**
 * Backpressure toward slow clients: a client of the REST API that does not read while its container writes 50 MiB
 * holds that output back in the container's log file, not in the daemon's memory; when it reads, every byte arrives.
 * Over the fake VMM (its `flood` command writes the output at once).
 */
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { PACKAGE_ROOT } from '../../common/index.ts';
import { ImageStore } from '../../image/index.ts';
import { FakeVmm } from '../fake-vmm.ts';
import { fakeRuntime } from '../fake-runtime.ts';
import { localContext } from '../port/index.ts';
import { openStateStore } from '../store/sqlite.ts';
import { MachineClient } from './client.ts';
import { buildApi } from './server.ts';

const LAYOUT = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');
const ctx = localContext('test');
const MiB = 1024 * 1024;
const FLOOD = 50 * MiB;
let stateDir: string;
let runtime: ReturnType<typeof fakeRuntime>;
let app: Awaited<ReturnType<typeof buildApi>>;
let socketPath: string;
const serverSide: net.Socket[] = [];

before(async () => {
  await access(path.join(LAYOUT, 'index.json'));
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'boson-backpressure-'));
  const store = openStateStore(stateDir);
  await new ImageStore(store, stateDir).importPath(LAYOUT);
  store.close();
  runtime = fakeRuntime({ stateDir, vmm: new FakeVmm(), detached: true });
  await runtime.init();
  app = await buildApi(runtime);
  socketPath = path.join(stateDir, 'api.sock');
  await app.listen({ path: socketPath });
  // The server's side of each connection, to see how much output waits in it.
  app.server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => serverSide.push(socket));
  app.server.on('request', (req: http.IncomingMessage) => serverSide.push(req.socket));
});
after(async () => {
  await app?.close();
  await runtime?.close();
  await rm(stateDir, { recursive: true, force: true });
});

/**
 * The most output that waited in the server's side of a connection (its writableLength) while the client did not
 * read: sampled until what the server handed the connection is past 1 MiB and has not grown for a second (or 30 s
 * have passed).
 */
async function peakQueued(socket: net.Socket): Promise<number> {
  let peak = 0;
  let handed = -1;
  let still = Date.now();
  const end = Date.now() + 30_000;
  while (Date.now() < end && !(handed > MiB && Date.now() - still > 1000)) {
    peak = Math.max(peak, socket.writableLength);
    const now = socket.bytesWritten + socket.writableLength;
    if (now !== handed) [handed, still] = [now, Date.now()];
    await new Promise((r) => setTimeout(r, 10));
  }
  return peak;
}

/** What a parser found at the front of a buffer: payload bytes, and how many bytes of the buffer it used. */
type Parsed = { payload: number; used: number };

/** Reads `stream` until `want` bytes of payload have come. */
async function readAll(stream: Readable, want: number, parse: (buf: Buffer) => Parsed): Promise<number> {
  let got = 0;
  let pending = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got} of ${want} bytes arrived`)), 60_000);
    stream.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      const { payload, used } = parse(pending);
      pending = pending.subarray(used);
      got += payload;
      if (got >= want) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    stream.resume();
  });
}

/** The stdout payload of the whole 8-byte-header frames at the front of `buf`. */
function frames(buf: Buffer): Parsed {
  let used = 0;
  let payload = 0;
  while (buf.length - used >= 8) {
    const size = buf.readUInt32BE(used + 4);
    if (buf.length - used - 8 < size) break;
    if (buf[used] === 1) payload += size;
    used += 8 + size;
  }
  return { payload, used };
}

/** The decoded data of the whole NDJSON log entries at the front of `buf`. */
function ndjson(buf: Buffer): Parsed {
  let used = 0;
  let payload = 0;
  for (let nl = buf.indexOf(10, used); nl >= 0; nl = buf.indexOf(10, used)) {
    const entry = JSON.parse(buf.subarray(used, nl).toString('utf8')) as { data: string };
    payload += Buffer.from(entry.data, 'base64').length;
    used = nl + 1;
  }
  return { payload, used };
}

test('an attach client that does not read holds 50 MiB of output back in the log, then gets every byte', async () => {
  const c = await runtime.machine.containers.create(ctx, { image: 'busybox', process: { args: ['flood', String(FLOOD)] } });
  await runtime.machine.containers.start(ctx, c.id);
  const socket: Duplex = await new MachineClient(socketPath).upgrade(`/v1/containers/${c.id}/attach`);
  socket.pause();
  const server = serverSide.at(-1)!;
  const queued = await peakQueued(server);
  assert.ok(queued < 4 * MiB, `${(queued / MiB).toFixed(1)} MiB waited in the daemon while the client did not read`);
  assert.equal(await readAll(socket, FLOOD, frames), FLOOD);
  socket.destroy();
  await runtime.machine.containers.remove(ctx, c.id, { force: true });
});

test('a logs client that does not read holds 50 MiB of output back in the log, then gets every byte', async () => {
  const c = await runtime.machine.containers.create(ctx, { image: 'busybox', process: { args: ['flood', String(FLOOD)] } });
  await runtime.machine.containers.start(ctx, c.id);
  await new Promise((r) => setTimeout(r, 500));
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get({ socketPath, path: `/v1/containers/${c.id}/logs?follow=true` }, resolve).on('error', reject),
  );
  assert.equal(res.statusCode, 200);
  res.pause();
  const server = serverSide.at(-1)!;
  const queued = await peakQueued(server);
  assert.ok(queued < 4 * MiB, `${(queued / MiB).toFixed(1)} MiB waited in the daemon while the client did not read`);
  assert.equal(await readAll(res, FLOOD, ndjson), FLOOD);
  res.destroy();
  await runtime.machine.containers.remove(ctx, c.id, { force: true });
});
