# shellcheck shell=bash
# The shared registry (docker-registry 2.8) with htpasswd auth on
# 127.0.0.1:$PORT: its password, htpasswd file and config, start or reuse it,
# stop it, report on it. (Tests that need a registry of their own start one with
# tests/common/services/registry.rs.)

PORT="${DBK_REGISTRY_PORT:-5055}"
REG_USER="dbk"
REG_PID="$DIR/registry.pid"
REG_LOG="$DIR/registry.log"
PASS_FILE="$DIR/registry.password"

registry_code() {
  lcurl --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/" 2>/dev/null || true
}

start_registry() {
  mkdir -p "$DIR/registry-data"
  if [[ ! -s "$PASS_FILE" ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 >"$PASS_FILE")
  fi
  local pass
  pass="$(cat "$PASS_FILE")"
  # Regenerate the htpasswd file only when the password changed.
  if [[ ! -s "$DIR/htpasswd" ]] || ! htpasswd -vbB "$DIR/htpasswd" "$REG_USER" "$pass" >/dev/null 2>&1; then
    (umask 077; htpasswd -Bbn "$REG_USER" "$pass" >"$DIR/htpasswd")
  fi
  local secret
  if [[ ! -s "$DIR/registry.secret" ]]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DIR/registry.secret")
  fi
  secret="$(cat "$DIR/registry.secret")"
  local cfg="$DIR/registry.yml" new
  new="$(cat <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $DIR/registry-data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$PORT
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: dbk-registry
    path: $DIR/htpasswd
EOF
)"
  local changed=0
  if [[ ! -f "$cfg" ]] || [[ "$(cat "$cfg")" != "$new" ]]; then
    printf '%s\n' "$new" >"$cfg"
    changed=1
  fi

  if pid_alive "$REG_PID" docker-registry; then
    if (( changed == 0 )) && [[ "$(registry_code)" == 401 ]]; then
      log "registry already running (pid $(cat "$REG_PID"), 127.0.0.1:$PORT)"
      return 0
    fi
    stop_pidfile "$REG_PID" registry 10 docker-registry
  fi
  rm -f "$REG_PID"
  local code
  code="$(registry_code)"
  if [[ -n "$code" && "$code" != 000 ]]; then
    die "127.0.0.1:$PORT is already served by something else (HTTP $code); set DBK_REGISTRY_PORT"
  fi
  : >"$REG_LOG"
  log "starting registry on 127.0.0.1:$PORT (log $REG_LOG)"
  local pid
  pid="$(spawn "$REG_LOG" docker-registry serve "$cfg")"
  echo "$pid" >"$REG_PID"
  local i
  for ((i = 0; i < 300; i++)); do
    [[ "$(registry_code)" == 401 ]] && break
    pid_running "$pid" || break
    sleep 0.1
  done
  if [[ "$(registry_code)" != 401 ]]; then
    log "registry did not answer 401 on http://127.0.0.1:$PORT/v2/; log tail:"
    tail -n 40 "$REG_LOG" >&2 || true
    exit 1
  fi
  log "registry up (pid $pid)"
}

stop_registry() {
  stop_pidfile "$REG_PID" registry 10 docker-registry
}

# The registry line of `status`; fails when it does not run.
registry_status() {
  if pid_alive "$REG_PID" docker-registry; then
    echo "registry: running (pid $(cat "$REG_PID")), http://127.0.0.1:$PORT/v2/ -> $(registry_code)"
  else
    echo "registry: not running"; return 1
  fi
}
