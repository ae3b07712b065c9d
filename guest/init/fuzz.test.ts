/**
 * Fuzzes boson-init's protocol parser (frame headers, SPEC and EXEC records, NET_IF and MOUNT texts: proto.c) with
 * libFuzzer under ASan and UBSan for a bounded time (BOSON_FUZZ_SECONDS, default 15) from the fixed seed corpus in
 * fuzz/corpus, and fails on any crash, sanitizer report, leak or timeout. The harness is `make -C guest/init fuzz`
 * (fuzz/fuzz_proto.c); it is built into a scratch directory, not build/guest. Skipped, saying why, when clang or its
 * libFuzzer runtime is missing (scripts/setup.sh installs clang and libclang-rt-14-dev).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

test('the protocol parser survives libFuzzer with ASan and UBSan (bounded run from fuzz/corpus)', (t) => {
  if (spawnSync('clang', ['--version']).status !== 0) {
    t.skip('clang is not installed (scripts/setup.sh installs clang and libclang-rt-14-dev): the protocol fuzzer did not run');
    return;
  }
  const out = mkdtempSync(join(os.tmpdir(), 'boson-fuzz-'));
  try {
    const build = spawnSync('make', ['-s', '-C', here, 'fuzz', `FUZZ_OUT=${out}`], { encoding: 'utf8' });
    if (build.status !== 0 && /fuzzer|libclang_rt/i.test(build.stderr)) {
      t.skip(`clang has no libFuzzer runtime (install libclang-rt-14-dev): ${build.stderr.trim().slice(-300)}`);
      return;
    }
    assert.equal(build.status, 0, `make fuzz failed:\n${build.stdout}\n${build.stderr}`);
    const seconds = Number(process.env.BOSON_FUZZ_SECONDS ?? 15);
    const runIt = spawnSync('make', ['-s', '-C', here, 'fuzz-run', `FUZZ_OUT=${out}`, `FUZZ_SECONDS=${seconds}`], {
      encoding: 'utf8',
      timeout: (seconds + 60) * 1000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const artifacts = readdirSync(out).filter((n) => /^(crash|leak|timeout|oom|slow-unit)-/.test(n));
    const report = `${runIt.stderr}`
      .split('\n')
      .filter((l) => /ERROR|SUMMARY|invariant|runtime error|Test unit written|#\d+\s+DONE|Done \d+ runs/.test(l))
      .join('\n');
    const inputs = artifacts.map((a) => `${a}: ${readFileSync(join(out, a)).toString('hex')}`).join('\n');
    assert.equal(
      runIt.status,
      0,
      `the fuzzer found a failure (exit ${runIt.status}${runIt.signal ? `, ${runIt.signal}` : ''}):\n${report}\n${inputs}\n${runIt.stderr.slice(-4000)}`,
    );
    assert.deepEqual(artifacts, []);
    assert.match(runIt.stderr, /Done \d+ runs/, 'libFuzzer ran to its time limit');
    t.diagnostic(runIt.stderr.split('\n').find((l) => /Done \d+ runs/.test(l)) ?? '');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
