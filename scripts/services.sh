#!/usr/bin/env bash
# Local services for the docker-buildkit tests: a private Docker Engine
# (dockerd 20.10, BuildKit built in) on its own unix socket and on
# tcp://127.0.0.1:$DBK_DOCKER_TLS_PORT (default 2376) with TLS client
# verification, a second private dockerd (for the multi-builder tests) on its
# own unix socket only, with its own data, exec root and containerd namespaces,
# a registry 2.8 with htpasswd auth on 127.0.0.1, and a local busybox base image
# (amd64), plus what foreign-platform RUN steps need: qemu user emulation
# registered with binfmt_misc (handler qemu-aarch64, F flag) and an arm64
# busybox base image; the base images are loaded into both daemons. And a
# private sshd on 127.0.0.1:$DBK_SSHD_PORT (default 2222), public-key logins as
# root only, for ssh:// Docker hosts: its config, host key, client keys, client
# config and an `ssh` wrapper using that config live in $DIR/ssh; bin/ssh is
# `ssh -F $DIR/ssh/config`, and the config's Host aliases are dbk-ssh-ok (a
# login whose `docker` is the classic CLI talking to the first private dockerd),
# dbk-ssh-nodocker (`docker` is not found there), dbk-ssh-refused (a key the
# server does not accept) and dbk-ssh-unknown-host (an empty known_hosts).
#
# TLS material (made once with openssl; remade when missing, invalid or close
# to expiry) lives in $DIR/tls: ca/ (the CA and its key), server/ (what dockerd
# uses) and client/ (ca.pem, cert.pem, key.pem: a DOCKER_CERT_PATH).
#
#   scripts/services.sh up      install what is missing, start (or reuse) everything
#   scripts/services.sh down    stop everything started here
#   scripts/services.sh env     print the path of the sourceable env file
#   scripts/services.sh status  print what runs
#
# And the Go-built tools (tools.sh: the Pulumi CLI, Pulumi's YAML language
# host, buildkitd/buildctl and buildx, built once per pinned version into
# $DBK_TOOLS_DIR, default ~/.cache/docker-buildkit/tools), a standalone
# buildkitd (buildkitd.sh: unix socket, and tcp://127.0.0.1:$DBK_BUILDKIT_TCP_PORT
# (default 1235) with mutual TLS from the same CA as dockerd's), and buildx as a
# docker CLI plugin in a private config dir with a `remote` builder on it.
# DBK_TOOLS=0 skips the tools and buildkitd (the tests that need them skip);
# DBK_TOOLS_BACKGROUND=1 builds the Pulumi CLI and YAML host in the background
# (then `scripts/services.sh tools` waits for them).
#
#   scripts/services.sh tools         build (or reuse) the core tools; prints their bin dir
#   scripts/services.sh tools peers   also the peer providers (for scripts/bench.sh peers)
#
# Usage from tests:  scripts/services.sh up && source "$(scripts/services.sh env)"
# The env file exports DOCKER_HOST (the unix socket), DBK_DOCKER_TLS_HOST and
# DBK_DOCKER_CERT_PATH (the TLS endpoint and its client certificates),
# DBK_DOCKER_HOST2 (the second dockerd's unix socket), DBK_SSH_BIN (the dir of
# the `ssh` wrapper: put it first in PATH), DBK_SSHD_PORT, and DBK_REGISTRY, DBK_REGISTRY_USER, DBK_REGISTRY_PASSWORD, DBK_BASE_IMAGE,
# DBK_BASE_IMAGE_AMD64 (the same image under an arch-named tag), DBK_BASE_IMAGE_ARM64,
# DBK_SERVICES_DIR, DBK_TOOLS_BIN (the tools' bin dir: put it on PATH),
# DBK_BUILDKIT_HOST (buildkitd's unix socket), DBK_BUILDKIT_HOST2 (a second buildkitd,
# unix only, with its own state), DBK_BUILDKIT_TCP_HOST and
# DBK_BUILDKIT_CERT_PATH (its mTLS endpoint and client certificates: ca.pem,
# cert.pem, key.pem), DBK_DOCKER_CONFIG (a DOCKER_CONFIG whose docker has the
# buildx plugin) and DBK_BUILDX_BUILDER (the remote builder's name), and DBK_EMULATION: 1 when this host (the one dockerd runs on)
# runs linux/arm64 programs through qemu, else 0 with DBK_EMULATION_REASON saying
# why. Emulation that cannot be set up never makes `up` fail.
#
# Emulation is host-wide kernel state (binfmt_misc), not a process: `down` leaves
# it as it is. `down` stops the daemons, the registry, sshd and its sessions.
#
# Nothing here creates a network bridge or talks to anything but 127.0.0.1 and
# the private unix sockets. No image is ever pulled.
#
# This file is the front door: settings, the env file, the four commands. Each
# service is a file of scripts/services/, sourced here (functions and settings
# only): common.sh (logging, pidfiles, detached processes), packages.sh (apt),
# tls.sh (certificates), dockerd.sh, dockerd2.sh (the second daemon and its
# copy of the base images), registry.sh, base-image.sh (the amd64 busybox
# image), emulation.sh (qemu binfmt and the arm64 image), sshd.sh.
set -euo pipefail

DIR="${DBK_SERVICES_DIR:-/tmp/docker-buildkit-services}"
ENV_FILE="$DIR/env"
SERVICES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/services"

# shellcheck source=services/common.sh
source "$SERVICES/common.sh"
# shellcheck source=services/packages.sh
source "$SERVICES/packages.sh"
# shellcheck source=services/tls.sh
source "$SERVICES/tls.sh"
# shellcheck source=services/dockerd.sh
source "$SERVICES/dockerd.sh"
# shellcheck source=services/dockerd2.sh
source "$SERVICES/dockerd2.sh"
# shellcheck source=services/registry.sh
source "$SERVICES/registry.sh"
# shellcheck source=services/base-image.sh
source "$SERVICES/base-image.sh"
# shellcheck source=services/emulation.sh
source "$SERVICES/emulation.sh"
# shellcheck source=services/sshd.sh
source "$SERVICES/sshd.sh"
# shellcheck source=services/tools.sh
source "$SERVICES/tools.sh"
# shellcheck source=services/buildkitd.sh
source "$SERVICES/buildkitd.sh"

WITH_TOOLS="${DBK_TOOLS:-1}"

if ! [[ "$TLS_PORT" =~ ^[0-9]{1,5}$ ]] || ! (( 10#$TLS_PORT > 0 && 10#$TLS_PORT < 65536 )); then
  die "DBK_DOCKER_TLS_PORT must be a port number, got '$TLS_PORT'"
fi
if ! [[ "$SSHD_PORT" =~ ^[0-9]{1,5}$ ]] || ! (( 10#$SSHD_PORT > 0 && 10#$SSHD_PORT < 65536 )); then
  die "DBK_SSHD_PORT must be a port number, got '$SSHD_PORT'"
fi
[[ "$TLS_PORT" != "$PORT" ]] || die "DBK_DOCKER_TLS_PORT and DBK_REGISTRY_PORT are both $PORT"
[[ "$SSHD_PORT" != "$PORT" ]] || die "DBK_SSHD_PORT and DBK_REGISTRY_PORT are both $PORT"
[[ "$SSHD_PORT" != "$TLS_PORT" ]] || die "DBK_SSHD_PORT and DBK_DOCKER_TLS_PORT are both $TLS_PORT"

# ---------------------------------------------------------------- env file

write_env() {
  local pass tmp
  pass="$(cat "$PASS_FILE")"
  tmp="$(mktemp "$DIR/env.XXXXXX")"
  cat >"$tmp" <<EOF
export DOCKER_HOST=unix://$SOCK
export DBK_DOCKER_TLS_HOST=tcp://127.0.0.1:$TLS_PORT
export DBK_DOCKER_CERT_PATH=$TLS_DIR/client
export DBK_DOCKER_HOST2=unix://$SOCK2
export DBK_SSH_BIN=$SSH_BIN
export DBK_SSHD_PORT=$SSHD_PORT
export DBK_REGISTRY=127.0.0.1:$PORT
export DBK_REGISTRY_USER=$REG_USER
export DBK_REGISTRY_PASSWORD=$pass
export DBK_BASE_IMAGE=$BASE_IMAGE
export DBK_BASE_IMAGE_AMD64=$BASE_IMAGE_AMD64
export DBK_BASE_IMAGE_ARM64=$BASE_IMAGE_ARM64
export DBK_EMULATION=$EMULATION
export DBK_EMULATION_REASON=$(sq "$EMULATION_REASON")
export DBK_SERVICES_DIR=$DIR
EOF
  if [[ "$WITH_TOOLS" != 0 ]]; then
    cat >>"$tmp" <<EOF
export DBK_TOOLS_BIN=$TOOLS_BIN
export DBK_BUILDKIT_HOST=unix://$BK_SOCK
export DBK_BUILDKIT_HOST2=unix://$BK2_SOCK
export DBK_BUILDKIT_TCP_HOST=tcp://127.0.0.1:$BK_TCP_PORT
export DBK_BUILDKIT_CERT_PATH=$TLS_DIR/client
export DBK_DOCKER_CONFIG=$DOCKER_CONFIG_DIR
export DBK_BUILDX_BUILDER=$BUILDX_BUILDER
EOF
  fi
  chmod 600 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- commands

with_lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/lock"
  flock -w 120 9 || die "could not lock $DIR/lock"
}

cmd_up() {
  ensure_packages
  ensure_emulation_packages
  if [[ "$WITH_TOOLS" != 0 ]]; then
    ensure_build_tools
    if [[ "${DBK_TOOLS_BACKGROUND:-0}" == 1 ]]; then
      start_engine_tools_in_background
    else
      ensure_engine_tools
    fi
  fi
  with_lock
  chmod 700 "$DIR" 2>/dev/null || true
  ensure_tls_certs
  start_dockerd
  start_dockerd2
  start_registry
  ensure_base_image
  ensure_base_alias
  ensure_emulation
  ensure_dockerd2_images
  start_sshd
  if [[ "$WITH_TOOLS" != 0 ]]; then
    start_buildkitd
    start_buildkitd2
    ensure_buildx_builder
  fi
  write_env
  exec 9>&-
  log "ready; source \"$ENV_FILE\""
}

cmd_down() {
  [[ -d "$DIR" ]] || { log "nothing to stop ($DIR absent)"; return 0; }
  with_lock
  stop_buildkitd
  stop_sshd
  stop_registry
  stop_dockerd2
  stop_dockerd
  exec 9>&-
  log "stopped"
}

cmd_status() {
  local rc=0
  dockerd_status || rc=1
  dockerd2_status || rc=1
  registry_status || rc=1
  if docker_ping; then
    base_image_status
    arm64_image_status
  fi
  emulation_status
  sshd_status || rc=1
  if [[ "$WITH_TOOLS" != 0 ]]; then
    buildkitd_status || rc=1
    tools_status
  fi
  [[ -f "$ENV_FILE" ]] && echo "env: $ENV_FILE" || echo "env: (not written)"
  return $rc
}

cmd_env() {
  echo "$ENV_FILE"
  [[ -f "$ENV_FILE" ]] || { log "$ENV_FILE does not exist yet; run: $0 up"; return 1; }
}

cmd_tools() {
  ensure_tools
  [[ "${1:-}" != peers ]] || ensure_peer_tools
  echo "$TOOLS_BIN"
}

case "${1:-}" in
  up) cmd_up ;;
  tools) shift; cmd_tools "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|env|status|tools [peers]" >&2; exit 2 ;;
esac
