import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { isBosonError } from '../../common/index.ts';
import { holdPort, holdPorts, parseExposedPort, parsePortSpec, publishAllPorts } from './ports.ts';

const tcp = (hostIp: string, hostPort: number, containerPort: number) => ({ hostIp, hostPort, containerPort, protocol: 'tcp' as const });

test('parsePortSpec: Docker forms', () => {
  assert.deepEqual(parsePortSpec('80'), [tcp('0.0.0.0', 0, 80)]);
  assert.deepEqual(parsePortSpec('8080:80'), [tcp('0.0.0.0', 8080, 80)]);
  assert.deepEqual(parsePortSpec('127.0.0.1:8080:80'), [tcp('127.0.0.1', 8080, 80)]);
  assert.deepEqual(parsePortSpec('127.0.0.1::80'), [tcp('127.0.0.1', 0, 80)]);
  assert.deepEqual(parsePortSpec('53:53/udp'), [{ hostIp: '0.0.0.0', hostPort: 53, containerPort: 53, protocol: 'udp' }]);
  assert.deepEqual(parsePortSpec('80/TCP'), [tcp('0.0.0.0', 0, 80)]);
  assert.deepEqual(parsePortSpec('8000-8002:80-82'), [tcp('0.0.0.0', 8000, 80), tcp('0.0.0.0', 8001, 81), tcp('0.0.0.0', 8002, 82)]);
  assert.deepEqual(parsePortSpec('80-81'), [tcp('0.0.0.0', 0, 80), tcp('0.0.0.0', 0, 81)]);
  assert.deepEqual(parsePortSpec('8000-8010:80'), [{ ...tcp('0.0.0.0', 8000, 80), hostPortEnd: 8010 }]);
  assert.deepEqual(parsePortSpec('[::1]:8080:80'), [tcp('::1', 8080, 80)]);
});

test('parsePortSpec: bad specs are INVALID_ARGUMENT with Docker-like messages', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /no port specified/],
    ['8080:', /no port specified: 8080:<empty>/],
    ['abc', /invalid containerPort: abc/],
    ['0', /invalid containerPort: 0/],
    ['70000:80', /invalid hostPort: 70000/],
    ['x:80', /invalid hostPort: x/],
    ['8000-8001:80-82', /invalid ranges specified for container and host Ports: 80-82 and 8000-8001/],
    ['80/sctp', /invalid proto: sctp/],
    ['80/icmp', /invalid proto: icmp/],
    ['1.2.3:80:80', /invalid IP address: 1.2.3/],
    ['90-80', /invalid containerPort: 90-80/],
    ['a:b:c:d', /invalid port specification/],
  ];
  for (const [spec, re] of cases) {
    assert.throws(
      () => parsePortSpec(spec),
      (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT') && re.test((e as Error).message),
      spec,
    );
  }
});

test('-P: exposed ports to random host ports', () => {
  assert.deepEqual(parseExposedPort('53/udp'), [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 53, protocol: 'udp' }]);
  assert.deepEqual(publishAllPorts(['80/tcp', '443']), [tcp('0.0.0.0', 0, 80), tcp('0.0.0.0', 0, 443)]);
});

test('holdPort: 0 becomes a free port; a bound port is PORT_IN_USE; a range takes its first free port; all-or-nothing', async () => {
  const any = await holdPort(tcp('127.0.0.1', 0, 80));
  assert.ok(any.binding.hostPort > 0);
  await assert.rejects(
    holdPort(tcp('127.0.0.1', any.binding.hostPort, 80)),
    (e: unknown) => isBosonError(e, 'PORT_IN_USE') && /Bind for 127.0.0.1:\d+ failed: port is already allocated/.test((e as Error).message),
  );
  // Another program holding the port (not us) is found the same way.
  const other = net.createServer();
  await new Promise<void>((r) => other.listen(0, '0.0.0.0', r));
  const otherPort = (other.address() as net.AddressInfo).port;
  await assert.rejects(holdPort(tcp('0.0.0.0', otherPort, 80)), (e: unknown) => isBosonError(e, 'PORT_IN_USE'));
  // UDP and TCP ports are separate spaces.
  const udp = await holdPort({ ...tcp('0.0.0.0', otherPort, 53), protocol: 'udp' });
  await udp.release();
  const base = any.binding.hostPort;
  const ranged = await holdPort({ ...tcp('127.0.0.1', base, 80), hostPortEnd: base + 5 });
  assert.notEqual(ranged.binding.hostPort, base);
  assert.equal(ranged.binding.hostPortEnd, undefined);
  // all or nothing: the first binding is released when the second fails
  await assert.rejects(holdPorts([tcp('127.0.0.1', 0, 1), tcp('0.0.0.0', otherPort, 2)]), (e: unknown) => isBosonError(e, 'PORT_IN_USE'));
  await assert.rejects(holdPort(tcp('192.0.2.77', 0, 80)), (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT'));
  await Promise.all([any.release(), ranged.release(), new Promise((r) => other.close(r))]);
  const again = await holdPort(tcp('127.0.0.1', base, 80));
  await again.release();
});
