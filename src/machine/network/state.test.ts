/** The network state in the state store: a state.json from before the store is imported once and removed; saves write only what changed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MemoryStateStore } from '../../common/index.ts';
import { NetworkManager } from './manager.ts';
import { NETWORK_KINDS, NetworkStateStore, type NetworkState } from './state.ts';

const NET_ID = 'a'.repeat(64);
const CID = 'c'.repeat(64);

function oldState(): NetworkState {
  return {
    version: 1,
    networks: [
      {
        id: NET_ID,
        name: 'bridge',
        driver: 'bridge',
        bridge: '',
        subnet: '10.0.2.0/24',
        gateway: '10.0.2.2',
        internal: false,
        labels: {},
        created: '2024-01-01T00:00:00.000Z',
        builtin: true,
      },
    ],
    endpoints: [
      {
        endpoint: {
          containerId: CID,
          network: NET_ID,
          nic: {
            kind: 'user',
            mac: '52:54:00:12:34:56',
            address: '10.0.2.15',
            prefixLen: 24,
            gateway: '10.0.2.2',
            forwards: [],
          },
          mac: '52:54:00:12:34:56',
          address: '10.0.2.15',
          prefixLen: 24,
          gateway: '10.0.2.2',
          dns: ['10.0.2.3'],
          dnsSearch: [],
          hosts: ['10.0.2.15\tbox'],
          ports: [],
        },
        containerName: 'box',
        aliases: [],
        hostname: 'box',
      },
    ],
    lastAddress: { [NET_ID]: 7 },
  };
}

test('a network/state.json from before the state store is imported once and removed', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-netstate-'));
  try {
    await mkdir(path.join(dir, 'network'));
    await writeFile(path.join(dir, 'network', 'state.json'), JSON.stringify(oldState()));
    const store = new MemoryStateStore();
    const m = new NetworkManager(store, { stateDir: dir, rootless: true, resolvConf: '/dev/null' });
    await m.init();
    assert.deepEqual(
      (await m.list()).map((n) => [n.id, n.name]),
      [[NET_ID, 'bridge']],
      'the old default network is kept, not made again',
    );
    assert.deepEqual(await m.endpoints(CID), [oldState().endpoints[0]!.endpoint]);
    await assert.rejects(access(path.join(dir, 'network', 'state.json')), 'state.json is gone');
    assert.deepEqual(
      store.list(NETWORK_KINDS.lease).map((r) => [r.key, r.value]),
      [[NET_ID, { last: 7 }]],
    );
    // A second start reads the store alone.
    const again = new NetworkManager(store, { stateDir: dir, rootless: true, resolvConf: '/dev/null' });
    await again.init();
    assert.deepEqual(await again.endpoints(CID), [oldState().endpoints[0]!.endpoint]);
    await again.disconnect(CID);
    assert.deepEqual(store.list(NETWORK_KINDS.endpoint), []);
    await m.close();
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a save writes only the records that changed, each at the revision it was read at', async () => {
  const store = new MemoryStateStore();
  const a = new NetworkStateStore(store, '/nonexistent');
  const state = await a.load();
  state.networks = oldState().networks;
  state.lastAddress = { [NET_ID]: 1 };
  await a.save(state);
  const rev = store.revision();
  assert.equal(rev, 2);
  await a.save(state);
  assert.equal(store.revision(), rev, 'nothing changed, nothing written');
  state.lastAddress[NET_ID] = 2;
  await a.save(state);
  assert.equal(store.revision(), rev + 1, 'one record changed, one write');
  // Another writer changed the lease meanwhile: this manager's next save of it conflicts instead of overwriting.
  store.put(NETWORK_KINDS.lease, NET_ID, { last: 9 });
  state.lastAddress[NET_ID] = 3;
  await assert.rejects(a.save(state), (e: Error & { code?: string }) => e.code === 'STORE_CONFLICT');
});
