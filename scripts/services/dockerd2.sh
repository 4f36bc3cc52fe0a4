# shellcheck shell=bash
# A second private Docker Engine (the same dockerd 20.10), for the tests that
# use two builders: its own unix socket, data root, exec root, containerd
# namespaces, pidfile, log and empty config file; no TCP listener. Start or
# reuse it, copy the base images of the first daemon into it, stop it and what
# a killed one leaves behind (never the first daemon's processes or mounts, as
# dockerd.sh never touches this one's), report on it.

SOCK2="$DIR/docker2.sock"
DATA_ROOT2="$DIR/docker2"
DOCKERD2_PID="$DIR/dockerd2.pid"
DOCKERD2_LOG="$DIR/dockerd2.log"
DOCKERD2_CONFIG="$DIR/daemon2.json"
# What the running second dockerd was started with; compared on `up` to decide
# whether it can be reused.
DOCKERD2_MARK="$DIR/dockerd2.args"

# Its own exec-root (containerd's sockets), under the same 107-byte unix socket
# path limit as the first daemon's.
EXEC_ROOT2="$DIR/exec2"
if (( ${#EXEC_ROOT2} + 40 > 100 )); then
  EXEC_ROOT2="/tmp/dbk-exec2-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
fi

docker2_ping() {
  [[ -S "$SOCK2" ]] || return 1
  [[ "$(lcurl --max-time 3 --unix-socket "$SOCK2" http://docker/_ping 2>/dev/null)" == "OK" ]]
}

dockerd2_args() {
  DOCKERD2_ARGS=(
    dockerd
    --config-file "$DOCKERD2_CONFIG"
    --data-root "$DATA_ROOT2"
    --exec-root "$EXEC_ROOT2"
    -H "unix://$SOCK2"
    --pidfile "$DOCKERD2_PID"
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false
    --userland-proxy=false
    --storage-driver overlay2
    # Namespaces of its own, apart from the first daemon's (dbk-moby,
    # dbk-plugins) should both use a system containerd.
    --containerd-namespace dbk-moby2
    --containerd-plugins-namespace dbk-plugins2
  )
}

# Processes with an argument under the second daemon's private paths (its
# managed containerd and shims); never the first daemon's.
dockerd2_leftover_pids() {
  pids_with_arg_under "$EXEC_ROOT2/containerd/" "$DATA_ROOT2/containerd/"
}

kill_dockerd2_leftovers() {
  local left=()
  mapfile -t left < <(dockerd2_leftover_pids)
  stop_pids "leftover containerd/shim processes of the second dockerd" "${left[@]}"
}

start_dockerd2() {
  local want i
  dockerd2_args
  want="$(printf '%s\n' "${DOCKERD2_ARGS[@]}" | sha256sum | cut -d' ' -f1)"
  if pid_alive "$DOCKERD2_PID" dockerd; then
    for ((i = 0; i < 50; i++)); do
      docker2_ping && break
      pid_alive "$DOCKERD2_PID" dockerd || break
      sleep 0.1
    done
    if docker2_ping && [[ "$(cat "$DOCKERD2_MARK" 2>/dev/null)" == "$want" ]]; then
      log "second dockerd already running (pid $(cat "$DOCKERD2_PID"), unix://$SOCK2)"
      return 0
    fi
    if pid_alive "$DOCKERD2_PID" dockerd; then
      if docker2_ping; then
        log "second dockerd (pid $(cat "$DOCKERD2_PID")) runs with other arguments; restarting it"
      else
        log "second dockerd (pid $(cat "$DOCKERD2_PID")) does not answer; restarting it"
      fi
      stop_pidfile "$DOCKERD2_PID" "second dockerd" 30 dockerd
    fi
  fi
  rm -f "$DOCKERD2_MARK"
  (( ${#SOCK2} < 100 )) || die "socket path too long: $SOCK2 (set DBK_SERVICES_DIR shorter)"
  # Leftovers of a killed daemon (see start_dockerd).
  kill_dockerd2_leftovers
  rm -f "$SOCK2" "$DOCKERD2_PID" "$EXEC_ROOT2/containerd/containerd.pid"
  mkdir -p "$DATA_ROOT2" "$EXEC_ROOT2"
  # Own (empty) config file: never pick up /etc/docker/daemon.json.
  [[ -f "$DOCKERD2_CONFIG" ]] || echo '{}' >"$DOCKERD2_CONFIG"
  : >"$DOCKERD2_LOG"
  log "starting the second dockerd (log $DOCKERD2_LOG)"
  local dpid
  dpid="$(spawn "$DOCKERD2_LOG" "${DOCKERD2_ARGS[@]}")"
  for ((i = 0; i < 600; i++)); do
    docker2_ping && break
    pid_running "$dpid" || break
    sleep 0.1
  done
  if ! docker2_ping; then
    log "the second dockerd did not answer on $SOCK2 within 60s; log tail:"
    tail -n 40 "$DOCKERD2_LOG" >&2 || true
    exit 1
  fi
  echo "$want" >"$DOCKERD2_MARK"
  log "second dockerd up (pid $(cat "$DOCKERD2_PID" 2>/dev/null || echo '?'), unix://$SOCK2)"
}

image_id_on() { # socket image → the image's id there (empty when absent)
  lcurl --max-time 10 --unix-socket "$1" "http://docker/images/$2/json" 2>/dev/null |
    grep -o '"Id":"[^"]*"' | head -n1 | cut -d'"' -f4 || true
}

# The base images of the first daemon ($BASE_IMAGE, $BASE_IMAGE_AMD64, and
# $BASE_IMAGE_ARM64 when emulation.sh made it), same ids, in the second one:
# copied over (save from the first, load into the second) when missing.
ensure_dockerd2_images() {
  local img id copy=() query=""
  for img in "$BASE_IMAGE" "$BASE_IMAGE_AMD64" "$BASE_IMAGE_ARM64"; do
    # shellcheck disable=SC2153 # SOCK: the first daemon's (dockerd.sh).
    id="$(image_id_on "$SOCK" "$img")"
    [[ -n "$id" ]] || continue
    [[ "$(image_id_on "$SOCK2" "$img")" == "$id" ]] && continue
    copy+=("$img")
    query+="${query:+&}names=$img"
  done
  if (( ${#copy[@]} == 0 )); then
    log "base images present in the second dockerd"
    return 0
  fi
  log "copying ${copy[*]} into the second dockerd"
  local out
  out="$(lcurl --max-time 120 --unix-socket "$SOCK" "http://docker/images/get?$query" |
    lcurl --max-time 120 -X POST -H 'Content-Type: application/x-tar' --data-binary @- \
      --unix-socket "$SOCK2" "http://docker/images/load?quiet=1")" ||
    die "copying ${copy[*]} into the second dockerd failed: $out"
  [[ "$out" != *'"error'* ]] || die "loading ${copy[*]} into the second dockerd failed: $out"
  for img in "${copy[@]}"; do
    [[ "$(image_id_on "$SOCK2" "$img")" == "$(image_id_on "$SOCK" "$img")" ]] ||
      die "$img differs between the two dockerds after the copy: $out"
  done
}

# Stops the second dockerd, then whatever a killed one left: its containerd
# and shims, mounts under its dirs (deepest first), the socket.
stop_dockerd2() {
  stop_pidfile "$DOCKERD2_PID" "second dockerd" 30 dockerd
  rm -f "$DOCKERD2_MARK"
  kill_dockerd2_leftovers
  umount_under "$DATA_ROOT2" "$EXEC_ROOT2"
  rm -f "$SOCK2"
}

# The second dockerd's lines of `status`; fails when it does not answer.
dockerd2_status() {
  if ! pid_alive "$DOCKERD2_PID" dockerd; then
    echo "second dockerd: not running"; return 1
  fi
  if ! docker2_ping; then
    echo "second dockerd: pid $(cat "$DOCKERD2_PID") alive but unix://$SOCK2 does not answer"; return 1
  fi
  echo "second dockerd: running (pid $(cat "$DOCKERD2_PID")), unix://$SOCK2 answers"
  local img have=() lack=()
  for img in "$BASE_IMAGE" "$BASE_IMAGE_AMD64" "$BASE_IMAGE_ARM64"; do
    if [[ -n "$(image_id_on "$SOCK2" "$img")" ]]; then have+=("$img"); else lack+=("$img"); fi
  done
  echo "second dockerd images: present: ${have[*]:-none}; missing: ${lack[*]:-none}"
}
