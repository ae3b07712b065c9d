import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBosonError } from '../../common/index.ts';
import {
  allocateAddress,
  cidrOverlap,
  formatCidr,
  formatIPv4,
  parseIPv4,
  parseRouteDst,
  parseSubnet,
  pickSubnet,
  validateGateway,
} from './ipam.ts';

test('CIDR parsing and validation', () => {
  assert.equal(formatCidr(parseSubnet('10.88.0.0/16')), '10.88.0.0/16');
  assert.equal(parseIPv4('10.0.0.256'), undefined);
  assert.equal(parseIPv4('010.0.0.1'), undefined);
  assert.equal(formatIPv4(parseIPv4('255.254.0.1')!), '255.254.0.1');
  assert.throws(
    () => parseSubnet('10.88.0.1/16'),
    (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT') && /it should be 10.88.0.0\/16/.test((e as Error).message),
  );
  assert.throws(
    () => parseSubnet('10.88.0.0/31'),
    (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => parseSubnet('nope'),
    (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  const s = parseSubnet('10.1.2.0/24');
  assert.equal(validateGateway(s, '10.1.2.254'), parseIPv4('10.1.2.254'));
  for (const bad of ['10.1.2.0', '10.1.2.255', '10.1.3.1', 'x'])
    assert.throws(
      () => validateGateway(s, bad),
      (e: unknown) => isBosonError(e, 'INVALID_ARGUMENT'),
      bad,
    );
});

test('overlap detection', () => {
  assert.ok(cidrOverlap(parseSubnet('10.0.0.0/8'), parseSubnet('10.200.1.0/24')));
  assert.ok(cidrOverlap(parseSubnet('10.200.1.0/24'), parseSubnet('10.0.0.0/8')));
  assert.ok(!cidrOverlap(parseSubnet('10.200.1.0/24'), parseSubnet('10.200.2.0/24')));
  assert.deepEqual(parseRouteDst('192.168.1.7'), { base: parseIPv4('192.168.1.7'), prefix: 32 });
  assert.equal(parseRouteDst('default'), undefined);
});

test('pickSubnet skips taken subnets and routes, and is exhausted at the end of the pool', () => {
  const pool = { base: parseIPv4('10.90.0.0')!, end: parseIPv4('10.90.2.255')!, prefix: 24 };
  assert.equal(formatCidr(pickSubnet([], pool)), '10.90.0.0/24');
  assert.equal(formatCidr(pickSubnet([parseSubnet('10.90.0.0/24'), parseRouteDst('10.90.1.9')!], pool)), '10.90.2.0/24');
  assert.throws(
    () => pickSubnet([parseSubnet('10.90.0.0/16')], pool),
    (e: unknown) => isBosonError(e, 'ADDRESS_EXHAUSTED'),
  );
});

test('allocateAddress: skips gateway, network and broadcast, continues after the last one, wraps, exhausts', () => {
  const s = parseSubnet('10.5.0.0/29'); // hosts .1-.6
  const gw = parseIPv4('10.5.0.1')!;
  const used = new Set<number>();
  const got: string[] = [];
  let last = 0;
  for (let i = 0; i < 5; i++) {
    last = allocateAddress(s, gw, used, last);
    used.add(last);
    got.push(formatIPv4(last));
  }
  assert.deepEqual(got, ['10.5.0.2', '10.5.0.3', '10.5.0.4', '10.5.0.5', '10.5.0.6']);
  assert.throws(
    () => allocateAddress(s, gw, used, last),
    (e: unknown) => isBosonError(e, 'ADDRESS_EXHAUSTED') && /10.5.0.0\/29/.test((e as Error).message),
  );
  used.delete(parseIPv4('10.5.0.3')!);
  used.delete(parseIPv4('10.5.0.5')!);
  // release .3 and .5: the next lease after .6 wraps to .3 (not the just-released .5 first)
  assert.equal(formatIPv4(allocateAddress(s, gw, used, last)), '10.5.0.3');
  // a released address is not reused at once when others are free
  assert.equal(formatIPv4(allocateAddress(s, gw, used, parseIPv4('10.5.0.4')!)), '10.5.0.5');
});
