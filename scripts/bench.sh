#!/usr/bin/env bash
# The context hashing benchmark (issue #5), release build: prints the machine, then the
# table and PASS/MISS against the targets (see BENCHMARKS.md). Options are passed on:
#   scripts/bench.sh [--quick] [--runs N] [--dir DIR]
# or compares this build with other builds of the benchmark in the same run:
#   scripts/bench.sh versus OTHER_BENCH_BINARY... [--quick] [--runs N] [--dir DIR]
# The machine should be otherwise idle: the load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== machine"
echo "nproc: $(nproc)"
free -h
df -hT "${TMPDIR:-/tmp}"
grep -m1 'model name' /proc/cpuinfo || true
uptime

echo "== build (release)"
cargo bench --no-run --bench context
echo "== run"
cargo bench --bench context -- "$@"
