#!/usr/bin/env bash
# The release tarball of the provider plugin (`make dist`):
#   dist/pulumi-resource-docker-buildkit-v<version>-<os>-<arch>.tar.gz
# holding, at its root, the binary, README.md and LICENSE (when the repository has one).
# That is the asset name Pulumi looks for in the GitHub release v<version> named by the
# schema's pluginDownloadURL, and the layout it unpacks into
# $PULUMI_HOME/plugins/resource-docker-buildkit-v<version>/; the same file installs by hand
# with `pulumi plugin install resource docker-buildkit v<version> --file <tarball>`.
#
# Options (or the environment variables beside them):
#   --release            build with `cargo build --release` (the default)   DIST_PROFILE=release
#   --debug              build the debug binary instead                     DIST_PROFILE=debug
#   --binary PATH        pack this already-built binary, build nothing      DIST_BINARY=PATH
#   --out DIR            write the tarball into DIR (default: dist)         DIST_DIR=DIR
# The version is Cargo.toml's; the binary must report the same with --version. os and arch
# are the host's, as Pulumi names them (linux|darwin|windows, amd64|arm64). The tarball's
# path is the last line printed.
set -euo pipefail

NAME=docker-buildkit
BIN="pulumi-resource-$NAME"
profile="${DIST_PROFILE:-release}"
binary="${DIST_BINARY:-}"
out="${DIST_DIR:-}"

die() { echo "dist.sh: $*" >&2; exit 1; }
# Paths given by the caller are relative to where it runs; the script runs at the root.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$(pwd)/$1" ;; esac; }

while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=release ;;
    --debug) profile=debug ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary="$2"; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (expected --release, --debug, --binary PATH, --out DIR)" ;;
  esac
  shift
done
case "$profile" in
  release|debug) ;;
  *) die "DIST_PROFILE must be release or debug, not $profile" ;;
esac
[ -z "$binary" ] || binary="$(absolute "$binary")"
[ -z "$out" ] || out="$(absolute "$out")"
cd "$(dirname "$0")/.."
out="${out:-dist}"

# The version of Cargo.toml: the one version of binary, schema and SDKs (the workspace's
# [workspace.package] version, which every crate inherits; or a [package] version).
version="$(awk '
  /^\[/ { in_package = ($0 == "[package]" || $0 == "[workspace.package]") }
  in_package && /^version *= *"/ { sub(/^version *= *"/, ""); sub(/".*/, ""); print; exit }
' Cargo.toml)"
[ -n "$version" ] || die "no [workspace.package] or [package] version in Cargo.toml"

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  MINGW* | MSYS* | CYGWIN*) os=windows ;;
  *) die "unsupported OS $(uname -s): Pulumi plugins exist for linux, darwin and windows" ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported architecture $(uname -m): Pulumi plugins exist for amd64 and arm64" ;;
esac
exe=""
[ "$os" = windows ] && exe=".exe"

if [ -n "$binary" ]; then
  profile=prebuilt
else
  if [ "$profile" = release ]; then
    cargo build --release --bin "$BIN"
  else
    cargo build --bin "$BIN"
  fi
  target_dir="$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  binary="${target_dir:-target}/$profile/$BIN$exe"
fi
[ -x "$binary" ] || die "$binary is not an executable"
reported="$("$binary" --version)"
[ "$reported" = "$version" ] \
  || die "$binary reports version $reported, Cargo.toml says $version: rebuild it"

tarball="$BIN-v$version-$os-$arch.tar.gz"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$binary" "$stage/$BIN$exe"
files=("$BIN$exe" README.md)
cp README.md "$stage/"
if [ -f LICENSE ]; then
  cp LICENSE "$stage/"
  files+=(LICENSE)
fi

mkdir -p "$out"
# Plain names at the root (no ./ prefix, no directory); owner-neutral with GNU tar.
owner=()
tar --version 2>/dev/null | grep -q 'GNU tar' && owner=(--owner=0 --group=0 --numeric-owner)
tar -czf "$out/$tarball.tmp" ${owner[@]+"${owner[@]}"} -C "$stage" "${files[@]}"
mv "$out/$tarball.tmp" "$out/$tarball"
echo "$BIN v$version ($os-$arch, $profile): ${files[*]}"
echo "$out/$tarball"
