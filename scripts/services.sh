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
# Usage from tests:  scripts/services.sh up && source "$(scripts/services.sh env)"
# The env file exports DOCKER_HOST (the unix socket), DBK_DOCKER_TLS_HOST and
# DBK_DOCKER_CERT_PATH (the TLS endpoint and its client certificates),
# DBK_DOCKER_HOST2 (the second dockerd's unix socket), DBK_SSH_BIN (the dir of
# the `ssh` wrapper: put it first in PATH), DBK_SSHD_PORT, and DBK_REGISTRY, DBK_REGISTRY_USER, DBK_REGISTRY_PASSWORD, DBK_BASE_IMAGE,
# DBK_BASE_IMAGE_AMD64 (the same image under an arch-named tag), DBK_BASE_IMAGE_ARM64,
# DBK_SERVICES_DIR, and DBK_EMULATION: 1 when this host (the one dockerd runs on)
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
  write_env
  exec 9>&-
  log "ready; source \"$ENV_FILE\""
}

cmd_down() {
  [[ -d "$DIR" ]] || { log "nothing to stop ($DIR absent)"; return 0; }
  with_lock
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
  [[ -f "$ENV_FILE" ]] && echo "env: $ENV_FILE" || echo "env: (not written)"
  return $rc
}

cmd_env() {
  echo "$ENV_FILE"
  [[ -f "$ENV_FILE" ]] || { log "$ENV_FILE does not exist yet; run: $0 up"; return 1; }
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|env|status" >&2; exit 2 ;;
esac
