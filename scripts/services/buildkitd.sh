# shellcheck shell=bash
# A standalone BuildKit daemon (tools.sh's buildkitd), rootful with the runc
# worker (Debian's runc), on a unix socket and on tcp://127.0.0.1:$BK_TCP_PORT
# with mutual TLS (tls.sh's certificates: the same CA and client certificate as
# dockerd's TLS endpoint); and buildx (tools.sh's docker-buildx) installed as a
# docker CLI plugin in a private docker config dir, with a `remote` builder
# named dbk-remote on that tcp endpoint. Networking in RUN steps is the host's
# (no CNI config exists), so builds use local bases or FROM scratch.
# Not for: building the binaries (tools.sh).

BK_TCP_PORT="${DBK_BUILDKIT_TCP_PORT:-1235}"
BK_SOCK="$DIR/buildkitd.sock"
BK_PID="$DIR/buildkitd.pid"
BK_LOG="$DIR/buildkitd.log"
BK_ROOT="$DIR/buildkit"
BK_CONFIG="$DIR/buildkitd.toml"
DOCKER_CONFIG_DIR="$DIR/docker-config"
BUILDX_BUILDER=dbk-remote
# A second buildkitd, unix socket only, with its own state: a fresh CI runner's builder
# (a registry cache made on the first serves it) and the second member of a fleet.
BK2_SOCK="$DIR/buildkitd2.sock"
BK2_PID="$DIR/buildkitd2.pid"
BK2_LOG="$DIR/buildkitd2.log"
BK2_ROOT="$DIR/buildkit2"
BK2_CONFIG="$DIR/buildkitd2.toml"

buildctl_ok() { # address [tls args...]
  local addr="$1"; shift
  timeout 10 "$TOOLS_BIN/buildctl" --addr "$addr" "$@" debug workers >/dev/null 2>&1
}

bk_tls_args() {
  echo --tlscacert "$TLS_DIR/client/ca.pem" --tlscert "$TLS_DIR/client/cert.pem" \
    --tlskey "$TLS_DIR/client/key.pem" --tlsservername 127.0.0.1
}

buildkitd_ping() {
  # shellcheck disable=SC2046 # the TLS arguments are words
  [[ -S "$BK_SOCK" ]] && buildctl_ok "unix://$BK_SOCK" \
    && buildctl_ok "tcp://127.0.0.1:$BK_TCP_PORT" $(bk_tls_args)
}

start_buildkitd() {
  local i bpid
  [[ -x "$TOOLS_BIN/buildkitd" ]] || die "buildkitd is not built (tools.sh)"
  command -v runc >/dev/null || die "runc is not installed (the buildkitd worker needs it)"
  if pid_alive "$BK_PID" buildkitd && buildkitd_ping; then
    log "buildkitd already running (pid $(cat "$BK_PID"), unix://$BK_SOCK, tcp://127.0.0.1:$BK_TCP_PORT)"
    return 0
  fi
  stop_pidfile "$BK_PID" buildkitd 20 buildkitd
  (( ${#BK_SOCK} < 100 )) || die "socket path too long: $BK_SOCK (set DBK_SERVICES_DIR shorter)"
  port_open "$BK_TCP_PORT" && die "127.0.0.1:$BK_TCP_PORT is in use; set DBK_BUILDKIT_TCP_PORT"
  rm -f "$BK_SOCK"
  mkdir -p "$BK_ROOT"
  # Own config file: never read /etc/buildkit/buildkitd.toml. Keep the cache
  # small enough for a test machine; the registry of registry.sh is http.
  cat >"$BK_CONFIG" <<EOF
root = "$BK_ROOT"
[worker.oci]
  enabled = true
  gc = true
  gckeepstorage = "10GB"
[worker.containerd]
  enabled = false
# The test registry speaks plain http on loopback.
[registry."127.0.0.1:$PORT"]
  http = true
EOF
  : >"$BK_LOG"
  log "starting buildkitd (log $BK_LOG)"
  bpid="$(spawn "$BK_LOG" "$TOOLS_BIN/buildkitd" --config "$BK_CONFIG" \
    --addr "unix://$BK_SOCK" --addr "tcp://127.0.0.1:$BK_TCP_PORT" \
    --tlscacert "$TLS_DIR/server/ca.pem" --tlscert "$TLS_DIR/server/cert.pem" \
    --tlskey "$TLS_DIR/server/key.pem")"
  echo "$bpid" >"$BK_PID"
  for ((i = 0; i < 300; i++)); do
    buildkitd_ping && break
    pid_running "$bpid" || break
    sleep 0.2
  done
  if ! buildkitd_ping; then
    log "buildkitd did not answer within 60s; log tail:"
    tail -n 40 "$BK_LOG" >&2 || true
    exit 1
  fi
  log "buildkitd up (pid $bpid, unix://$BK_SOCK, tcp://127.0.0.1:$BK_TCP_PORT with mTLS)"
}

stop_buildkitd() {
  stop_pidfile "$BK2_PID" "second buildkitd" 20 buildkitd
  umount_under "$BK2_ROOT"
  rm -f "$BK2_SOCK"
  stop_pidfile "$BK_PID" buildkitd 20 buildkitd
  umount_under "$BK_ROOT"
  rm -f "$BK_SOCK"
}

start_buildkitd2() {
  local i bpid
  if pid_alive "$BK2_PID" buildkitd && [[ -S "$BK2_SOCK" ]] && buildctl_ok "unix://$BK2_SOCK"; then
    log "second buildkitd already running (pid $(cat "$BK2_PID"), unix://$BK2_SOCK)"
    return 0
  fi
  stop_pidfile "$BK2_PID" "second buildkitd" 20 buildkitd
  rm -f "$BK2_SOCK"
  mkdir -p "$BK2_ROOT"
  cat >"$BK2_CONFIG" <<EOF
root = "$BK2_ROOT"
[worker.oci]
  enabled = true
  gc = true
  gckeepstorage = "10GB"
[worker.containerd]
  enabled = false
[registry."127.0.0.1:$PORT"]
  http = true
EOF
  : >"$BK2_LOG"
  bpid="$(spawn "$BK2_LOG" "$TOOLS_BIN/buildkitd" --config "$BK2_CONFIG" --addr "unix://$BK2_SOCK")"
  echo "$bpid" >"$BK2_PID"
  for ((i = 0; i < 300; i++)); do
    [[ -S "$BK2_SOCK" ]] && buildctl_ok "unix://$BK2_SOCK" && break
    pid_running "$bpid" || break
    sleep 0.2
  done
  if ! buildctl_ok "unix://$BK2_SOCK"; then
    log "the second buildkitd did not answer within 60s; log tail:"
    tail -n 40 "$BK2_LOG" >&2 || true
    exit 1
  fi
  log "second buildkitd up (pid $bpid, unix://$BK2_SOCK)"
}

# buildx as a plugin of the classic docker CLI, in a config dir of ours, and a
# remote builder on our buildkitd. Tests use it with DOCKER_CONFIG=$DOCKER_CONFIG_DIR.
ensure_buildx_builder() {
  mkdir -p "$DOCKER_CONFIG_DIR/cli-plugins"
  ln -sfn "$TOOLS_BIN/docker-buildx" "$DOCKER_CONFIG_DIR/cli-plugins/docker-buildx"
  [[ -f "$DOCKER_CONFIG_DIR/config.json" ]] || echo '{}' >"$DOCKER_CONFIG_DIR/config.json"
  local bx=(env DOCKER_CONFIG="$DOCKER_CONFIG_DIR" DOCKER_HOST="unix://$SOCK" /usr/bin/docker buildx)
  if ! "${bx[@]}" inspect "$BUILDX_BUILDER" >/dev/null 2>&1; then
    "${bx[@]}" create --name "$BUILDX_BUILDER" --driver remote \
      --driver-opt "cacert=$TLS_DIR/client/ca.pem,cert=$TLS_DIR/client/cert.pem,key=$TLS_DIR/client/key.pem,servername=127.0.0.1" \
      "tcp://127.0.0.1:$BK_TCP_PORT" >/dev/null \
      || die "could not create the buildx builder $BUILDX_BUILDER"
  fi
  "${bx[@]}" inspect --bootstrap "$BUILDX_BUILDER" >/dev/null 2>&1 \
    || die "buildx cannot reach buildkitd through $BUILDX_BUILDER"
  log "buildx builder $BUILDX_BUILDER (remote, tcp://127.0.0.1:$BK_TCP_PORT) ready"
}

buildkitd_status() {
  if pid_alive "$BK_PID" buildkitd && buildkitd_ping; then
    echo "buildkitd: running (pid $(cat "$BK_PID")), unix://$BK_SOCK and tcp://127.0.0.1:$BK_TCP_PORT answer"
  else
    echo "buildkitd: not running"; return 1
  fi
  if pid_alive "$BK2_PID" buildkitd && buildctl_ok "unix://$BK2_SOCK"; then
    echo "second buildkitd: running (pid $(cat "$BK2_PID")), unix://$BK2_SOCK answers"
  else
    echo "second buildkitd: not running"; return 1
  fi
}
