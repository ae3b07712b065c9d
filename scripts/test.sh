#!/usr/bin/env bash
# Runs the whole Boson test suite with node's test runner: unit tests beside the code (src/**/*.test.ts,
# guest/**/*.test.ts, bench/**/*.test.ts) and the integration suites in test/ (real micro-VMs). Pass file paths to
# run only those.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$root"
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find src guest test bench -name '*.test.ts' -not -path '*/node_modules/*' | sort)
fi
# Two files at a time: each boots micro-VMs under TCG, which keeps a core busy.
exec node --import tsx --test --test-concurrency="${BOSON_TEST_CONCURRENCY:-2}" --test-timeout=600000 "${files[@]}"
