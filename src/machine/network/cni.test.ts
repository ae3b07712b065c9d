import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isBosonError } from '../../common/index.ts';
import {
  DEFAULT_LIST_FILE,
  addNetworkList,
  delNetworkList,
  loadNetworkList,
  parseNetworkList,
  pluginConfig,
  podInterfaceOf,
  type CniRuntimeConf,
} from './cni.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'boson-cni-'));
  dirs.push(d);
  return d;
}

/**
 * A fake plugin: appends its environment and stdin to `log`, prints a result naming itself (ADD), or fails with a
 * CNI error object when its configuration says `fail`.
 */
async function fakePlugin(bin: string, type: string, log: string): Promise<void> {
  const script = `#!/bin/sh
conf=$(cat)
printf '%s %s %s %s %s %s\\n%s\\n' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$conf" >> ${log}
case "$conf" in *'"fail":true'*) echo '{"cniVersion":"1.0.0","code":7,"msg":"it failed","details":"on purpose"}'; exit 1;; esac
[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"address":"10.1.2.3/24","gateway":"10.1.2.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}],"by":"${type}"}'
exit 0
`;
  await writeFile(path.join(bin, type), script);
  await chmod(path.join(bin, type), 0o755);
}

const rt: CniRuntimeConf = {
  containerId: 'c0ffee',
  netns: '/run/netns/x',
  ifname: 'eth0',
  args: [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAME', 'web'],
  ],
  capabilityArgs: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
};

test('a directory without configuration gets the default list, written once; the first file by name wins', async () => {
  const dir = await tmp();
  const settings = {
    confDir: path.join(dir, 'net.d'),
    binDirs: ['/nowhere'],
    defaults: { bridge: 'b0', subnet: '10.9.0.0/24', dataDir: '/d' },
  };
  const list = await loadNetworkList(settings);
  assert.equal(list.file, path.join(settings.confDir, DEFAULT_LIST_FILE));
  assert.deepEqual(
    list.plugins.map((p) => p.type),
    ['bridge', 'portmap'],
  );
  assert.deepEqual(JSON.parse(await readFile(list.file, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.9.0.0/24' }]]);
  await writeFile(path.join(settings.confDir, '05-mine.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'mine', type: 'ptp' }));
  const mine = await loadNetworkList(settings);
  assert.equal(mine.name, 'mine');
  assert.deepEqual(mine.plugins, [{ type: 'ptp' }]);
});

test('a malformed list is refused with CNI_FAILED naming the file', () => {
  for (const text of ['{', '{"plugins":[{"type":"x"}]}', '{"name":"n","plugins":[]}', '{"name":"n","plugins":[{}]}']) {
    assert.throws(
      () => parseNetworkList(text, '/etc/cni/net.d/x.conflist'),
      (e: unknown) => isBosonError(e, 'CNI_FAILED') && /x\.conflist/.test((e as Error).message),
      text,
    );
  }
});

test('capability arguments go only to the plugins that declare them; prevResult is chained', () => {
  const list = { name: 'n', cniVersion: '1.0.0' };
  const plain = pluginConfig(list, { type: 'bridge' }, rt, undefined);
  assert.deepEqual(plain, { type: 'bridge', name: 'n', cniVersion: '1.0.0' });
  const pm = pluginConfig(list, { type: 'portmap', capabilities: { portMappings: true } }, rt, { ips: [] });
  assert.deepEqual(pm.runtimeConfig, { portMappings: rt.capabilityArgs.portMappings });
  assert.deepEqual(pm.prevResult, { ips: [] });
});

test('ADD runs the plugins in order with the CNI environment and the previous result; DEL in reverse, with the cached result', async () => {
  const dir = await tmp();
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  const log = path.join(dir, 'log');
  await fakePlugin(bin, 'one', log);
  await fakePlugin(bin, 'two', log);
  const list = {
    name: 'n',
    cniVersion: '1.0.0',
    file: 'f',
    plugins: [{ type: 'one' }, { type: 'two', capabilities: { portMappings: true } }],
  };
  const result = await addNetworkList(list, rt, [path.join(dir, 'empty'), bin]);
  assert.equal(result.by, 'two');
  const lines = (await readFile(log, 'utf8')).trim().split('\n');
  assert.equal(lines[0], `ADD c0ffee /run/netns/x eth0 IgnoreUnknown=1;K8S_POD_NAME=web ${path.join(dir, 'empty')}:${bin}`);
  assert.equal(JSON.parse(lines[1]!).prevResult, undefined);
  assert.equal(JSON.parse(lines[3]!).prevResult.by, 'one');
  assert.deepEqual(JSON.parse(lines[3]!).runtimeConfig.portMappings[0].hostPort, 8080);
  await writeFile(log, '');
  await delNetworkList(list, rt, [bin], result);
  const del = (await readFile(log, 'utf8')).trim().split('\n');
  assert.match(del[0]!, /^DEL c0ffee/);
  assert.deepEqual([JSON.parse(del[1]!).type, JSON.parse(del[3]!).type], ['two', 'one']);
  assert.equal(JSON.parse(del[3]!).prevResult.by, 'two');
});

test("a failing plugin's CNI error is reported; DEL still asks the others, and skips a plugin that is not installed", async () => {
  const dir = await tmp();
  const bin = path.join(dir, 'bin');
  await mkdir(bin);
  const log = path.join(dir, 'log');
  await fakePlugin(bin, 'one', log);
  const list = { name: 'n', cniVersion: '1.0.0', file: 'f', plugins: [{ type: 'one' }, { type: 'one', fail: true }] };
  await assert.rejects(
    addNetworkList(list, rt, [bin]),
    (e: unknown) => isBosonError(e, 'CNI_FAILED') && /it failed \(on purpose\) \[CNI error 7\]/.test((e as Error).message),
  );
  await writeFile(log, '');
  await assert.rejects(delNetworkList(list, rt, [bin]), /it failed/);
  assert.equal((await readFile(log, 'utf8')).trim().split('\n').length, 4, 'both plugins were asked');
  await delNetworkList({ ...list, plugins: [{ type: 'one' }, { type: 'missing' }] }, rt, [bin]);
  await assert.rejects(addNetworkList({ ...list, plugins: [{ type: 'missing' }] }, rt, [bin]), /CNI plugin missing not found/);
});

test('the pod interface of a result: its IPv4 address, the default route gateway, other routes, eth0 MAC', () => {
  const cfg = podInterfaceOf(
    {
      interfaces: [{ name: 'br' }, { name: 'veth1' }, { name: 'eth0', mac: '02:aa:bb:cc:dd:ee', sandbox: '/run/netns/p' }],
      ips: [
        { address: 'fd00::5/64', interface: 2 },
        { address: '10.85.0.7/16', gateway: '10.85.0.1', interface: 2 },
      ],
      routes: [{ dst: '0.0.0.0/0' }, { dst: '192.0.2.0/24', gw: '10.85.0.254' }, { dst: '::/0' }],
      dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
    },
    'eth0',
  );
  assert.deepEqual(cfg, {
    address: '10.85.0.7',
    prefixLen: 16,
    gateway: '10.85.0.1',
    mac: '02:aa:bb:cc:dd:ee',
    routes: [{ dst: '192.0.2.0/24', gw: '10.85.0.254' }],
    dns: ['10.96.0.10'],
    dnsSearch: ['svc.cluster.local'],
  });
  assert.equal(podInterfaceOf({ ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }] }, 'eth0').gateway, '', 'no default route');
  assert.throws(() => podInterfaceOf({ ips: [{ address: 'fd00::5/64' }] }, 'eth0'), /no IPv4 address/);
});
