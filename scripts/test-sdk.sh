#!/usr/bin/env bash
# The SDK tests (issue #4): that sdk/ is what codegen makes of schema/schema.json (byte for
# byte, compiled bin/ included) and that regenerating changes nothing; then, in fresh
# throwaway environments, `pip install ./sdk/python` and `npm install ./sdk/nodejs` (with the
# fixture SDK of tests/sdk/fixture/schema.json beside them) and the mock-runtime tests of
# tests/sdk/python (pytest) and tests/sdk/nodejs (node --test), plus `tsc --noEmit` on
# examples/nodejs. Needs python3, node/npm and the PyPI and npm registries.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PULUMI_PY="$(cat codegen/PULUMI_VERSION)"
# The npm versions codegen compiles with (codegen/package.json pins them exactly).
pinned() { node -p "require('./codegen/package.json').devDependencies['$1']"; }
PULUMI_NODE="$(pinned @pulumi/pulumi)"
TYPESCRIPT="$(pinned typescript)"
TYPES_NODE="$(pinned @types/node)"

tmp="$(mktemp -d)"
cleanup() {
  rm -rf "$tmp"
  # What `pip install ./sdk/python` builds in the tree.
  rm -rf "$ROOT/sdk/python/build" "$ROOT"/sdk/python/*.egg-info
}
trap cleanup EXIT

echo "== sdk/ is current with schema/schema.json"
cargo build -q -p codegen
CODEGEN="$ROOT/target/debug/codegen"
"$CODEGEN" sdk-check

echo "== regenerating gives the same bytes"
"$CODEGEN" sdk --out "$tmp/gen-1"
"$CODEGEN" sdk --out "$tmp/gen-2"
diff -r "$tmp/gen-1" "$tmp/gen-2"
diff -r -x node_modules -x build -x '*.egg-info' -x __pycache__ "$tmp/gen-1" sdk

echo "== the fixture schema renders and compiles"
"$CODEGEN" sdk --schema tests/sdk/fixture/schema.json --out "$tmp/fixture"

echo "== python: pip install ./sdk/python into a fresh venv"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "pulumi==$PULUMI_PY" pytest
"$tmp/venv/bin/pip" install -q ./sdk/python "$tmp/fixture/python"
"$tmp/venv/bin/python" -c 'import pulumi_docker_buildkit as d; print("imported", d.__name__, d._utilities.get_version())'

echo "== python: mock-runtime tests"
(cd tests/sdk/python && PYTHONDONTWRITEBYTECODE=1 "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider .)

echo "== node: npm install ./sdk/nodejs into a fresh directory"
mkdir "$tmp/node"
cd "$tmp/node"
echo '{ "name": "sdk-test", "private": true }' > package.json
# Local packages as copies, not symlinks: a linked SDK would load its own @pulumi/pulumi.
printf 'install-links=true\nsave-exact=true\n' > .npmrc
npm install --no-audit --no-fund --loglevel=error \
  "$ROOT/sdk/nodejs" "$tmp/fixture/nodejs" \
  "@pulumi/pulumi@$PULUMI_NODE" "typescript@$TYPESCRIPT" "@types/node@$TYPES_NODE" \
  2> >(grep -v 'install-scripts' >&2)
test "$(node -p 'require("@pulumi/pulumi/package.json").version')" = "$PULUMI_NODE"
node -e 'const d = require("@docker-buildkit/pulumi"); console.log("required", typeof d.Image, d.Image.name)'

echo "== node: the TypeScript example type-checks against the installed SDK"
mkdir example
cp "$ROOT/examples/nodejs/index.ts" "$ROOT/examples/nodejs/tsconfig.json" example/
node_modules/.bin/tsc -p example/tsconfig.json --noEmit
node_modules/.bin/tsc -p example/tsconfig.json

echo "== node: mock-runtime tests"
cp "$ROOT"/tests/sdk/nodejs/*.js .
node --test image.test.js kitchen.test.js example.test.js
