#!/usr/bin/env bash
# The context hashing benchmark (issue #5), release build: prints the machine, then the
# table and PASS/MISS against the targets (see BENCHMARKS.md). Options are passed on:
#   scripts/bench.sh [--quick] [--runs N] [--dir DIR]
# or compares this build with other builds of the benchmark in the same run:
#   scripts/bench.sh versus OTHER_BENCH_BINARY... [--quick] [--runs N] [--dir DIR]
# or the end-to-end build benchmark (issue #11: the provider against the docker CLI's own
# BuildKit client, same context, daemon and registry; starts the services):
#   scripts/bench.sh build [--quick] [--runs N] [--files N]
# The machine should be otherwise idle: the load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== machine"
echo "nproc: $(nproc)"
free -h
df -hT "${TMPDIR:-/tmp}"
grep -m1 'model name' /proc/cpuinfo || true
uptime

if [[ "${1:-}" == "build" ]]; then
  shift
  bash scripts/services.sh up
  # shellcheck disable=SC1090
  source "$(bash scripts/services.sh env)"
  echo "== build (release)"
  cargo bench --no-run --bench build
  echo "== run"
  cargo bench --bench build -- "$@"
  uptime
  exit 0
fi

echo "== build (release)"
cargo bench --no-run --bench context
echo "== run"
cargo bench --bench context -- "$@"
