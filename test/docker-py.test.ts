/**
 * Boson through docker-py, the Python SDK (Debian's python3-docker 5.0.3, run with Debian's /usr/bin/python3):
 * test/docker-py/checks.py holds groups of self-checking calls (containers, exec, attach, archives, stats, top,
 * rename/update, kill, remove -v, images and a pull from a loopback registry, networks, volumes, events, df). Each
 * group runs in its own Python process against this suite's daemon; each of its JSON results is a node subtest,
 * so the summary counts them. Checks that Boson fails today are listed once, in KNOWN_FAILURES, with the request
 * and the answer Docker gives: they run as to-dos and say so when they start passing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { BUSYBOX_LAYOUT, collect, useDaemonHost } from './helpers.ts';
import { pushLayout, startRegistry, type TestRegistry } from './registry-fixture.ts';

/** Debian's interpreter: python3-docker is installed for it (a pyenv python3 first on PATH may carry another docker-py). */
const PYTHON = '/usr/bin/python3';
const CHECKS = path.join(PACKAGE_ROOT, 'test', 'docker-py', 'checks.py');

/**
 * Checks Boson fails today, with why: the docker-py call, its request, Boson's answer and Docker's (API v1.50
 * reference). Remove an entry when its fix lands (the check then says it passes).
 */
const KNOWN_FAILURES: Record<string, string> = {
  'networks.connect_disconnect_running':
    'network.connect(running_container) / disconnect: POST /networks/{id}/connect answers 409 "cannot connect running container … to network …: a Boson micro-VM has one network card, chosen when it boots, and a running micro-VM cannot have one hot-plugged; stop the container, connect it, then start it" (disconnect likewise); Docker answers 200 and hot-plugs a second endpoint',
};

const { host } = useDaemonHost();
const sock = (): string => `${host().env.BOSON_RUN_DIR}/docker.sock`;
let registry: TestRegistry;

/** The groups of checks.py (listed when the suite loads, so each is a test). */
function groups(): string[] {
  try {
    return execFileSync(PYTHON, [CHECKS, '--list'], { encoding: 'utf8' }).trim().split('\n');
  } catch (err) {
    throw new Error(`${PYTHON} cannot run ${CHECKS} (Debian's python3-docker is installed by scripts/setup.sh): ${(err as Error).message}`);
  }
}

interface CheckResult {
  check: string;
  ok: boolean;
  error: string;
}

const seen = new Set<string>();

before(async () => {
  registry = await startRegistry();
  await pushLayout(BUSYBOX_LAYOUT, 'localhost/busybox:latest', `${registry.host}/tools/box:v1`);
});
after(async () => {
  await registry?.stop();
});

describe('docker-py 5.0.3 against the Docker API', () => {
  const names = groups();
  for (const group of names) {
    test(group, { timeout: 600_000 }, async (t) => {
      const child = spawn(PYTHON, [CHECKS, group], {
        env: { ...process.env, BOSON_DOCKER_SOCK: sock(), BOSON_TEST_REGISTRY: registry.host },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const r = await collect(child, undefined, 540_000, [CHECKS, group]);
      const lines = r.stdout
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      const results = lines.map((l) => JSON.parse(l) as CheckResult);
      assert.ok(results.length > 0, `no result from ${group}: exit ${r.code}, stderr: ${r.stderr}`);
      for (const res of results) {
        seen.add(res.check);
        const todo = KNOWN_FAILURES[res.check];
        await t.test(res.check, todo ? { todo } : {}, (sub) => {
          if (!res.ok) assert.fail(res.error);
          if (todo) sub.diagnostic(`${res.check} passes now: remove it from KNOWN_FAILURES`);
        });
      }
      const failures = results.filter((x) => !x.ok);
      assert.equal(r.code, failures.length > 0 ? 1 : 0, `exit status of ${group} (stderr: ${r.stderr})`);
      assert.equal(r.stderr.trim(), '', 'nothing on stderr (clean-up failures are printed there)');
    });
  }
  test('every known failure names a check of the suite', (t) => {
    if (seen.size === 0) return t.skip('no group ran');
    assert.deepEqual(
      Object.keys(KNOWN_FAILURES).filter((k) => !seen.has(k)),
      [],
      'entries of KNOWN_FAILURES that no check reported',
    );
  });
});
