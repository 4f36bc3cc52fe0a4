# shellcheck shell=bash
# The private Docker Engine (dockerd 20.10, BuildKit built in) on its own unix
# socket and on tcp://127.0.0.1:$TLS_PORT with TLS client verification (the
# certificates are tls.sh's): start or reuse it, stop it and what a killed one
# leaves behind, report on it.

TLS_PORT="${DBK_DOCKER_TLS_PORT:-2376}"
SOCK="$DIR/docker.sock"
DOCKERD_PID="$DIR/dockerd.pid"
DOCKERD_LOG="$DIR/dockerd.log"
# What the running dockerd was started with (TLS address and certificates);
# compared on `up` to decide whether it can be reused.
DOCKERD_TLS_MARK="$DIR/dockerd.tls"

# Exec-root holds containerd's sockets; unix socket paths are limited to 107
# bytes. Fall back to a short path derived from the state dir when needed.
EXEC_ROOT="$DIR/exec"
if (( ${#EXEC_ROOT} + 40 > 100 )); then
  EXEC_ROOT="/tmp/dbk-exec-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
fi

docker_ping() {
  [[ -S "$SOCK" ]] || return 1
  [[ "$(lcurl --max-time 3 --unix-socket "$SOCK" http://docker/_ping 2>/dev/null)" == "OK" ]]
}

# The TLS endpoint answers _ping to a client holding our client certificate.
tls_ping() {
  [[ -s "$TLS_DIR/client/cert.pem" ]] || return 1
  [[ "$(lcurl --max-time 3 --cacert "$TLS_DIR/client/ca.pem" \
    --cert "$TLS_DIR/client/cert.pem" --key "$TLS_DIR/client/key.pem" \
    "https://127.0.0.1:$TLS_PORT/_ping" 2>/dev/null)" == "OK" ]]
}

# Identifies the TLS setup dockerd must run with: address and certificates.
tls_mark() {
  echo "127.0.0.1:$TLS_PORT $(cat "$TLS_DIR/server/ca.pem" "$TLS_DIR/server/cert.pem" \
    "$TLS_DIR/server/key.pem" | sha256sum | cut -d' ' -f1)"
}

# Processes with an argument under one of our private paths (the managed
# containerd and its shims). Used only to clean up after a dockerd that had
# to be killed; matches our state dir, never a program name, and never the
# second daemon's (dockerd2.sh: $DIR/docker2/, its own exec root).
our_leftover_pids() {
  pids_with_arg_under "$EXEC_ROOT/containerd/" "$DIR/docker/containerd/"
}

kill_leftovers() {
  local left=()
  mapfile -t left < <(our_leftover_pids)
  stop_pids "leftover containerd/shim processes" "${left[@]}"
}

start_dockerd() {
  local want i
  want="$(tls_mark)"
  if pid_alive "$DOCKERD_PID" dockerd; then
    # Alive: give it a moment to answer, then reuse it only if it also serves
    # TLS on the right port with the current certificates (a dockerd started
    # by an older version of this script listens on the unix socket only).
    for ((i = 0; i < 50; i++)); do
      docker_ping && break
      pid_alive "$DOCKERD_PID" dockerd || break
      sleep 0.1
    done
    if docker_ping && [[ "$(cat "$DOCKERD_TLS_MARK" 2>/dev/null)" == "$want" ]] && tls_ping; then
      log "dockerd already running (pid $(cat "$DOCKERD_PID"), TLS on 127.0.0.1:$TLS_PORT)"
      return 0
    fi
    if pid_alive "$DOCKERD_PID" dockerd; then
      if docker_ping; then
        log "dockerd (pid $(cat "$DOCKERD_PID")) does not serve TLS on 127.0.0.1:$TLS_PORT with the current certificates; restarting it"
      else
        log "dockerd (pid $(cat "$DOCKERD_PID")) does not answer; restarting it"
      fi
      stop_pidfile "$DOCKERD_PID" dockerd 30 dockerd
    fi
  fi
  rm -f "$DOCKERD_TLS_MARK"
  (( ${#SOCK} < 100 )) || die "socket path too long: $SOCK (set DBK_SERVICES_DIR shorter)"
  # Leftovers of a killed daemon: its managed containerd and shims. A dead
  # (or zombie) containerd's pidfile makes the next dockerd wait for it for a
  # minute ("containerd is still running"), so remove it too.
  kill_leftovers
  rm -f "$SOCK" "$DOCKERD_PID" "$EXEC_ROOT/containerd/containerd.pid"
  mkdir -p "$DIR/docker" "$EXEC_ROOT"
  # Own (empty) config file: never pick up /etc/docker/daemon.json.
  [[ -f "$DIR/daemon.json" ]] || echo '{}' >"$DIR/daemon.json"
  if port_open "$TLS_PORT"; then
    die "127.0.0.1:$TLS_PORT is already in use by something else; set DBK_DOCKER_TLS_PORT"
  fi
  : >"$DOCKERD_LOG"
  local args=(
    dockerd
    --config-file "$DIR/daemon.json"
    --data-root "$DIR/docker"
    --exec-root "$EXEC_ROOT"
    -H "unix://$SOCK"
    # TLS with client verification, on loopback only.
    -H "tcp://127.0.0.1:$TLS_PORT"
    --tlsverify
    --tlscacert "$TLS_DIR/server/ca.pem"
    --tlscert "$TLS_DIR/server/cert.pem"
    --tlskey "$TLS_DIR/server/key.pem"
    --pidfile "$DOCKERD_PID"
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false
    --userland-proxy=false
    --storage-driver overlay2
    # If a system containerd runs at /run/containerd, dockerd 20.10 uses it
    # instead of starting its own: keep our containers in our own namespaces.
    --containerd-namespace dbk-moby
    --containerd-plugins-namespace dbk-plugins
  )
  log "starting dockerd (log $DOCKERD_LOG)"
  local dpid
  dpid="$(spawn "$DOCKERD_LOG" "${args[@]}")"
  for ((i = 0; i < 600; i++)); do
    docker_ping && tls_ping && break
    pid_running "$dpid" || break
    sleep 0.1
  done
  if ! docker_ping; then
    log "dockerd did not answer on $SOCK within 60s; log tail:"
    tail -n 40 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
  if ! tls_ping; then
    log "dockerd did not answer on https://127.0.0.1:$TLS_PORT with the client certificate; log tail:"
    tail -n 40 "$DOCKERD_LOG" >&2 || true
    exit 1
  fi
  echo "$want" >"$DOCKERD_TLS_MARK"
  log "dockerd up (pid $(cat "$DOCKERD_PID" 2>/dev/null || echo '?'), TLS on 127.0.0.1:$TLS_PORT)"
}

# Stops dockerd, then whatever a killed one left: its containerd and shims,
# mounts under our dirs (deepest first), the socket.
stop_dockerd() {
  stop_pidfile "$DOCKERD_PID" dockerd 30 dockerd
  rm -f "$DOCKERD_TLS_MARK"
  # A dockerd that had to be killed leaves its containerd (and shims) behind.
  kill_leftovers
  # Unmount anything a killed daemon left mounted under its dirs (not the
  # second daemon's).
  umount_under "$DIR/docker" "$EXEC_ROOT"
  rm -f "$SOCK"
}

# The dockerd lines of `status`; fails when it or its TLS endpoint does not answer.
dockerd_status() {
  local rc=0
  if pid_alive "$DOCKERD_PID" dockerd; then
    if docker_ping; then
      echo "dockerd: running (pid $(cat "$DOCKERD_PID")), unix://$SOCK answers"
    else
      echo "dockerd: pid $(cat "$DOCKERD_PID") alive but unix://$SOCK does not answer"; rc=1
    fi
  else
    echo "dockerd: not running"; rc=1
  fi
  if tls_ping; then
    echo "dockerd TLS: tcp://127.0.0.1:$TLS_PORT answers (client certificates in $TLS_DIR/client)"
  elif pid_alive "$DOCKERD_PID" dockerd; then
    echo "dockerd TLS: tcp://127.0.0.1:$TLS_PORT does not answer (run: $0 up)"; rc=1
  fi
  return $rc
}
