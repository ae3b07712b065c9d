/**
 * The Docker container translation without a machine: create bodies into the port's ContainerSpec (table-driven,
 * with the refusals' statuses and messages), Container into docker ps and inspect shapes, and ps filters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { ContainerSpec, type Container } from '../machine/port/index.ts';
import {
  checkContainerName,
  containerInspect,
  containerSpecOf,
  containerSummary,
  endpointId,
  lookupOf,
  matchesFilters,
  parseLink,
} from './containers.ts';
import { DockerError } from './errors.ts';

type Obj = Record<string, unknown>;

const spec = (body: Obj, name: string | null = null, cpus = 4): ContainerSpec => {
  const s = containerSpecOf({ Image: 'busybox', ...body }, name, cpus);
  assert.ok(Value.Check(ContainerSpec, s), `a valid ContainerSpec: ${JSON.stringify([...Value.Errors(ContainerSpec, s)])}`);
  return s;
};
const host = (hostConfig: Obj): ContainerSpec => spec({ HostConfig: hostConfig });

test('the plain fields of a create body: image, process, labels, name', () => {
  const s = spec(
    {
      Cmd: ['sh', '-c', 'true'],
      Entrypoint: '/bin/tini',
      Env: ['A=1'],
      WorkingDir: '/w',
      User: '1000',
      Hostname: 'h',
      Tty: true,
      OpenStdin: true,
      Labels: { a: 'b' },
    },
    '/web',
  );
  assert.deepEqual(s, {
    image: 'busybox',
    name: 'web',
    process: {
      args: ['sh', '-c', 'true'],
      entrypoint: ['/bin/tini'],
      env: ['A=1'],
      cwd: '/w',
      user: '1000',
      hostname: 'h',
      tty: true,
      stdin: true,
    },
    resources: { memoryMiB: undefined, cpus: undefined },
    labels: { a: 'b' },
    restartPolicy: undefined,
    autoRemove: false,
    mounts: [],
    network: undefined,
    ports: [],
    publishAll: false,
  });
  assert.deepEqual(spec({ Entrypoint: [''] }).process?.entrypoint, [], "an entrypoint of one empty string clears the image's");
  assert.equal(spec({ Entrypoint: null }).process?.entrypoint, undefined);
  assert.deepEqual(spec({ WorkingDir: '', User: '', Hostname: '' }).process, {
    args: [],
    entrypoint: undefined,
    env: [],
    cwd: undefined,
    user: undefined,
    hostname: undefined,
    tty: false,
    stdin: false,
  });
});

test('Binds, Mounts and declared Volumes become structured mounts', () => {
  const cases: Array<[Obj, ContainerSpec['mounts']]> = [
    [{ Binds: ['data:/data'] }, [{ type: 'volume', name: 'data', destination: '/data', readOnly: false, anonymous: false }]],
    [{ Binds: ['/srv/www:/www:ro'] }, [{ type: 'bind', source: '/srv/www', destination: '/www', readOnly: true }]],
    [{ Binds: ['/cache'] }, [{ type: 'volume', name: '', destination: '/cache', readOnly: false, anonymous: true }]],
    [
      { Mounts: [{ Type: 'volume', Source: 'v', Target: '/v', ReadOnly: true }] },
      [{ type: 'volume', name: 'v', destination: '/v', readOnly: true }],
    ],
    [{ Mounts: [{ Type: 'bind', Source: '/h', Target: '/c' }] }, [{ type: 'bind', source: '/h', destination: '/c', readOnly: false }]],
  ];
  for (const [hc, mounts] of cases) assert.deepEqual(host(hc).mounts, mounts, JSON.stringify(hc));
  // A declared volume (the image's or the body's Volumes) is anonymous unless something is mounted there.
  assert.deepEqual(spec({ Volumes: { '/data': {}, '/new': {} }, HostConfig: { Binds: ['d:/data'] } }).mounts, [
    { type: 'volume', name: 'd', destination: '/data', readOnly: false, anonymous: false },
    { type: 'volume', name: '', destination: '/new', readOnly: false },
  ]);
});

test('PortBindings: ranges, "" host ports, protocols, PublishAllPorts', () => {
  const cases: Array<[Obj, ContainerSpec['ports']]> = [
    [{ '80/tcp': [{ HostIp: '', HostPort: '8080' }] }, [{ hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' }]],
    [{ '80/tcp': [{ HostPort: '' }] }, [{ hostIp: '', hostPort: 0, containerPort: 80, protocol: 'tcp' }]],
    [
      { '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }] },
      [{ hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, protocol: 'udp' }],
    ],
    [{ '80': [{ HostPort: '8000-8010' }] }, [{ hostIp: '', hostPort: 8000, containerPort: 80, protocol: 'tcp', hostPortEnd: 8010 }]],
    [
      { '80/tcp': [{ HostPort: '1' }, { HostPort: '2' }] },
      [1, 2].map((p) => ({ hostIp: '', hostPort: p, containerPort: 80, protocol: 'tcp' as const })),
    ],
    [{ '80/tcp': null }, []],
  ];
  for (const [pb, ports] of cases) assert.deepEqual(host({ PortBindings: pb }).ports, ports, JSON.stringify(pb));
  assert.equal(host({ PublishAllPorts: true }).publishAll, true);
});

test('the network: NetworkMode, or the first endpoint of NetworkingConfig; bridge and default are the host default', () => {
  const cases: Array<[Obj, string | undefined]> = [
    [{}, undefined],
    [{ HostConfig: { NetworkMode: 'default' } }, undefined],
    [{ HostConfig: { NetworkMode: 'bridge' } }, undefined],
    [{ HostConfig: { NetworkMode: 'none' } }, 'none'],
    [{ HostConfig: { NetworkMode: 'mynet' } }, 'mynet'],
    [{ HostConfig: { NetworkMode: 'default' }, NetworkingConfig: { EndpointsConfig: { backend: {} } } }, 'backend'],
  ];
  for (const [body, network] of cases) assert.equal(spec(body).network, network, JSON.stringify(body));
});

test('resources and restart policies', () => {
  assert.deepEqual(host({ Memory: 128 * 1024 * 1024, NanoCpus: 1.5e9 }).resources, { memoryMiB: 128, cpus: 2 });
  const policies: Array<[Obj | undefined, ContainerSpec['restartPolicy']]> = [
    [undefined, undefined],
    [{ Name: '' }, undefined],
    [{ Name: 'no' }, undefined],
    [{ Name: 'always' }, { name: 'always', maximumRetryCount: 0 }],
    [{ Name: 'unless-stopped' }, { name: 'unless-stopped', maximumRetryCount: 0 }],
    [{ Name: 'on-failure' }, { name: 'on-failure', maximumRetryCount: 0 }],
    [
      { Name: 'on-failure', MaximumRetryCount: 3 },
      { name: 'on-failure', maximumRetryCount: 3 },
    ],
  ];
  for (const [rp, want] of policies) assert.deepEqual(host({ RestartPolicy: rp }).restartPolicy, want, JSON.stringify(rp));
  assert.equal(host({ AutoRemove: true }).autoRemove, true);
});

test('what Boson refuses, with Docker statuses and messages', () => {
  const cases: Array<[Obj, number, RegExp]> = [
    [{ Image: '' }, 400, /^No image was specified/],
    [{ Image: 5 }, 400, /cannot unmarshal number into Go struct field container\.Config\.Image of type string/],
    [{ Cmd: 5 }, 400, /of type strslice\.StrSlice/],
    [{ Labels: { a: 1 } }, 400, /map\[string\]string/],
    [{ HostConfig: { Privileged: true } }, 501, /^--privileged is not supported by Boson \(a micro-VM has no host devices/],
    [{ HostConfig: { NetworkMode: 'host' } }, 501, /^network mode "host" is not supported by Boson/],
    [{ HostConfig: { NetworkMode: 'container:x' } }, 501, /^network mode "container:x"/],
    [{ HostConfig: { VolumesFrom: ['x'] } }, 501, /^--volumes-from is not supported/],
    [{ HostConfig: { Devices: [{}] } }, 501, /^--device is not supported/],
    [{ HostConfig: { PidMode: 'container:x' } }, 501, /^--pid container/],
    [{ HostConfig: { IpcMode: 'host' } }, 501, /^sharing the host's namespaces/],
    [{ HostConfig: { Mounts: [{ Type: 'tmpfs', Target: '/t' }] } }, 501, /^mount type "tmpfs" is not supported/],
    [{ HostConfig: { Mounts: [{ Type: 'volume', Target: '' }] } }, 400, /Target must not be empty/],
    [{ HostConfig: { Mounts: [{ Type: 'bind', Source: 'rel', Target: '/t' }] } }, 400, /mount path must be absolute/],
    [{ HostConfig: { Mounts: ['x'] } }, 400, /invalid mount: not an object/],
    [{ HostConfig: { Binds: ['a:b:c:d'] } }, 400, /invalid volume spec/],
    [{ HostConfig: { Binds: ['v:/d:zz'] } }, 400, /invalid mode/],
    [{ Volumes: { rel: {} } }, 400, /must be absolute/],
    [{ HostConfig: { PortBindings: { '80/sctp': [{ HostPort: '1' }] } } }, 400, /^invalid proto: sctp/],
    [{ HostConfig: { PortBindings: { '0/tcp': [{}] } } }, 400, /^invalid containerPort: 0/],
    [{ HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '9-3' }] } } }, 400, /^invalid hostPort: 9-3/],
    [{ HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '70000' }] } } }, 400, /^invalid hostPort/],
    [{ HostConfig: { PortBindings: { '80/tcp': [{ HostPort: '0-5' }] } } }, 400, /^invalid hostPort/],
    [{ HostConfig: { Memory: 1024 } }, 400, /^Minimum memory limit allowed is 64MB/],
    [{ HostConfig: { Memory: -1 } }, 400, /must not be negative/],
    [{ HostConfig: { NanoCpus: 9e9 } }, 400, /^range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available/],
    [
      { HostConfig: { RestartPolicy: { Name: 'always', MaximumRetryCount: 2 } } },
      400,
      /maximum retry count can only be used with 'on-failure'/,
    ],
    [{ HostConfig: { RestartPolicy: { Name: 'sometimes' } } }, 400, /^invalid restart policy: sometimes/],
    [
      { HostConfig: { AutoRemove: true, RestartPolicy: { Name: 'always' } } },
      400,
      /can't create 'AutoRemove' container with restart policy/,
    ],
  ];
  for (const [body, status, message] of cases) {
    assert.throws(
      () => containerSpecOf({ Image: 'busybox', ...body }, null, 4),
      (err: unknown) => err instanceof DockerError && err.status === status && message.test(err.message),
      JSON.stringify(body),
    );
  }
  assert.throws(
    () => containerSpecOf({ Image: 'busybox' }, 'bad name', 4),
    (err: unknown) => err instanceof DockerError && err.status === 400 && /^Invalid container name \(bad name\)/.test(err.message),
  );
  assert.equal(checkContainerName('/ok.name-1'), 'ok.name-1');
});

/** A container as the port shows it. */
function containerFixture(over: Partial<Container> = {}): Container {
  return {
    id: 'c0ffee'.padEnd(64, '0'),
    name: 'web',
    image: 'docker.io/library/busybox:latest',
    imageId: 'ab'.repeat(32),
    created: '2024-01-02T03:04:05.000Z',
    config: {
      argv: ['/bin/tini', 'sh', '-c', 'sleep 1'],
      env: ['PATH=/bin'],
      cwd: '/',
      user: '0',
      hostname: 'c0ffee',
      tty: false,
      openStdin: true,
      labels: { tier: 'front' },
    },
    resources: { memoryMiB: 256, cpus: 1 },
    autoRemove: false,
    restartPolicy: { name: 'on-failure', maximumRetryCount: 2 },
    restartCount: 1,
    state: 'running',
    vmPid: 4242,
    exitCode: null,
    startedAt: '2024-01-02T03:04:06.000Z',
    finishedAt: null,
    error: null,
    mounts: [
      { type: 'volume', name: 'data', destination: '/data', readOnly: false, anonymous: false },
      { type: 'volume', name: 'anon1', destination: '/cache', readOnly: false, anonymous: true },
      { type: 'bind', source: '/srv', destination: '/srv', readOnly: true },
    ],
    network: 'bridge',
    ports: [{ hostIp: '', hostPort: 0, containerPort: 80, protocol: 'tcp' }],
    endpoint: {
      network: 'bridge',
      address: '10.88.0.2',
      gateway: '10.88.0.1',
      mac: '02:00:00:00:00:02',
      ports: [{ hostIp: '', hostPort: 32768, containerPort: 80, protocol: 'tcp' }],
    },
    ...over,
  };
}

const volumePath = (name: string): string => `/var/lib/boson/volumes/${name}.ext4`;

test('docker ps: a Container as a summary', () => {
  const now = Date.parse('2024-01-02T03:04:16.000Z');
  const s = containerSummary(containerFixture(), volumePath, now);
  assert.equal(s.Id, 'c0ffee'.padEnd(64, '0'));
  assert.deepEqual(s.Names, ['/web']);
  assert.equal(s.ImageID, `sha256:${'ab'.repeat(32)}`);
  assert.equal(s.Command, '/bin/tini sh -c sleep 1');
  assert.equal(s.Created, Math.floor(Date.parse('2024-01-02T03:04:05.000Z') / 1000));
  assert.equal(s.Status, 'Up 10 seconds');
  assert.equal(s.State, 'running');
  assert.deepEqual(s.Ports, [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 32768, Type: 'tcp' }]);
  assert.deepEqual(s.Labels, { tier: 'front' });
  assert.deepEqual((s.Mounts as Obj[])[0], {
    Type: 'volume',
    Name: 'data',
    Source: volumePath('data'),
    Destination: '/data',
    Driver: 'local',
    Mode: '',
    RW: true,
    Propagation: '',
  });
  assert.deepEqual((s.Mounts as Obj[])[2], {
    Type: 'bind',
    Source: '/srv',
    Destination: '/srv',
    Mode: 'ro',
    RW: false,
    Propagation: 'rprivate',
  });
  assert.deepEqual(Object.keys((s.NetworkSettings as { Networks: Obj }).Networks), ['bridge']);
  const exited = containerSummary(
    containerFixture({ state: 'exited', exitCode: 3, finishedAt: '2024-01-02T03:03:16.000Z', endpoint: null }),
    volumePath,
    now,
  );
  assert.equal(exited.Status, 'Exited (3) About a minute ago');
  assert.deepEqual(exited.Ports, []);
  assert.equal(
    containerSummary(containerFixture({ pausedReason: 'disk full' }), volumePath, now).Status,
    'Up 10 seconds (Paused: host disk full)',
  );
});

test('docker inspect: a Container as an inspect document', () => {
  const doc = containerInspect(containerFixture(), ['/bin/tini'], volumePath) as Record<string, Obj & Record<string, unknown>>;
  assert.equal(doc.Path, '/bin/tini');
  assert.deepEqual(doc.Args, ['sh', '-c', 'sleep 1']);
  assert.equal(doc.Name, '/web');
  assert.equal(doc.RestartCount, 1);
  assert.deepEqual(doc.State, {
    Status: 'running',
    Running: true,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 4242,
    ExitCode: 0,
    Error: '',
    StartedAt: '2024-01-02T03:04:06.000Z',
    FinishedAt: '0001-01-01T00:00:00Z',
  });
  assert.deepEqual(doc.Config!.Entrypoint, ['/bin/tini'], 'the image entrypoint is split off argv');
  assert.deepEqual(doc.Config!.Cmd, ['sh', '-c', 'sleep 1']);
  assert.equal(doc.Config!.User, '', 'root is shown as Docker shows the default user');
  assert.deepEqual(doc.Config!.Volumes, { '/data': {}, '/cache': {}, '/srv': {} });
  assert.deepEqual(doc.HostConfig!.Binds, ['data:/data', '/srv:/srv:ro'], 'anonymous volumes are not binds');
  assert.deepEqual(doc.HostConfig!.PortBindings, { '80/tcp': [{ HostIp: '', HostPort: '' }] });
  assert.deepEqual(doc.HostConfig!.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 2 });
  assert.equal(doc.HostConfig!.NetworkMode, 'bridge');
  assert.equal(doc.HostConfig!.Memory, 256 * 1024 * 1024);
  assert.equal(doc.HostConfig!.NanoCpus, 1e9);
  assert.deepEqual((doc.NetworkSettings!.Ports as Obj)['80/tcp'], [{ HostIp: '0.0.0.0', HostPort: '32768' }]);
  assert.equal(doc.NetworkSettings!.IPAddress, '10.88.0.2');
  // Without the image (removed since), argv is all Cmd.
  const orphan = containerInspect(containerFixture(), null, volumePath) as Record<string, Obj>;
  assert.equal(orphan.Config!.Entrypoint, null);
  assert.deepEqual(orphan.Config!.Cmd, ['/bin/tini', 'sh', '-c', 'sleep 1']);
  const paused = containerInspect(containerFixture({ pausedReason: 'disk full' }), null, volumePath) as Record<string, Obj>;
  assert.equal(paused.State!.Status, 'paused');
  assert.equal(paused.State!.Paused, true);
  const exited = containerInspect(
    containerFixture({ state: 'exited', exitCode: 137, vmPid: null, network: 'none', endpoint: null }),
    null,
    volumePath,
  ) as Record<string, Obj>;
  assert.equal(exited.State!.Pid, 0);
  assert.equal(exited.State!.ExitCode, 137);
  assert.equal(exited.HostConfig!.NetworkMode, 'none');
  assert.equal(exited.NetworkSettings!.IPAddress, '');
});

test('ps filters: each key any value, every key', () => {
  const c = containerFixture();
  const f = (entries: Array<[string, string[]]>): boolean =>
    matchesFilters(c, new Map(entries), (ref) => (ref === 'myimage' ? `sha256:${'ab'.repeat(32)}` : null));
  const cases: Array<[Array<[string, string[]]>, boolean]> = [
    [[], true],
    [[['status', ['running']]], true],
    [[['status', ['exited', 'running']]], true],
    [[['status', ['exited']]], false],
    [[['name', ['we']]], true],
    [[['name', ['/web']]], true],
    [[['name', ['^db$']]], false],
    [[['id', ['c0ffee']]], true],
    [[['id', ['beef']]], false],
    [[['label', ['tier']]], true],
    [[['label', ['tier=front']]], true],
    [[['label', ['tier=back']]], false],
    [[['ancestor', ['busybox:latest']]], true],
    [[['ancestor', ['docker.io/library/busybox:latest']]], true],
    [[['ancestor', ['myimage']]], true],
    [[['ancestor', ['alpine']]], false],
    [[['exited', ['0']]], false],
    [[['volume', ['data']]], true],
    [[['volume', ['/srv']]], true],
    [[['volume', ['other']]], false],
    [
      [
        ['status', ['running']],
        ['label', ['tier=back']],
      ],
      false,
    ],
    [[['status', []]], true],
  ];
  for (const [entries, want] of cases) assert.equal(f(entries), want, JSON.stringify(entries));
  assert.equal(
    matchesFilters(containerFixture({ state: 'exited', exitCode: 2 }), new Map([['exited', ['2']]]), () => null),
    true,
  );
  for (const bad of [[['status', ['sleeping']]], [['exited', ['x']]], [['name', ['(']]]] as Array<Array<[string, string[]]>>) {
    assert.throws(
      () => f(bad),
      (err: unknown) => err instanceof DockerError && err.status === 400 && /^invalid filter/.test(err.message),
      JSON.stringify(bad),
    );
  }
});

const NET_ID = 'fe'.repeat(32);
const nets = lookupOf([
  { id: 'b'.repeat(64), name: 'bridge', subnet: '10.88.0.0/16', builtin: true },
  { id: NET_ID, name: 'app_default', subnet: '10.89.3.0/24', builtin: false },
]);
const onApp = (over: Partial<Container> = {}): Container =>
  containerFixture({
    network: 'app_default',
    aliases: ['web'],
    endpoint: { network: NET_ID, address: '10.89.3.2', gateway: '10.89.3.1', mac: '02:b0:0a:59:03:02', ports: [] },
    ...over,
  });

test('NetworkSettings: keyed by the network name, with its id, prefix length, aliases (short id below 1.45) and DNSNames (from 1.44)', () => {
  const shortId = 'c0ffee000000';
  const doc = containerInspect(onApp(), null, volumePath, nets, '1.47') as Record<string, Obj>;
  const ns = doc.NetworkSettings as Obj & { Networks: Record<string, Obj> };
  assert.deepEqual(Object.keys(ns.Networks), ['app_default']);
  assert.deepEqual(ns.Networks.app_default, {
    IPAMConfig: null,
    Links: null,
    Aliases: ['web'],
    MacAddress: '02:b0:0a:59:03:02',
    DriverOpts: null,
    NetworkID: NET_ID,
    EndpointID: endpointId(onApp().id, NET_ID),
    Gateway: '10.89.3.1',
    IPAddress: '10.89.3.2',
    IPPrefixLen: 24,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: ['web', shortId],
  });
  assert.equal(ns.IPPrefixLen, 24);
  assert.equal(ns.Gateway, '10.89.3.1');
  assert.equal(ns.MacAddress, '02:b0:0a:59:03:02');
  assert.equal((doc.HostConfig as Obj).NetworkMode, 'app_default');
  const v141 = (containerInspect(onApp(), null, volumePath, nets, '1.41') as Record<string, Obj & { Networks: Record<string, Obj> }>)
    .NetworkSettings!.Networks.app_default!;
  assert.deepEqual(v141.Aliases, [shortId, 'web']);
  assert.equal('DNSNames' in v141, false, 'no DNSNames before API 1.44');
  // On the default bridge: no aliases, no DNS names, as Docker's default bridge.
  const bridge = (
    containerInspect(containerFixture(), null, volumePath, nets, '1.41') as Record<string, Obj & { Networks: Record<string, Obj> }>
  ).NetworkSettings!.Networks;
  assert.deepEqual(Object.keys(bridge), ['bridge']);
  assert.equal(bridge.bridge!.Aliases, null);
  assert.equal(bridge.bridge!.IPPrefixLen, 16);
  // A created container shows the network it will join, with no address yet; on 'none' it shows none.
  const created = (
    containerInspect(onApp({ state: 'created', endpoint: null, ipv4Address: '10.89.3.9' }), null, volumePath, nets, '1.47') as Record<
      string,
      Obj & { Networks: Record<string, Obj> }
    >
  ).NetworkSettings!.Networks;
  assert.deepEqual(
    [created.app_default!.NetworkID, created.app_default!.IPAddress, created.app_default!.IPPrefixLen, created.app_default!.EndpointID],
    [NET_ID, '', 0, ''],
  );
  assert.deepEqual(created.app_default!.IPAMConfig, { IPv4Address: '10.89.3.9' });
  const none = (
    containerInspect(onApp({ state: 'created', endpoint: null, network: 'none', aliases: undefined }), null, volumePath, nets) as Record<
      string,
      Obj
    >
  ).NetworkSettings as Obj;
  assert.deepEqual(none.Networks, {});
  const summary = containerSummary(onApp(), volumePath, Date.now(), nets, '1.47') as Obj & {
    NetworkSettings: { Networks: Obj };
    HostConfig: Obj;
  };
  assert.deepEqual(Object.keys(summary.NetworkSettings.Networks), ['app_default']);
  assert.equal(summary.HostConfig.NetworkMode, 'app_default');
});

test('ps filters: several labels must all match; network by name or id', () => {
  const c = onApp();
  const f = (entries: Array<[string, string[]]>, x = c): boolean => matchesFilters(x, new Map(entries), () => null, nets);
  assert.equal(f([['label', ['tier=front', 'tier']]]), true);
  assert.equal(f([['label', ['tier=front', 'other']]]), false, 'every label filter must match');
  assert.equal(f([['network', ['app_default']]]), true);
  assert.equal(f([['network', [NET_ID]]]), true);
  assert.equal(f([['network', ['bridge']]]), false);
  assert.equal(
    f([['network', ['app_default']]], onApp({ state: 'created', endpoint: null })),
    true,
    'a created container by the network it will join',
  );
  assert.equal(f([['network', ['app_default']]], onApp({ state: 'created', endpoint: null, network: 'none' })), false);
});

test('create: EndpointsConfig aliases and a static IPv4 address; more than one endpoint is refused', () => {
  const s = spec({
    NetworkingConfig: { EndpointsConfig: { app_default: { Aliases: ['web', 'web'], IPAMConfig: { IPv4Address: '10.89.3.9' } } } },
  });
  assert.deepEqual([s.network, s.aliases, s.ipv4Address], ['app_default', ['web'], '10.89.3.9']);
  assert.throws(
    () => spec({ NetworkingConfig: { EndpointsConfig: { a: {}, b: {} } } }),
    (err: unknown) => err instanceof DockerError && err.status === 400 && /one network card/.test(err.message),
  );
});

test("links: Docker's three forms, from HostConfig.Links and the endpoint's Links, into the spec", () => {
  assert.deepEqual(parseLink('db:alias'), { container: 'db', alias: 'alias' });
  assert.deepEqual(parseLink('db'), { container: 'db', alias: 'db' });
  assert.deepEqual(parseLink('/db:/web/alias'), { container: 'db', alias: 'alias' });
  for (const bad of ['', 'a:b:c', ':x', 'x:']) assert.throws(() => parseLink(bad), DockerError, bad);
  const spec = containerSpecOf(
    {
      Image: 'busybox',
      HostConfig: { NetworkMode: 'net', Links: ['db:d'] },
      NetworkingConfig: { EndpointsConfig: { net: { Links: ['cache'] } } },
    },
    null,
    2,
  );
  assert.deepEqual(spec.links, [
    { container: 'db', alias: 'd' },
    { container: 'cache', alias: 'cache' },
  ]);
  assert.ok(Value.Check(ContainerSpec, spec));
});
