# shellcheck shell=bash
# A private OpenSSH server on 127.0.0.1:$SSHD_PORT, for the tests of ssh://
# Docker hosts: its own config, host key and authorized keys in $SSH_DIR (root's
# real ~/.ssh and /etc/ssh are never used), public-key logins as root only; and
# what a client needs: keys, known_hosts files, a client config with one Host
# alias per case, and $SSH_BIN/ssh (ssh with that config), to put first in PATH
# because the provider, like the docker CLI, runs plain `ssh`. Start or reuse it,
# stop it and its sessions, report on it.
#
# The client aliases (all 127.0.0.1:$SSHD_PORT, user root, batch mode, strict
# host key checking against the host key alias $SSH_HOST_ALIAS):
#   dbk-ssh-ok            logs in; `docker` there is /usr/bin/docker (the
#                         classic CLI) talking to the first private dockerd
#   dbk-ssh-nodocker      logs in; `docker` is not found (PATH=/nonexistent)
#   dbk-ssh-refused       its key is not authorized: "Permission denied"
#   dbk-ssh-unknown-host  empty known_hosts: "Host key verification failed"

SSHD_PORT="${DBK_SSHD_PORT:-2222}"
SSHD=/usr/sbin/sshd
SSH_DIR="$DIR/ssh"
SSH_BIN="$SSH_DIR/bin"
SSHD_CONFIG="$SSH_DIR/sshd_config"
SSH_HOST_KEY="$SSH_DIR/ssh_host_ed25519_key"
SSH_CLIENT_CONFIG="$SSH_DIR/config"
# HOME of the logins: an empty dir, so that neither root's ~/.bashrc (which
# bash sources for commands run through sshd) nor its ~/.docker is used.
SSH_HOME="$SSH_DIR/home"
SSH_HOST_ALIAS="dbk-sshd"
SSHD_PID="$DIR/sshd.pid"
SSHD_LOG="$DIR/sshd.log"
# sshd's privilege separation directory (must exist, root-owned, not writable
# by others).
SSHD_PRIVSEP_DIR=/run/sshd

# Makes the key pair once (kept while both halves exist).
ssh_key_once() { # keyfile comment
  [[ -s "$1" && -s "$1.pub" ]] && return 0
  rm -f "$1" "$1.pub"
  ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1" </dev/null >/dev/null ||
    die "ssh-keygen for $1 failed"
}

# The public key without its comment.
ssh_pub() { cut -d' ' -f1,2 "$1.pub"; }

ssh_client_host() { # alias identity known_hosts
  printf '%s\n' \
    "Host $1" \
    "  HostName 127.0.0.1" \
    "  Port $SSHD_PORT" \
    "  User root" \
    "  IdentityFile $SSH_DIR/$2" \
    "  IdentitiesOnly yes" \
    "  IdentityAgent none" \
    "  BatchMode yes" \
    "  HostKeyAlias $SSH_HOST_ALIAS" \
    "  UserKnownHostsFile $SSH_DIR/$3" \
    "  GlobalKnownHostsFile /dev/null" \
    "  StrictHostKeyChecking yes" \
    "  CheckHostIP no" \
    "  UpdateHostKeys no" \
    "  ConnectTimeout 10" \
    "  ControlMaster no" \
    "  ControlPath none" \
    "  ForwardAgent no" \
    "  ForwardX11 no"
}

# Keys, authorized_keys, known_hosts files, the client config, the ssh wrapper
# and sshd's config. Sets SSHD_CONFIG_CHANGED=1 when sshd's config changed.
SSHD_CONFIG_CHANGED=0
ensure_ssh_files() {
  # These paths go unquoted into sshd/ssh configs and authorized_keys options.
  [[ "$DIR" =~ ^[A-Za-z0-9_./+-]+$ ]] ||
    die "DBK_SERVICES_DIR '$DIR' has characters the ssh configs cannot take"
  mkdir -p "$SSH_DIR" "$SSH_BIN" "$SSH_HOME"
  chmod 700 "$SSH_DIR" "$SSH_HOME"
  ssh_key_once "$SSH_HOST_KEY" "dbk-sshd host key"
  ssh_key_once "$SSH_DIR/id_ok" dbk-ssh-ok
  ssh_key_once "$SSH_DIR/id_nodocker" dbk-ssh-nodocker
  ssh_key_once "$SSH_DIR/id_refused" dbk-ssh-refused
  put_file "$SSH_DIR/authorized_keys" 600 "$(printf '%s\n' \
    "environment=\"DOCKER_HOST=unix://$SOCK\",environment=\"PATH=/usr/bin:/bin\",environment=\"HOME=$SSH_HOME\" $(ssh_pub "$SSH_DIR/id_ok") dbk-ssh-ok" \
    "environment=\"PATH=/nonexistent\",environment=\"HOME=$SSH_HOME\" $(ssh_pub "$SSH_DIR/id_nodocker") dbk-ssh-nodocker")" || true
  put_file "$SSH_DIR/known_hosts" 644 "$SSH_HOST_ALIAS $(ssh_pub "$SSH_HOST_KEY")" || true
  if [[ -s "$SSH_DIR/known_hosts_empty" || ! -f "$SSH_DIR/known_hosts_empty" ]]; then
    : >"$SSH_DIR/known_hosts_empty"
  fi
  put_file "$SSH_CLIENT_CONFIG" 644 "$(
    echo "# Written by scripts/services.sh (services/sshd.sh); use with ssh -F, or $SSH_BIN/ssh."
    ssh_client_host dbk-ssh-ok id_ok known_hosts
    ssh_client_host dbk-ssh-nodocker id_nodocker known_hosts
    ssh_client_host dbk-ssh-refused id_refused known_hosts
    ssh_client_host dbk-ssh-unknown-host id_ok known_hosts_empty
  )" || true
  put_file "$SSH_BIN/ssh" 755 "$(printf '%s\n' '#!/bin/sh' \
    "# Written by scripts/services.sh: ssh with the private sshd's client config." \
    "exec /usr/bin/ssh -F $(sq "$SSH_CLIENT_CONFIG") \"\$@\"")" || true
  SSHD_CONFIG_CHANGED=0
  if put_file "$SSHD_CONFIG" 600 "$(printf '%s\n' \
    "# Written by scripts/services.sh (services/sshd.sh)." \
    "Port $SSHD_PORT" \
    "ListenAddress 127.0.0.1" \
    "AddressFamily inet" \
    "HostKey $SSH_HOST_KEY" \
    "PidFile none" \
    "AuthorizedKeysFile $SSH_DIR/authorized_keys" \
    "AuthorizedKeysCommand none" \
    "AuthorizedPrincipalsFile none" \
    "PubkeyAuthentication yes" \
    "PasswordAuthentication no" \
    "KbdInteractiveAuthentication no" \
    "HostbasedAuthentication no" \
    "GSSAPIAuthentication no" \
    "PermitRootLogin prohibit-password" \
    "AllowUsers root" \
    "PermitUserEnvironment yes" \
    "UsePAM no" \
    "StrictModes no" \
    "AllowAgentForwarding no" \
    "AllowTcpForwarding no" \
    "AllowStreamLocalForwarding no" \
    "PermitTunnel no" \
    "X11Forwarding no" \
    "PrintMotd no" \
    "PrintLastLog no" \
    "UseDNS no" \
    "MaxStartups 100:30:200" \
    "MaxSessions 100" \
    "LogLevel VERBOSE")"; then
    SSHD_CONFIG_CHANGED=1
  fi
}

# A login through dbk-ssh-ok reaches the first dockerd with the docker CLI:
# `docker version` there prints the server's version. SSHD_CHECK is what it
# printed (or the error).
SSHD_CHECK=""
sshd_healthy() {
  local rc=0
  SSHD_CHECK="$(timeout 20 "$SSH_BIN/ssh" dbk-ssh-ok \
    "docker version --format '{{.Server.Version}}'" </dev/null 2>&1)" || rc=$?
  SSHD_CHECK="${SSHD_CHECK//$'\n'/ }"
  (( rc == 0 )) && [[ "$SSHD_CHECK" =~ ^[0-9]+\.[0-9]+[^\ ]*$ ]]
}

# sshd processes serving connections to 127.0.0.1:$SSHD_PORT (sessions of a
# listener that is gone), plus what they run.
sshd_orphan_session_pids() {
  local p
  for p in $(ss -Htnp state established "( sport = :$SSHD_PORT )" 2>/dev/null |
    grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == sshd ]] || continue
    echo "$p"
    descendant_pids "$p"
  done
}

# Stops the listener and its sessions (forked children, whatever they run).
stop_sshd() {
  local procs=()
  if pid_alive "$SSHD_PID" sshd; then
    mapfile -t procs < <(descendant_pids "$(cat "$SSHD_PID")")
    stop_pidfile "$SSHD_PID" sshd 10 sshd
  fi
  rm -f "$SSHD_PID"
  # Sessions of a listener killed earlier (only when nothing else listens on
  # the port: then they cannot be anyone else's).
  if ! port_open "$SSHD_PORT"; then
    mapfile -t -O "${#procs[@]}" procs < <(sshd_orphan_session_pids)
  fi
  (( ${#procs[@]} == 0 )) || mapfile -t procs < <(printf '%s\n' "${procs[@]}" | sort -un)
  stop_pids "sshd sessions" "${procs[@]}"
}

start_sshd() {
  [[ -x "$SSHD" ]] || die "$SSHD is missing (package openssh-server)"
  getent passwd sshd >/dev/null ||
    die "user sshd (sshd's privilege separation user, made by openssh-server) is missing"
  ensure_ssh_files
  if [[ ! -d "$SSHD_PRIVSEP_DIR" ]]; then
    mkdir -p "$SSHD_PRIVSEP_DIR"
    chmod 755 "$SSHD_PRIVSEP_DIR"
  fi
  if pid_alive "$SSHD_PID" sshd; then
    if (( SSHD_CONFIG_CHANGED == 0 )) && sshd_healthy; then
      log "sshd already running (pid $(cat "$SSHD_PID"), 127.0.0.1:$SSHD_PORT)"
      return 0
    fi
    if (( SSHD_CONFIG_CHANGED )); then
      log "sshd (pid $(cat "$SSHD_PID")) runs with an older config; restarting it"
    else
      log "sshd (pid $(cat "$SSHD_PID")) does not let dbk-ssh-ok reach dockerd; restarting it"
    fi
    stop_sshd
  fi
  rm -f "$SSHD_PID"
  if port_open "$SSHD_PORT"; then
    die "127.0.0.1:$SSHD_PORT is already in use by something else; set DBK_SSHD_PORT"
  fi
  local out
  out="$("$SSHD" -t -f "$SSHD_CONFIG" 2>&1)" || die "sshd rejects $SSHD_CONFIG: $out"
  : >"$SSHD_LOG"
  log "starting sshd on 127.0.0.1:$SSHD_PORT (log $SSHD_LOG)"
  local pid i
  # -D: stay in the foreground (spawn detaches it); -e: log to the log file.
  pid="$(spawn "$SSHD_LOG" "$SSHD" -D -e -f "$SSHD_CONFIG")"
  echo "$pid" >"$SSHD_PID"
  for ((i = 0; i < 100; i++)); do
    port_open "$SSHD_PORT" && break
    pid_running "$pid" || break
    sleep 0.1
  done
  if ! pid_running "$pid" || ! port_open "$SSHD_PORT"; then
    log "sshd does not listen on 127.0.0.1:$SSHD_PORT; log tail:"
    tail -n 40 "$SSHD_LOG" >&2 || true
    exit 1
  fi
  if ! sshd_healthy; then
    log "ssh dbk-ssh-ok does not reach dockerd: $SSHD_CHECK"
    log "sshd log tail:"
    tail -n 40 "$SSHD_LOG" >&2 || true
    exit 1
  fi
  log "sshd up (pid $pid, 127.0.0.1:$SSHD_PORT; through dbk-ssh-ok, docker version -> $SSHD_CHECK)"
}

# The sshd line of `status`; fails when it does not run or dbk-ssh-ok does not
# reach dockerd.
sshd_status() {
  if ! pid_alive "$SSHD_PID" sshd; then
    echo "sshd: not running"; return 1
  fi
  if sshd_healthy; then
    echo "sshd: running (pid $(cat "$SSHD_PID")), 127.0.0.1:$SSHD_PORT; ssh dbk-ssh-ok docker version -> $SSHD_CHECK (client: $SSH_BIN/ssh)"
  else
    echo "sshd: running (pid $(cat "$SSHD_PID")) but ssh dbk-ssh-ok docker version fails: $SSHD_CHECK"; return 1
  fi
}
