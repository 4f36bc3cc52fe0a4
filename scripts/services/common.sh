# shellcheck shell=bash
# What every service file of scripts/services.sh uses: logging, curl without a
# proxy, pidfiles, detached processes, stopping processes found by their
# arguments or parent, unmounting, shell and regex quoting, atomic files.
# Sourced by scripts/services.sh; defines functions only.

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

# The string as an extended regex matching itself literally.
# shellcheck disable=SC2016 # $ is a character of the sed expression.
re_escape() { printf '%s' "$1" | sed 's/[][\.|$(){}?+*^]/\\&/g'; }

# Processes with an argument that starts with one of the given paths: the
# argument itself must start with it, so "$DIR/docker/" never matches
# "$DIR/docker2/..." nor "/elsewhere$DIR/docker/...". Never this shell.
pids_with_arg_under() { # path...
  local re="" p f
  for p in "$@"; do re+="${re:+|}$(re_escape "$p")"; done
  # -z: each NUL-separated argument is a "line", so ^ anchors at its start.
  for f in $(grep -lzaE "^($re)" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    p="${f#/proc/}"; p="${p%/cmdline}"
    [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
    echo "$p"
  done
}

# Stops the processes (already gone ones are fine): TERM, up to 5s, then KILL.
stop_pids() { # what pid...
  local what="$1" p i alive; shift
  (( $# > 0 )) || return 0
  log "stopping $what: $*"
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 100; i++)); do
    alive=()
    for p in "$@"; do pid_running "$p" && alive+=("$p"); done
    (( ${#alive[@]} == 0 )) && return 0
    (( i == 50 )) && for p in "${alive[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    sleep 0.1
  done
}

# All descendants of a process (children, their children, ...).
descendant_pids() { # pid
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      n = split(kids[root], q, " ")
      for (i = 1; i <= n; i++) {
        print q[i]
        m = split(kids[q[i]], c, " ")
        for (j = 1; j <= m; j++) q[++n] = c[j]
      }
    }'
}

# Lazily unmounts whatever is mounted under the given dirs, deepest first.
umount_under() { # dir...
  local re="" d m
  for d in "$@"; do re+="${re:+|}$(re_escape "${d%/}")"; done
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk '{print $2}' /proc/self/mounts | grep -E "^($re)/" | sort -r || true)
}

# Writes content (and a newline) to file with the given mode, atomically, when
# the file does not already hold exactly that. Succeeds when it wrote.
put_file() { # file mode content
  local f="$1" mode="$2" tmp
  if [[ -f "$f" && "$(cat "$f")" == "$3" && "$(stat -c %a "$f")" == "$mode" ]]; then
    return 1
  fi
  tmp="$(mktemp "$f.XXXXXX")"
  printf '%s\n' "$3" >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$f"
}
