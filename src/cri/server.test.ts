import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import type { PodMachine } from '../machine/port/index.ts';
import { criHandlers, criServices, REFUSED_RPCS } from './index.ts';

test('every RPC of runtime.v1 is either served or refused with UNIMPLEMENTED/FAILED_PRECONDITION and a reason', () => {
  const { RuntimeService, ImageService } = criServices();
  const handlers = criHandlers({ pods: {} } as unknown as PodMachine, { version: '0.1.0', imageFsDir: '/x' });
  const rpcs = [...Object.keys(RuntimeService.service), ...Object.keys(ImageService.service)];
  assert.ok(rpcs.length >= 40, `the proto has ${rpcs.length} RPCs`);
  for (const name of rpcs) {
    const served = name in handlers;
    const refused = name in REFUSED_RPCS;
    assert.ok(served !== refused, `${name}: served ${served}, refused ${refused} (exactly one of them)`);
    if (refused) {
      assert.ok([grpc.status.UNIMPLEMENTED, grpc.status.FAILED_PRECONDITION].includes(REFUSED_RPCS[name]!.status));
      assert.ok(REFUSED_RPCS[name]!.why.length > 20, `${name} says why`);
    }
  }
  for (const name of [...Object.keys(handlers), ...Object.keys(REFUSED_RPCS)])
    assert.ok(rpcs.includes(name), `${name} is an RPC of the proto`);
});
