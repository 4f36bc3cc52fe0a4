#!/usr/bin/env bash
# The context hashing benchmark (issue #5), release build: prints the machine, then the
# table and PASS/MISS against the targets (see BENCHMARKS.md). Options are passed on:
#   scripts/bench.sh [--quick] [--runs N] [--dir DIR]
# or compares this build with other builds of the benchmark in the same run:
#   scripts/bench.sh versus OTHER_BENCH_BINARY... [--quick] [--runs N] [--dir DIR]
# or the end-to-end build benchmark (issue #11: the provider against the docker CLI's own
# BuildKit client, same context, daemon and registry; starts the services):
#   scripts/bench.sh build [--quick] [--runs N] [--files N]
# or warm Check through the real RPC against a bare `find` stat walk (issue 18;
# benches/check_rpc.py: the provider's binary, Pulumi's own gRPC stubs as the client):
#   scripts/bench.sh check [--files N] [--rounds N] [--dir DIR]
# or builds on a standalone buildkitd, us against `docker buildx build --push` through a
# remote builder on the same daemon, and a fleet of two buildkitds against one (issue 19;
# benches/kit.py; starts the services):
#   scripts/bench.sh kit [--runs N] [--files N]
# or the peers side by side in the same real Pulumi engine (Pulumi's docker-build, the seed
# provider, the docker CLI and buildx; starts the services, builds the peers, packs a release
# build of ours; benches/peers.py, see BENCHMARKS.md):
#   scripts/bench.sh peers [--quick] [--runs N] [--runs-for seed=1] [--files N]
#                          [--preview-files N] [--peers a,b] [--prune] [--keep]
# Each option also reads an environment variable (DBK_PEERS_RUNS, DBK_PEERS_FILES,
# DBK_PEERS_PREVIEW_FILES, ...: see benches/peers.py), e.g. a small run:
#   DBK_PEERS_RUNS=1 DBK_PEERS_FILES=500 DBK_PEERS_PREVIEW_FILES=2000 scripts/bench.sh peers
# DBK_PEERS_OURS_BINARY=PATH measures that build of ours instead of `cargo build --release`.
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

if [[ "${1:-}" == "check" ]]; then
  shift
  bash scripts/services.sh up
  # shellcheck disable=SC1090
  source "$(bash scripts/services.sh env)"
  echo "== ours (release)"
  cargo build --release --bins
  python="$(bash scripts/venv.sh)"
  echo "== run"
  "$python" benches/check_rpc.py --binary target/release/pulumi-resource-docker-buildkit "$@"
  uptime
  exit 0
fi

if [[ "${1:-}" == "kit" ]]; then
  shift
  bash scripts/services.sh up
  # shellcheck disable=SC1090
  source "$(bash scripts/services.sh env)"
  echo "== ours (release)"
  cargo build --release --bins
  python="$(bash scripts/venv.sh)"
  echo "== run"
  "$python" benches/kit.py --binary target/release/pulumi-resource-docker-buildkit "$@"
  uptime
  exit 0
fi

if [[ "${1:-}" == "peers" ]]; then
  shift
  bash scripts/services.sh up
  # shellcheck disable=SC1090
  source "$(bash scripts/services.sh env)"
  echo "== peer providers"
  # A peer that cannot be built is logged (with the go error) and skipped: peers.py marks it.
  bash scripts/services.sh tools peers
  ours="${DBK_PEERS_OURS_BINARY:-}"
  if [[ -z "$ours" ]]; then
    # What is measured is this work tree, committed or not: say which.
    echo "== ours (release) from the work tree at $(git rev-parse --short HEAD)$(
      git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ', with uncommitted changes')"
    cargo build --release --bins
    ours=target/release/pulumi-resource-docker-buildkit
  fi
  echo "== ours: $ours ($("$ours" --version))"
  dist="$(mktemp -d "${TMPDIR:-/tmp}/dbk-peers-dist.XXXXXX")"
  trap 'rm -rf "$dist"' EXIT
  # Installed as a user installs it: dist.sh's tarball, `pulumi plugin install --file`.
  tarball="$(bash scripts/dist.sh --binary "$ours" --out "$dist" | tail -n 1)"
  python="$(bash scripts/venv.sh)"
  echo "== run"
  "$python" benches/peers.py --tarball "$tarball" "$@"
  uptime
  exit 0
fi

echo "== build (release)"
cargo bench --no-run --bench context
echo "== run"
cargo bench --bench context -- "$@"
