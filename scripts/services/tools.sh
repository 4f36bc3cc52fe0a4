# shellcheck shell=bash
# Go-built tools, pinned and built from the Go module proxy (never a prebuilt
# binary) into a cache keyed by version: $TOOLS_DIR/<name>-<version>/bin. A
# tool is rebuilt only when its pin (or this recipe) changes; once built, `up`
# is offline. $TOOLS_DIR/bin holds one link per binary of the current pins, so
# one directory on PATH gives them all.
#
# The core set (`ensure_tools`): what the services and the tests need; `up` builds
# buildkit and buildx first (ensure_build_tools), then the Pulumi CLI and the YAML
# host (ensure_engine_tools), in the background when DBK_TOOLS_BACKGROUND=1.
#   pulumi                 the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#   pulumi-language-yaml   the YAML language host (github.com/pulumi/pulumi-yaml)
#   buildkitd, buildctl    a standalone BuildKit (github.com/moby/buildkit)
#   docker-buildx          buildx, as a docker CLI plugin (github.com/docker/buildx)
# The peers (`ensure_peer_tools`, for `scripts/bench.sh peers`):
#   pulumi-resource-docker-build       Pulumi's docker-build provider
#   pulumi-resource-docker-buildkit-seed  Materialize's provider this project started from
#
# The Go language hosts for Python and Node.js cannot be built: the module
# proxy answers "403 This module version is not available" for
# github.com/pulumi/pulumi/sdk/{python,nodejs}/cmd/pulumi-language-*/v3 at every
# version. scripts/langhost/ is a stand-in for them (see its README); the tests and
# the demo put it last on PATH, so a real host on PATH always wins.
#
# Sourced by scripts/services.sh; defines functions and settings only.

TOOLS_DIR="${DBK_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/docker-buildkit/tools}"
TOOLS_BIN="$TOOLS_DIR/bin"
# Bumped when a recipe below changes in a way that needs a rebuild.
TOOLS_RECIPE=1

# The pins. The Pulumi CLI is the newest pkg/v3 release the proxy serves at or
# after the pinned Python SDK (codegen/PULUMI_VERSION, 3.272.0: the proxy has
# no pkg/v3 v3.270.0–v3.273.0); Python programs run with that wheel.
PULUMI_CLI_VERSION=v3.274.0
PULUMI_YAML_VERSION=v1.25.0
BUILDKIT_VERSION=v0.34.2
BUILDX_VERSION=v0.38.2
DOCKER_BUILD_VERSION=v0.0.22
SEED_VERSION=v0.1.27

tools_go() { # go with the settings every build here uses
  env GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 go "$@"
}

# Builds a tool from a wrapper module once: $1 name, $2 version, $3 the
# wrapper's go.mod body (after the module line), $4 build tags, $5 ldflags,
# then package=binary pairs. The wrapper is a throw-away module under
# $TOOLS_DIR/src that only names the tool's module at its pin.
tools_build() {
  local name="$1" version="$2" gomod="$3" tags="$4" ldflags="$5"; shift 5
  local dest="$TOOLS_DIR/$name-$version" src="$TOOLS_DIR/src/$name-$version" pkg bin
  if [[ -f "$dest/.built-$TOOLS_RECIPE" ]]; then
    return 0
  fi
  command -v go >/dev/null || die "go is not installed: needed to build $name $version"
  log "building $name $version from the Go module proxy (once per version; minutes)"
  rm -rf "$src" "$dest.tmp"
  mkdir -p "$src" "$dest.tmp/bin"
  printf 'module dbk-tools/%s\n\n%s\n' "$name" "$gomod" >"$src/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for pkg in "$@"; do printf 'import _ "%s"\n' "${pkg%%=*}"; done
  } >"$src/tools.go"
  (
    cd "$src"
    tools_go mod tidy >"$src/build.log" 2>&1 || { cat "$src/build.log" >&2; exit 1; }
    for pkg in "$@"; do
      bin="${pkg#*=}"
      tools_go build -trimpath -tags "$tags" -ldflags "$ldflags" \
        -o "$dest.tmp/bin/$bin" "${pkg%%=*}" >>"$src/build.log" 2>&1 \
        || { tail -n 40 "$src/build.log" >&2; exit 1; }
    done
  ) || die "could not build $name $version (log: $src/build.log)"
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
  touch "$dest/.built-$TOOLS_RECIPE"
  log "built $name $version: $(ls "$dest/bin" | tr '\n' ' ')"
}

# Links every binary of the given tool directories into $TOOLS_BIN.
tools_link() { # name-version...
  local d f
  mkdir -p "$TOOLS_BIN"
  for d in "$@"; do
    for f in "$TOOLS_DIR/$d/bin/"*; do
      ln -sfn "$f" "$TOOLS_BIN/${f##*/}"
    done
  done
}

build_pulumi_cli() {
  local v="$PULUMI_CLI_VERSION"
  tools_build pulumi "$v" "go 1.26

require (
	github.com/pulumi/pulumi/pkg/v3 $v
	github.com/pulumi/pulumi/sdk/v3 $v
)

// pkg/go.mod's own replace (its sdk replace points into Pulumi's repository).
replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e" \
    "osusergo,grpcnotrace" \
    "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" \
    "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi=pulumi"
  # The Python program executor the Python language host runs (a script of the sdk/v3
  # module, which the wheel does not carry): beside the CLI, where hosts look for it.
  local bin="$TOOLS_DIR/pulumi-$v/bin" sdk
  if [[ ! -f "$bin/pulumi-language-python-exec" ]]; then
    sdk="$(cd "$TOOLS_DIR/src/pulumi-$v" 2>/dev/null &&
      tools_go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3 2>/dev/null)" || true
    if [[ -z "$sdk" ]]; then
      sdk="$(tools_go env GOMODCACHE)/github.com/pulumi/pulumi/sdk/v3@$v"
      [[ -d "$sdk" ]] || tools_go mod download "github.com/pulumi/pulumi/sdk/v3@$v" >&2
    fi
    install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$bin/" \
      || die "no pulumi-language-python-exec in $sdk"
  fi
}

build_pulumi_yaml() {
  local v="$PULUMI_YAML_VERSION"
  tools_build pulumi-language-yaml "$v" "go 1.26

require github.com/pulumi/pulumi-yaml $v" \
    "osusergo" \
    "-s -w -X github.com/pulumi/pulumi-yaml/pkg/version.Version=$v" \
    "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml=pulumi-language-yaml"
}

build_buildkit() {
  local v="$BUILDKIT_VERSION"
  # buildkit's go.mod excludes two untagged versions; a wrapper must repeat it.
  tools_build buildkit "$v" "go 1.26

require github.com/moby/buildkit $v

exclude (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2
)" \
    "osusergo netgo static_build seccomp" \
    "-s -w -X github.com/moby/buildkit/version.Version=$v" \
    "github.com/moby/buildkit/cmd/buildkitd=buildkitd" \
    "github.com/moby/buildkit/cmd/buildctl=buildctl"
}

build_buildx() {
  local v="$BUILDX_VERSION"
  tools_build buildx "$v" "go 1.26

require github.com/docker/buildx $v" \
    "osusergo" \
    "-s -w -X github.com/docker/buildx/version.Version=$v -X github.com/docker/buildx/version.Package=github.com/docker/buildx" \
    "github.com/docker/buildx/cmd/buildx=docker-buildx"
}

# docker-build's provider/internal imports two modules the Go module proxy refuses at
# every version ("403 This module version is not available", as for Pulumi's Python
# and Node.js language hosts): pulumi-dotnet's pulumi-language-dotnet/v3 (for
# codegen.CSharpPackageInfo) and pulumi-java (for pkg/codegen/java.PackageInfo). It
# uses them only as values of its schema's `language` map (what SDK generators read;
# GetSchema marshals them to JSON), never to build or push. So the wrapper replaces
# both modules with local stubs that declare just those two structs with the fields
# docker-build sets (same names and JSON keys); nothing else of docker-build changes.
docker_build_stubs() { # $1: the directory to write the two stub modules into
  local d="$1"
  rm -rf "$d"
  mkdir -p "$d/dotnet/codegen" "$d/java/pkg/codegen/java"
  printf 'module github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3\n\ngo 1.21\n' \
    >"$d/dotnet/go.mod"
  cat >"$d/dotnet/codegen/stub.go" <<'GO'
// Package codegen is a stand-in (scripts/services/tools.sh): the module proxy does not
// serve pulumi-language-dotnet, and docker-build needs only this type, for its schema.
package codegen

// CSharpPackageInfo is the C# entry of a schema's language map (the fields docker-build sets).
type CSharpPackageInfo struct {
	PackageReferences    map[string]string `json:"packageReferences,omitempty"`
	RespectSchemaVersion bool              `json:"respectSchemaVersion,omitempty"`
}
GO
  printf 'module github.com/pulumi/pulumi-java\n\ngo 1.21\n' >"$d/java/go.mod"
  cat >"$d/java/pkg/codegen/java/stub.go" <<'GO'
// Package java is a stand-in (scripts/services/tools.sh): the module proxy does not
// serve pulumi-java, and docker-build needs only this type, for its schema.
package java

// PackageInfo is the Java entry of a schema's language map (the fields docker-build sets).
type PackageInfo struct {
	BuildFiles                      string            `json:"buildFiles"`
	Dependencies                    map[string]string `json:"dependencies,omitempty"`
	GradleNexusPublishPluginVersion string            `json:"gradleNexusPublishPluginVersion"`
}
GO
}

build_docker_build() {
  local v="$DOCKER_BUILD_VERSION" stubs="$TOOLS_DIR/src/docker-build-stubs-$DOCKER_BUILD_VERSION"
  [[ -f "$TOOLS_DIR/docker-build-$v/.built-$TOOLS_RECIPE" ]] || docker_build_stubs "$stubs"
  tools_build docker-build "$v" "go 1.26

require github.com/pulumi/pulumi-docker-build $v

// Not served by the module proxy: see docker_build_stubs.
replace (
	github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3 => $stubs/dotnet
	github.com/pulumi/pulumi-java => $stubs/java
)" \
    "osusergo" \
    "-s -w -X github.com/pulumi/pulumi-docker-build/provider.Version=${v#v}" \
    "github.com/pulumi/pulumi-docker-build/provider/cmd/pulumi-resource-docker-build=pulumi-resource-docker-build"
}

build_seed() {
  local v="$SEED_VERSION"
  # The checksum database does not list this module (404): skip it for this one
  # module only; the proxy still serves it.
  GONOSUMDB=github.com/MaterializeInc/pulumi-docker-buildkit \
    tools_build seed "$v" "go 1.26

require github.com/MaterializeInc/pulumi-docker-buildkit $v" \
    "" \
    "-s -w -X main.version=${v#v}" \
    "github.com/MaterializeInc/pulumi-docker-buildkit/cmd/pulumi-resource-docker-buildkit=pulumi-resource-docker-buildkit-seed"
}

tools_lock() {
  mkdir -p "$TOOLS_DIR"
  exec 8>"$TOOLS_DIR/lock"
  flock -w 3600 8 || die "could not lock $TOOLS_DIR/lock"
}

# What the services themselves run: buildkitd and buildx.
ensure_build_tools() {
  tools_lock
  build_buildkit
  build_buildx
  tools_link "buildkit-$BUILDKIT_VERSION" "buildx-$BUILDX_VERSION"
  exec 8>&-
}

# What only the tests through the real engine and the demo need: the Pulumi CLI and
# the YAML language host.
ensure_engine_tools() {
  tools_lock
  build_pulumi_cli
  build_pulumi_yaml
  tools_link "pulumi-$PULUMI_CLI_VERSION" "pulumi-language-yaml-$PULUMI_YAML_VERSION"
  exec 8>&-
}

ensure_tools() {
  ensure_build_tools
  ensure_engine_tools
}

engine_tools_built() {
  [[ -f "$TOOLS_DIR/pulumi-$PULUMI_CLI_VERSION/.built-$TOOLS_RECIPE" &&
    -f "$TOOLS_DIR/pulumi-language-yaml-$PULUMI_YAML_VERSION/.built-$TOOLS_RECIPE" ]]
}

# Starts ensure_engine_tools in the background (DBK_TOOLS_BACKGROUND=1), so a test
# suite compiles and runs its other tests meanwhile; `scripts/services.sh tools` waits
# for it (the tools lock) and reports a failure. Its log: $TOOLS_DIR/background.log.
start_engine_tools_in_background() {
  engine_tools_built && { tools_link "pulumi-$PULUMI_CLI_VERSION" \
    "pulumi-language-yaml-$PULUMI_YAML_VERSION"; return 0; }
  mkdir -p "$TOOLS_DIR"
  : >"$TOOLS_DIR/background.log"
  log "building the Pulumi CLI and the YAML host in the background (log $TOOLS_DIR/background.log)"
  spawn "$TOOLS_DIR/background.log" bash "$SERVICES/../services.sh" tools >/dev/null
}

# Peers fail alone: one that cannot be built is reported and skipped.
ensure_peer_tools() {
  tools_lock
  if (build_docker_build); then tools_link "docker-build-$DOCKER_BUILD_VERSION"; fi
  if (build_seed); then tools_link "seed-$SEED_VERSION"; fi
  exec 8>&-
}

tools_status() {
  local b
  for b in pulumi pulumi-language-yaml buildkitd buildctl docker-buildx \
    pulumi-resource-docker-build pulumi-resource-docker-buildkit-seed; do
    if [[ -x "$TOOLS_BIN/$b" ]]; then
      echo "tool $b: $(readlink "$TOOLS_BIN/$b")"
    else
      echo "tool $b: not built"
    fi
  done
}
