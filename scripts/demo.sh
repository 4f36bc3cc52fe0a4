#!/usr/bin/env bash
# The main job on a fresh machine: a real `pulumi up` of examples/python against the local
# registry. Starts the private dockerd and registry and builds the Pulumi CLI from its Go
# module (scripts/services.sh; DOCKER_HOST and DBK_REGISTRY/DBK_REGISTRY_USER/
# DBK_REGISTRY_PASSWORD point it at your own instead), builds the plugin and installs it
# from `make dist`'s tarball with `pulumi plugin install --file`, then, in a copy of
# examples/ and sdk/ under .tmp/demo (a `file://` backend, passphrase secrets, nothing sent
# anywhere but the registry): `pulumi preview`, `pulumi up`, a second `pulumi up` that
# changes nothing, and the check that the registry serves the `ref` it exported.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

if [ -z "${DBK_REGISTRY:-}" ]; then
  bash scripts/services.sh up
  # shellcheck disable=SC1090
  source "$(bash scripts/services.sh env)"
fi
TOOLS_BIN="${DBK_TOOLS_BIN:-$(bash scripts/services.sh tools | tail -n 1)}"
# The stand-in Python language host (scripts/langhost) runs on this venv's pulumi wheel.
PYTHON="$(bash scripts/venv.sh)"
cargo build --bins
version="$(awk -F'"' '/^version *=/ { print $2; exit }' Cargo.toml)"
tarball="$(bash scripts/dist.sh --binary target/debug/pulumi-resource-docker-buildkit \
  --out .tmp/demo-dist | tail -n 1)"

work="$ROOT/.tmp/demo"
rm -rf "$work"
mkdir -p "$work/backend" "$work/home"
cp -r examples "$work/examples"
cp -r sdk "$work/sdk"
rm -rf "$work/sdk/nodejs/node_modules" "$work/examples/python/venv"

export PATH="$TOOLS_BIN:$PATH:$ROOT/scripts/langhost"
export DBK_LANGHOST_PYTHON="$PYTHON"
export PULUMI_HOME="$work/home/.pulumi"
export PULUMI_BACKEND_URL="file://$work/backend"
export PULUMI_CONFIG_PASSPHRASE="demo"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

run pulumi version
run pulumi plugin install resource docker-buildkit "$version" --file "$tarball"
cd "$work/examples/python"
run pulumi stack init demo
pulumi config set registry "$DBK_REGISTRY"
pulumi config set username "$DBK_REGISTRY_USER"
pulumi config set --secret password "$DBK_REGISTRY_PASSWORD"
pulumi config set --secret buildToken "demo-token-$RANDOM"
run pulumi preview
run pulumi up --yes
run pulumi up --yes --expect-no-changes
run pulumi stack output

ref="$(pulumi stack output ref)"
repo="${ref#"$DBK_REGISTRY"/}"
digest="${repo#*@}"
repo="${repo%@*}"
say "the registry serves $ref"
served="$(curl --noproxy '*' -sS -u "$DBK_REGISTRY_USER:$DBK_REGISTRY_PASSWORD" -o /dev/null \
  -w '%{http_code} %header{docker-content-digest}' \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json' \
  "http://$DBK_REGISTRY/v2/$repo/manifests/$digest")"
echo "$served"
[ "$served" = "200 $digest" ] || { echo "demo: the registry does not serve $ref" >&2; exit 1; }
echo "demo: ok (stack state in $work/backend)"
