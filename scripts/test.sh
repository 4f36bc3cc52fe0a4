#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs and starts the services the
# tests need (a private dockerd and a registry, see scripts/services.sh), checks
# formatting and lints, checks that generated files are current, then runs the Rust
# tests (unit, engine harness, real Docker + registry), the Python wire tests
# against Pulumi's own gRPC stubs, the SDK tests (scripts/test-sdk.sh), and the
# user-level tests through the real Pulumi CLI (tests/engine).
set -euo pipefail
cd "$(dirname "$0")/.."

# The Pulumi CLI (minutes to build, once per version) builds in the background meanwhile.
DBK_TOOLS_BACKGROUND=1 bash scripts/services.sh up
# Every test that needs a service runs here: a missing one fails instead of skipping.
export DBK_REQUIRE_SERVICES=1
# shellcheck disable=SC1090
source "$(bash scripts/services.sh env)"

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

echo "== python venv with Pulumi's stubs"
PYTHON="$(bash scripts/venv.sh)"

echo "== generated files are current"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" codegen/extract_fds.py "$tmp/pulumirpc.fds.bin" 2>/dev/null
cmp "$tmp/pulumirpc.fds.bin" codegen/pulumirpc.fds.bin \
  || { echo "codegen/pulumirpc.fds.bin differs from the pinned pulumi wheel's descriptors"; exit 1; }
cargo run -q -p codegen -- all
git diff --exit-code -- src/generated schema sdk \
  || { echo "generated files are stale: commit the output of 'cargo run -p codegen -- all'"; exit 1; }

echo "== rust tests"
cargo build --bins
cargo test --workspace

echo "== wire compatibility with Pulumi's Python stubs"
PROVIDER_BIN="$(pwd)/target/debug/pulumi-resource-docker-buildkit" "$PYTHON" -m pytest -q tests/python

echo "== SDKs: installable, and right under Pulumi's mock runtimes"
bash scripts/test-sdk.sh

echo "== the real Pulumi CLI: examples/python, examples/nodejs and a YAML program (tests/engine)"
# Waits for the background build of the CLI (scripts/services/tools.sh); here its
# absence is a failure.
bash scripts/services.sh tools >/dev/null
DBK_REQUIRE_ENGINE=1 "$PYTHON" -m pytest -q -p no:cacheprovider tests/engine
