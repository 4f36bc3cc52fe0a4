# shellcheck shell=bash
# What every service file of scripts/services.sh uses: logging, curl without a
# proxy, pidfiles, detached processes, shell quoting. Sourced by
# scripts/services.sh; defines functions only.

log() { echo "services: $*" >&2; }

die() { log "error: $*"; exit 1; }

# curl that never goes through a proxy (all our traffic is local).
lcurl() { curl --noproxy '*' -sS "$@"; }

pid_running() { # pid: exists and is not a zombie
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

pid_alive() { # pidfile [expected comm]
  local f="$1" want="${2:-}" pid comm
  [[ -s "$f" ]] || return 1
  pid="$(cat "$f" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  pid_running "$pid" || return 1
  if [[ -n "$want" ]]; then
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
    [[ "$comm" == "$want"* ]] || return 1
  fi
  return 0
}

# Something accepts TCP connections on 127.0.0.1:port.
port_open() {
  # shellcheck disable=SC2016 # $1 is the inner shell's.
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Runs "$@" fully detached: own session, stdin from /dev/null, output to a
# log, no inherited descriptors (so callers reading our stdout through a pipe
# do not hang on a daemon holding it open), no proxy variables. Echoes the pid.
spawn() { # logfile cmd...
  local logf="$1"; shift
  (
    for fd in "/proc/$BASHPID/fd/"*; do
      fd="${fd##*/}"
      if [[ "$fd" =~ ^[0-9]+$ ]] && (( fd > 2 )); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
      -u all_proxy -u ALL_PROXY -u no_proxy -u NO_PROXY -u DOCKER_HOST \
      -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
      setsid "$@" </dev/null >>"$logf" 2>&1
  ) &
  echo $!
}

stop_pidfile() { # pidfile name timeout_seconds [comm]
  local f="$1" name="$2" t="$3" comm="${4:-}" pid i
  if ! pid_alive "$f" "$comm"; then rm -f "$f"; return 0; fi
  pid="$(cat "$f")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    pid_alive "$f" || break
    sleep 0.1
  done
  if pid_alive "$f"; then
    log "$name did not exit in ${t}s, killing"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do pid_alive "$f" || break; sleep 0.1; done
  fi
  rm -f "$f"
}

# Single-quoted for sh.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
