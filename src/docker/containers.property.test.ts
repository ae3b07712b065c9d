/**
 * containerSpecOf over generated create bodies (fast-check): any JSON object either becomes a ContainerSpec the
 * port's schema accepts, or is refused with a DockerError of status 4xx or 501 — never another exception, never a
 * spec the machine would have to re-check for shape.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Value } from '@sinclair/typebox/value';
import { ContainerSpec } from '../machine/port/index.ts';
import { containerSpecOf } from './containers.ts';
import { DockerError } from './errors.ts';

/** Holds when `body` translates to a valid spec or is refused as a client error. */
function translatesOrRefuses(body: Record<string, unknown>, name: string | null, hostCpus: number): boolean {
  let spec: ContainerSpec;
  try {
    spec = containerSpecOf(body, name, hostCpus);
  } catch (err) {
    if (!(err instanceof DockerError)) throw new Error(`not a DockerError: ${String(err)}`, { cause: err });
    if (!((err.status >= 400 && err.status < 500) || err.status === 501)) throw new Error(`status ${err.status}: ${err.message}`);
    return true;
  }
  const errors = [...Value.Errors(ContainerSpec, spec)];
  if (errors.length > 0) throw new Error(`not a valid ContainerSpec: ${JSON.stringify(errors.map((e) => `${e.path}: ${e.message}`))}`);
  return true;
}

const json = fc.jsonValue({ maxDepth: 2 });
/** A plausible value for a field, or any JSON at all. */
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: json });
const number = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, 1, 64 * 1024 * 1024, 1e9, 1.5e9, -1),
);
const strings = fc.array(fc.string(), { maxLength: 4 });

const portKey = fc.oneof(
  fc.constantFrom('80/tcp', '53/udp', '8080', '0/tcp', '70000/tcp', '80/sctp', 'x/tcp', '80/tcp/x', ''),
  fc.string(),
);
const hostPort = fc.oneof(
  fc.constantFrom('', '0', '8080', '8000-8010', '9-3', '70000', '0-5', '65535-65535', '1-70000', 'abc', '-'),
  fc.integer().map(String),
  fc.string(),
);
const binding = fc.record({ HostIp: maybe(fc.constantFrom('', '127.0.0.1', '::1')), HostPort: maybe(hostPort) }, { requiredKeys: [] });
const bind = fc.oneof(
  fc.constantFrom('data:/data', '/srv:/srv:ro', '/x', 'bad name:/d', 'a:b:c:d', 'v:/', 'v:/d:zz', ':/d', 'v:rel', '/a:/b:rw', '/'),
  fc.string(),
);
const mount = fc.record(
  {
    Type: maybe(fc.constantFrom('volume', 'bind', 'tmpfs', 'npipe')),
    Source: maybe(fc.constantFrom('', 'data', '/srv', 'rel/dir', '/')),
    Target: maybe(fc.constantFrom('', '/data', 'rel', '/')),
    ReadOnly: maybe(fc.boolean()),
  },
  { requiredKeys: [] },
);
const mode = fc.constantFrom('', 'host', 'container:x', 'private', 'shareable');
const hostConfig = fc.record(
  {
    Binds: maybe(fc.array(bind, { maxLength: 3 })),
    Mounts: maybe(fc.array(maybe(mount), { maxLength: 3 })),
    PortBindings: maybe(fc.dictionary(portKey, maybe(fc.array(maybe(binding), { maxLength: 3 })), { maxKeys: 3 })),
    PublishAllPorts: maybe(fc.boolean()),
    NetworkMode: maybe(fc.constantFrom('', 'default', 'bridge', 'host', 'container:x', 'none', 'mynet')),
    Privileged: maybe(fc.boolean()),
    VolumesFrom: maybe(strings),
    Devices: maybe(fc.array(json, { maxLength: 2 })),
    PidMode: maybe(mode),
    IpcMode: maybe(mode),
    UTSMode: maybe(mode),
    Memory: maybe(number),
    NanoCpus: maybe(number),
    RestartPolicy: maybe(
      fc.record(
        {
          Name: maybe(fc.constantFrom('', 'no', 'always', 'unless-stopped', 'on-failure', 'sometimes')),
          MaximumRetryCount: maybe(fc.oneof(fc.integer({ min: -2, max: 5 }), number)),
        },
        { requiredKeys: [] },
      ),
    ),
    AutoRemove: maybe(fc.boolean()),
  },
  { requiredKeys: [] },
);
const createBody = fc.record(
  {
    Image: maybe(fc.constantFrom('busybox', 'docker.io/library/alpine:3', '')),
    Cmd: maybe(fc.oneof(strings, fc.string())),
    Entrypoint: maybe(fc.oneof(strings, fc.string(), fc.constant([''] as string[]))),
    Env: maybe(strings),
    WorkingDir: maybe(fc.string()),
    User: maybe(fc.string()),
    Hostname: maybe(fc.string()),
    Tty: maybe(fc.boolean()),
    OpenStdin: maybe(fc.boolean()),
    Labels: maybe(fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 })),
    Volumes: maybe(fc.dictionary(fc.oneof(fc.constantFrom('/data', '', 'rel', '/'), fc.string()), fc.constant({}), { maxKeys: 3 })),
    HostConfig: maybe(hostConfig),
    NetworkingConfig: maybe(
      fc.record({ EndpointsConfig: maybe(fc.dictionary(fc.string(), fc.constant({}), { maxKeys: 2 })) }, { requiredKeys: [] }),
    ),
  },
  { requiredKeys: [] },
);
const containerName = fc.option(fc.oneof(fc.constantFrom('web', '/web', 'a.b-c_d', 'bad name', '', '-x'), fc.string()), { nil: null });

test('property: a Docker-shaped create body becomes a valid ContainerSpec or a 4xx/501 DockerError', () => {
  fc.assert(
    fc.property(createBody, containerName, fc.integer({ min: 1, max: 64 }), (body, name, cpus) =>
      translatesOrRefuses(body as Record<string, unknown>, name, cpus),
    ),
    { numRuns: 3000 },
  );
});

test('property: any JSON object at all becomes a valid ContainerSpec or a 4xx/501 DockerError', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 })), containerName, (body, name) =>
      translatesOrRefuses(body, name, 4),
    ),
    { numRuns: 2000 },
  );
});

test('property: an accepted body keeps what it asked for (image, args, labels)', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1 }), strings, fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), (image, cmd, labels) => {
      const spec = containerSpecOf({ Image: image, Cmd: cmd, Labels: labels }, null, 4);
      assert.equal(spec.image, image);
      assert.deepEqual(spec.process?.args, cmd);
      assert.deepEqual(spec.labels, labels);
    }),
    { numRuns: 500 },
  );
});
