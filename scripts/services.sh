#!/usr/bin/env bash
# Local services for the docker-buildkit tests: a private Docker Engine
# (dockerd 20.10, BuildKit built in) on its own unix socket and on
# tcp://127.0.0.1:$DBK_DOCKER_TLS_PORT (default 2376) with TLS client
# verification, a registry 2.8 with htpasswd auth on 127.0.0.1, and a local
# busybox base image (amd64), plus what foreign-platform RUN steps need: qemu
# user emulation registered with binfmt_misc (handler qemu-aarch64, F flag) and
# an arm64 busybox base image.
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
# DBK_DOCKER_CERT_PATH (the TLS endpoint and its client certificates), and
# DBK_REGISTRY, DBK_REGISTRY_USER, DBK_REGISTRY_PASSWORD, DBK_BASE_IMAGE,
# DBK_BASE_IMAGE_AMD64 (the same image under an arch-named tag), DBK_BASE_IMAGE_ARM64,
# DBK_SERVICES_DIR, and DBK_EMULATION: 1 when this host (the one dockerd runs on)
# runs linux/arm64 programs through qemu, else 0 with DBK_EMULATION_REASON saying
# why. Emulation that cannot be set up never makes `up` fail.
#
# Emulation is host-wide kernel state (binfmt_misc), not a process: `down` leaves
# it as it is.
#
# Nothing here creates a network bridge or talks to anything but 127.0.0.1 and
# the private unix socket. No image is ever pulled.
set -euo pipefail

DIR="${DBK_SERVICES_DIR:-/tmp/docker-buildkit-services}"
PORT="${DBK_REGISTRY_PORT:-5055}"
TLS_PORT="${DBK_DOCKER_TLS_PORT:-2376}"
BASE_IMAGE="dbk-busybox:1"
# The amd64 base under an arch-named tag, so a Dockerfile can pick its base per
# platform: `FROM dbk-busybox-${TARGETARCH}:1`.
BASE_IMAGE_AMD64="dbk-busybox-amd64:1"
BASE_IMAGE_ARM64="dbk-busybox-arm64:1"
REG_USER="dbk"

SOCK="$DIR/docker.sock"
DOCKERD_PID="$DIR/dockerd.pid"
DOCKERD_LOG="$DIR/dockerd.log"
REG_PID="$DIR/registry.pid"
REG_LOG="$DIR/registry.log"
ENV_FILE="$DIR/env"
PASS_FILE="$DIR/registry.password"
TLS_DIR="$DIR/tls"
# What the running dockerd was started with (TLS address and certificates);
# compared on `up` to decide whether it can be reused.
DOCKERD_TLS_MARK="$DIR/dockerd.tls"

PACKAGES=(docker.io docker-registry apache2-utils busybox-static curl openssl)
EMU_PACKAGES=(qemu-user-static binfmt-support)
# Overridable only to exercise the "emulation unavailable" path.
BINFMT_DIR="${DBK_BINFMT_DIR:-/proc/sys/fs/binfmt_misc}"
EMU_HANDLER="$BINFMT_DIR/qemu-aarch64"
# The arm64 busybox (from the busybox-static:arm64 package) and its rootfs.
ARM64_DIR="$DIR/arm64"
# The Debian docker CLI (20.10): it can build with BuildKit against the private
# daemon; the 28.x CLI in /usr/local/bin has no buildx plugin.
BUILDKIT_CLI=/usr/bin/docker

# Set by ensure_emulation*: whether arm64 programs run here, and why not.
EMULATION=1
EMULATION_REASON=""
ARM64_ERROR=""

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$TLS_PORT" =~ ^[0-9]{1,5}$ ]] && (( 10#$TLS_PORT > 0 && 10#$TLS_PORT < 65536 )) ||
  die "DBK_DOCKER_TLS_PORT must be a port number, got '$TLS_PORT'"
[[ "$TLS_PORT" != "$PORT" ]] || die "DBK_DOCKER_TLS_PORT and DBK_REGISTRY_PORT are both $PORT"

# ---------------------------------------------------------------- helpers

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

# Something accepts TCP connections on 127.0.0.1:port.
port_open() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

registry_code() {
  lcurl --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v2/" 2>/dev/null || true
}

# Runs "$@" fully detached: own session, stdin from /dev/null, output to a
# log, no inherited descriptors (so callers reading our stdout through a pipe
# do not hang on a daemon holding it open), no proxy variables. Echoes the pid.
spawn() { # logfile cmd...
  local logf="$1"; shift
  (
    for fd in /proc/$BASHPID/fd/*; do
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

# Processes whose command line names one of our private paths (the managed
# containerd and its shims). Used only to clean up after a dockerd that had
# to be killed; matches our state dir, never a program name.
our_leftover_pids() {
  local f p
  for f in $(grep -laF -e "$EXEC_ROOT/containerd/" -e "$DIR/docker/containerd" /proc/[0-9]*/cmdline 2>/dev/null || true); do
    p="${f#/proc/}"; p="${p%/cmdline}"
    [[ "$p" == "$$" || "$p" == "$BASHPID" ]] && continue
    echo "$p"
  done
}

kill_leftovers() {
  local left p i
  left="$(our_leftover_pids)"
  [[ -n "$left" ]] || return 0
  log "stopping leftover containerd/shim processes: $(echo $left)"
  for p in $left; do kill -TERM "$p" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    [[ -z "$(our_leftover_pids)" ]] && return 0
    sleep 0.1
  done
  for p in $(our_leftover_pids); do kill -KILL "$p" 2>/dev/null || true; done
  for ((i = 0; i < 50; i++)); do
    [[ -z "$(our_leftover_pids)" ]] && return 0
    sleep 0.1
  done
}

# Exec-root holds containerd's sockets; unix socket paths are limited to 107
# bytes. Fall back to a short path derived from the state dir when needed.
EXEC_ROOT="$DIR/exec"
if (( ${#EXEC_ROOT} + 40 > 100 )); then
  EXEC_ROOT="/tmp/dbk-exec-$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
fi

# ---------------------------------------------------------------- install

missing_packages() { # package... → prints those not installed
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      echo "$p"
    fi
  done
}

# apt-get install "$@", quietly; on failure prints the tail of apt's output
# to stderr and returns non-zero (the caller decides whether that is fatal).
apt_install() {
  # Keep package scripts from starting a system dockerd (which would create
  # the docker0 bridge), a system registry or binfmt-support's service.
  local made_policy=0 rc=0 aptlog="/tmp/dbk-apt.$$.log"
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  (
    export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
    apt-get update -qq &&
      apt-get install -y -qq "$@"
  ) >"$aptlog" 2>&1 || rc=$?
  (( made_policy )) && rm -f /usr/sbin/policy-rc.d
  if (( rc != 0 )); then
    tail -n 40 "$aptlog" >&2
  fi
  rm -f "$aptlog"
  return $rc
}

ensure_packages() {
  local missing=()
  mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
  [[ -x /bin/busybox ]] || missing+=(busybox-static)
  (( ${#missing[@]} == 0 )) && return 0
  (( EUID == 0 )) || die "missing packages ${missing[*]} and not root"
  log "installing: ${missing[*]}"
  apt_install "${missing[@]}" || die "apt-get failed"
}

# ---------------------------------------------------------------- TLS

# The certificates in $TLS_DIR are complete, chain to our CA, match their
# keys, stay valid for at least another week, and the copies of ca.pem agree.
tls_certs_ok() {
  local f d cert key
  for f in ca/ca.pem ca/ca-key.pem server/ca.pem server/cert.pem server/key.pem \
    client/ca.pem client/cert.pem client/key.pem; do
    [[ -s "$TLS_DIR/$f" ]] || return 1
  done
  cmp -s "$TLS_DIR/ca/ca.pem" "$TLS_DIR/server/ca.pem" || return 1
  cmp -s "$TLS_DIR/ca/ca.pem" "$TLS_DIR/client/ca.pem" || return 1
  openssl verify -CAfile "$TLS_DIR/ca/ca.pem" \
    "$TLS_DIR/server/cert.pem" "$TLS_DIR/client/cert.pem" >/dev/null 2>&1 || return 1
  for d in ca server client; do
    cert="$TLS_DIR/$d/cert.pem" key="$TLS_DIR/$d/key.pem"
    [[ "$d" == ca ]] && cert="$TLS_DIR/ca/ca.pem" key="$TLS_DIR/ca/ca-key.pem"
    openssl x509 -noout -checkend 604800 -in "$cert" >/dev/null 2>&1 || return 1
    [[ "$(openssl x509 -noout -pubkey -in "$cert" 2>/dev/null)" == \
      "$(openssl pkey -pubout -in "$key" 2>/dev/null)" ]] || return 1
  done
}

# Makes a new CA, a server certificate for 127.0.0.1/localhost and a client
# certificate, and swaps them into $TLS_DIR.
make_tls_certs() {
  local work
  work="$(mktemp -d "$DIR/tls-new.XXXXXX")"
  local rc=0
  # set -e is ignored in a subshell whose status is tested (if/||): run it as
  # a plain command with errexit off outside and on inside.
  set +e
  (
    set -e
    umask 077
    cd "$work"
    mkdir ca server client
    # Own config: never depend on (or pick up extensions from) the system's.
    printf '%s\n' \
      '[req]' 'distinguished_name = dn' 'prompt = no' \
      '[dn]' 'CN = docker-buildkit test' \
      '[v3_ca]' 'basicConstraints = critical,CA:TRUE,pathlen:0' \
      'keyUsage = critical,keyCertSign,cRLSign' 'subjectKeyIdentifier = hash' \
      '[server]' 'basicConstraints = critical,CA:FALSE' \
      'keyUsage = critical,digitalSignature,keyEncipherment' 'extendedKeyUsage = serverAuth' \
      'subjectAltName = IP:127.0.0.1,DNS:localhost' \
      'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid' \
      '[client]' 'basicConstraints = critical,CA:FALSE' \
      'keyUsage = critical,digitalSignature,keyEncipherment' 'extendedKeyUsage = clientAuth' \
      'subjectKeyIdentifier = hash' 'authorityKeyIdentifier = keyid' >openssl.cnf
    openssl req -config openssl.cnf -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/CN=docker-buildkit test CA" -extensions v3_ca \
      -keyout ca/ca-key.pem -out ca/ca.pem
    for who in server client; do
      if [[ "$who" == server ]]; then cn=127.0.0.1; else cn=docker-buildkit-client; fi
      openssl req -config openssl.cnf -new -newkey rsa:2048 -nodes -sha256 \
        -subj "/CN=$cn" -keyout "$who/key.pem" -out "$who.csr"
      openssl x509 -req -sha256 -days 3650 -in "$who.csr" \
        -CA ca/ca.pem -CAkey ca/ca-key.pem -set_serial "0x$(openssl rand -hex 16)" \
        -extfile openssl.cnf -extensions "$who" -out "$who/cert.pem"
      cp ca/ca.pem "$who/ca.pem"
    done
    rm -f openssl.cnf server.csr client.csr
    chmod 644 ca/ca.pem server/ca.pem server/cert.pem client/ca.pem client/cert.pem
    chmod 755 ca server client
  ) >"$work.log" 2>&1
  rc=$?
  set -e
  if (( rc != 0 )); then
    cat "$work.log" >&2
    rm -rf "$work" "$work.log"
    die "could not make the TLS certificates"
  fi
  rm -f "$work.log"
  chmod 700 "$work"
  rm -rf "$TLS_DIR"
  mv "$work" "$TLS_DIR"
}

ensure_tls_certs() {
  tls_certs_ok && return 0
  log "making TLS certificates in $TLS_DIR"
  make_tls_certs
  tls_certs_ok || die "the new TLS certificates in $TLS_DIR do not verify"
}

# Identifies the TLS setup dockerd must run with: address and certificates.
tls_mark() {
  echo "127.0.0.1:$TLS_PORT $(cat "$TLS_DIR/server/ca.pem" "$TLS_DIR/server/cert.pem" \
    "$TLS_DIR/server/key.pem" | sha256sum | cut -d' ' -f1)"
}

# ---------------------------------------------------------------- dockerd

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

# ---------------------------------------------------------------- registry

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

# ---------------------------------------------------------------- base images

image_code() { # image → HTTP status of its inspect
  lcurl -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" "http://docker/images/$1/json" 2>/dev/null || true
}

image_field() { # image field → the value of a top-level string field of its inspect
  lcurl --unix-socket "$SOCK" "http://docker/images/$1/json" 2>/dev/null |
    grep -o "\"$2\":\"[^\"]*\"" | head -n1 | cut -d'"' -f4
}

# A busybox rootfs in $1 (created) around the binary $2, with a link for each
# applet named on stdin, /usr/bin/env, and minimal passwd/group files.
make_rootfs() { # root busybox_binary < applet names
  local root="$1" bb="$2" name
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/usr/bin" \
    "$root/dev" "$root/proc" "$root/sys" "$root/var"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  cp "$bb" "$root/bin/busybox"
  chmod 755 "$root/bin/busybox"
  while read -r name; do
    [[ -z "$name" || "$name" == busybox || "$name" == */* ]] && continue
    ln -sf busybox "$root/bin/$name"
  done
  ln -sf ../../bin/busybox "$root/usr/bin/env"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

# Reproducible tar: same bytes (so same layer digest) every time.
rootfs_tar() { # root tarfile
  tar --sort=name --mtime='2020-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
    -C "$1" -cf "$2" .
}

ensure_base_image() {
  if [[ "$(image_code "$BASE_IMAGE")" == 200 ]]; then
    log "base image $BASE_IMAGE present"
    return 0
  fi
  log "making base image $BASE_IMAGE from /bin/busybox"
  local work
  work="$(mktemp -d "$DIR/base.XXXXXX")"
  /bin/busybox --list | make_rootfs "$work/root" /bin/busybox
  rootfs_tar "$work/root" "$work/root.tar"
  local out
  out="$(lcurl -X POST -H 'Content-Type: application/x-tar' --data-binary "@$work/root.tar" \
    --unix-socket "$SOCK" \
    "http://docker/images/create?fromSrc=-&repo=dbk-busybox&tag=1&changes=ENV%20PATH%3D%2Fbin")"
  rm -rf "$work"
  if [[ "$out" == *'"error'* ]]; then
    die "import of $BASE_IMAGE failed: $out"
  fi
  [[ "$(image_code "$BASE_IMAGE")" == 200 ]] || die "base image $BASE_IMAGE missing after import: $out"
}

# The amd64 base also as $BASE_IMAGE_AMD64 (same image id).
ensure_base_alias() {
  local id
  id="$(image_field "$BASE_IMAGE" Id)"
  [[ -n "$id" ]] || die "base image $BASE_IMAGE has no id"
  [[ "$(image_field "$BASE_IMAGE_AMD64" Id)" == "$id" ]] && return 0
  log "tagging $BASE_IMAGE as $BASE_IMAGE_AMD64"
  local code
  code="$(lcurl -o /dev/null -w '%{http_code}' -X POST --unix-socket "$SOCK" \
    "http://docker/images/$BASE_IMAGE/tag?repo=${BASE_IMAGE_AMD64%:*}&tag=${BASE_IMAGE_AMD64##*:}")"
  [[ "$code" == 201 ]] || die "tagging $BASE_IMAGE as $BASE_IMAGE_AMD64 failed (HTTP $code)"
}

# ---------------------------------------------------------------- emulation
#
# RUN steps for linux/arm64 on this amd64 host run through qemu-aarch64-static,
# registered with the kernel's binfmt_misc with the F flag (the kernel opens
# the interpreter once, at registration, so it works inside containers whose
# root has no qemu). Nothing here is fatal: what cannot be done is recorded as
# DBK_EMULATION=0 with the reason.

emu_unavailable() { # reason
  local reason="$*"
  reason="${reason//$'\n'/ }"
  reason="$(tr -s ' \t' ' ' <<<"$reason")"
  EMULATION=0
  # Keep the first reason: the later ones follow from it.
  [[ -n "$EMULATION_REASON" ]] || EMULATION_REASON="${reason% }"
  log "emulation unavailable: ${reason% }"
}

ensure_emulation_packages() {
  local missing=()
  mapfile -t missing < <(missing_packages "${EMU_PACKAGES[@]}")
  (( ${#missing[@]} == 0 )) && return 0
  if (( EUID != 0 )); then
    emu_unavailable "packages ${missing[*]} are missing and this is not root"
    return 0
  fi
  log "installing: ${missing[*]}"
  apt_install "${missing[@]}" || emu_unavailable "apt-get install ${missing[*]} failed"
}

handler_enabled() { [[ "$(head -n1 "$EMU_HANDLER" 2>/dev/null)" == enabled ]]; }
handler_flags() { sed -n 's/^flags: *//p' "$EMU_HANDLER" 2>/dev/null; }
handler_interpreter() { sed -n 's/^interpreter *//p' "$EMU_HANDLER" 2>/dev/null; }

# binfmt_misc mounted, and the qemu-aarch64 handler registered, enabled, with F.
ensure_binfmt() {
  [[ "$EMULATION" == 1 ]] || return 0
  local out
  if [[ ! -e "$BINFMT_DIR/register" ]]; then
    grep -qw binfmt_misc /proc/filesystems 2>/dev/null || modprobe binfmt_misc >/dev/null 2>&1 || true
    if ! grep -qw binfmt_misc /proc/filesystems 2>/dev/null; then
      emu_unavailable "the kernel has no binfmt_misc file system (not in /proc/filesystems; modprobe binfmt_misc did not help)"
      return 0
    fi
    if ! out="$(mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" 2>&1)"; then
      emu_unavailable "cannot mount binfmt_misc at $BINFMT_DIR: ${out:-mount failed}"
      return 0
    fi
    log "mounted binfmt_misc at $BINFMT_DIR"
  fi
  if [[ -e "$EMU_HANDLER" ]] && ! handler_enabled; then
    # Left disabled (e.g. by an emulation test that was killed): enable it.
    log "enabling the disabled qemu-aarch64 handler"
    echo 1 >"$EMU_HANDLER" 2>/dev/null || true
  fi
  if [[ -e "$EMU_HANDLER" && "$(handler_flags)" != *F* ]]; then
    # Without F the kernel looks the interpreter up in each container's own
    # root, where it does not exist: register it again.
    log "the qemu-aarch64 handler lacks the F flag (flags: $(handler_flags)); registering it again"
    echo -1 >"$EMU_HANDLER" 2>/dev/null || true
  fi
  if [[ ! -e "$EMU_HANDLER" ]]; then
    # binfmt-support's database normally has the format (qemu-user-static's
    # postinst imports it); import it if not.
    if ! update-binfmts --display qemu-aarch64 >/dev/null 2>&1; then
      update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
    fi
    if ! out="$(update-binfmts --enable qemu-aarch64 2>&1)"; then
      emu_unavailable "update-binfmts --enable qemu-aarch64 failed: $out"
      return 0
    fi
    log "registered the qemu-aarch64 binfmt handler"
  fi
  if [[ ! -e "$EMU_HANDLER" ]]; then
    emu_unavailable "$EMU_HANDLER does not exist after update-binfmts --enable qemu-aarch64"
  elif ! handler_enabled; then
    emu_unavailable "$EMU_HANDLER stays disabled"
  elif [[ "$(handler_flags)" != *F* ]]; then
    emu_unavailable "$EMU_HANDLER has no F flag (flags: '$(handler_flags)'), so containers cannot find its interpreter"
  elif [[ ! -x "$(handler_interpreter)" ]]; then
    emu_unavailable "the interpreter of $EMU_HANDLER, '$(handler_interpreter)', is not an executable"
  fi
  return 0
}

# A 64-bit little-endian ELF file for machine 183 (EM_AARCH64).
is_arm64_elf() {
  [[ -f "$1" ]] || return 1
  [[ "$(od -An -tx1 -N20 "$1" 2>/dev/null | tr -d ' \n')" == 7f454c460201* ]] || return 1
  [[ "$(od -An -tx1 -j18 -N2 "$1" 2>/dev/null | tr -d ' \n')" == b700 ]]
}

# $ARM64_DIR/root: a rootfs around the arm64 busybox of busybox-static:arm64,
# and $ARM64_DIR/root.tar. Returns non-zero (after logging) when impossible.
ensure_arm64_rootfs() {
  is_arm64_elf "$ARM64_DIR/root/bin/busybox" && [[ -s "$ARM64_DIR/root.tar" ]] && return 0
  if (( EUID != 0 )); then
    ARM64_ERROR="busybox-static:arm64 is needed and this is not root"
    return 1
  fi
  local work out
  work="$(mktemp -d "$DIR/arm64-new.XXXXXX")"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "dpkg --add-architecture arm64"
    if ! out="$(dpkg --add-architecture arm64 2>&1)"; then
      rm -rf "$work"
      ARM64_ERROR="dpkg --add-architecture arm64 failed: $out"
      return 1
    fi
  fi
  log "downloading busybox-static:arm64"
  # apt-get download: the package file only, nothing installed.
  if ! (cd "$work" && apt-get download -qq busybox-static:arm64) >"$work/apt.log" 2>&1; then
    log "updating the package lists (arm64)"
    if ! (apt-get update -qq && cd "$work" && apt-get download -qq busybox-static:arm64) \
      >"$work/apt.log" 2>&1; then
      ARM64_ERROR="apt-get download busybox-static:arm64 failed: $(tail -n 5 "$work/apt.log" | tr '\n' ' ')"
      rm -rf "$work"
      return 1
    fi
  fi
  local deb="" bb f
  for f in "$work"/busybox-static_*_arm64.deb; do [[ -f "$f" ]] && deb="$f" && break; done
  if [[ -z "$deb" ]] || ! dpkg-deb -x "$deb" "$work/deb" 2>"$work/apt.log"; then
    ARM64_ERROR="cannot unpack busybox-static:arm64 ($deb): $(cat "$work/apt.log")"
    rm -rf "$work"
    return 1
  fi
  bb=""
  local c
  for c in "$work/deb/bin/busybox" "$work/deb/usr/bin/busybox"; do
    if is_arm64_elf "$c"; then bb="$c"; break; fi
  done
  if [[ -z "$bb" ]]; then
    ARM64_ERROR="busybox-static:arm64 holds no arm64 /bin/busybox"
    rm -rf "$work"
    return 1
  fi
  # The applets of the arm64 busybox itself (run by qemu directly, no binfmt
  # needed); the amd64 busybox of the same Debian release has the same list.
  local applets
  if ! applets="$(/usr/bin/qemu-aarch64-static "$bb" --list 2>/dev/null)" || [[ -z "$applets" ]]; then
    applets="$(/bin/busybox --list)"
  fi
  make_rootfs "$work/root" "$bb" <<<"$applets"
  rootfs_tar "$work/root" "$work/root.tar"
  rm -rf "$work/deb" "$work/apt.log"
  rm -rf "$ARM64_DIR"
  mv "$work" "$ARM64_DIR"
}

# $BASE_IMAGE_ARM64: FROM scratch + the arm64 rootfs, built with BuildKit for
# linux/arm64 so that its config says arm64 (`docker import --platform` records
# amd64 with this CLI and daemon). Needs no emulation (no RUN step).
ensure_arm64_image() {
  if [[ "$(image_field "$BASE_IMAGE_ARM64" Architecture)" == arm64 ]]; then
    log "base image $BASE_IMAGE_ARM64 present"
    return 0
  fi
  ARM64_ERROR=""
  if ! ensure_arm64_rootfs; then
    emu_unavailable "cannot make $BASE_IMAGE_ARM64: $ARM64_ERROR"
    return 0
  fi
  if [[ ! -x "$BUILDKIT_CLI" ]]; then
    emu_unavailable "cannot make $BASE_IMAGE_ARM64: $BUILDKIT_CLI (the docker.io CLI, which builds with BuildKit) is missing"
    return 0
  fi
  log "making base image $BASE_IMAGE_ARM64 (BuildKit, linux/arm64)"
  local work rc=0
  work="$(mktemp -d "$DIR/base-arm64.XXXXXX")"
  mkdir -p "$work/ctx" "$work/cfg"
  cp "$ARM64_DIR/root.tar" "$work/ctx/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\nENV PATH=/bin\n' >"$work/ctx/Dockerfile"
  env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u all_proxy -u ALL_PROXY \
    -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
    DOCKER_BUILDKIT=1 DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$work/cfg" \
    "$BUILDKIT_CLI" build --progress plain --platform linux/arm64 -t "$BASE_IMAGE_ARM64" "$work/ctx" \
    </dev/null >"$work/build.log" 2>&1 || rc=$?
  if (( rc != 0 )); then
    emu_unavailable "cannot make $BASE_IMAGE_ARM64: docker build failed ($rc): $(tail -n 5 "$work/build.log" | tr '\n' ' ')"
    rm -rf "$work"
    return 0
  fi
  rm -rf "$work"
  local arch
  arch="$(image_field "$BASE_IMAGE_ARM64" Architecture)"
  [[ "$arch" == arm64 ]] ||
    emu_unavailable "$BASE_IMAGE_ARM64 was built but its config says architecture '${arch:-?}', not arm64"
}

# An arm64 program runs on this host (through the handler): the last check.
check_emulation() {
  [[ "$EMULATION" == 1 ]] || return 0
  local out
  out="$("$ARM64_DIR/root/bin/busybox" uname -m 2>&1)" || true
  if [[ "$out" != aarch64 ]]; then
    emu_unavailable "the arm64 busybox does not run on this host through $EMU_HANDLER: ${out:-no output}"
    return 0
  fi
  log "emulation ready: arm64 programs run here (qemu-aarch64 handler, flags $(handler_flags))"
}

# The arm64 rootfs (for the check) exists even when the image was already there.
ensure_emulation() {
  ensure_binfmt
  ensure_arm64_image
  if [[ "$EMULATION" == 1 ]] && ! ensure_arm64_rootfs; then
    emu_unavailable "cannot get the arm64 busybox: $ARM64_ERROR"
  fi
  check_emulation
}

# Single-quoted for sh.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ---------------------------------------------------------------- env file

write_env() {
  local pass tmp
  pass="$(cat "$PASS_FILE")"
  tmp="$(mktemp "$DIR/env.XXXXXX")"
  cat >"$tmp" <<EOF
export DOCKER_HOST=unix://$SOCK
export DBK_DOCKER_TLS_HOST=tcp://127.0.0.1:$TLS_PORT
export DBK_DOCKER_CERT_PATH=$TLS_DIR/client
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
  start_registry
  ensure_base_image
  ensure_base_alias
  ensure_emulation
  write_env
  exec 9>&-
  log "ready; source \"$ENV_FILE\""
}

cmd_down() {
  [[ -d "$DIR" ]] || { log "nothing to stop ($DIR absent)"; return 0; }
  with_lock
  stop_pidfile "$REG_PID" registry 10 docker-registry
  stop_pidfile "$DOCKERD_PID" dockerd 30 dockerd
  rm -f "$DOCKERD_TLS_MARK"
  # A dockerd that had to be killed leaves its containerd (and shims) behind.
  kill_leftovers
  # Unmount anything a killed daemon left mounted under our dirs (deepest first).
  local m
  while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done < <(awk '{print $2}' /proc/self/mounts | grep -E "^($DIR|$EXEC_ROOT)/" | sort -r || true)
  rm -f "$SOCK"
  exec 9>&-
  log "stopped"
}

cmd_status() {
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
  if pid_alive "$REG_PID" docker-registry; then
    echo "registry: running (pid $(cat "$REG_PID")), http://127.0.0.1:$PORT/v2/ -> $(registry_code)"
  else
    echo "registry: not running"; rc=1
  fi
  if docker_ping; then
    local code
    code="$(lcurl -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" "http://docker/images/$BASE_IMAGE/json")"
    [[ "$code" == 200 ]] && echo "base image: $BASE_IMAGE present" || echo "base image: $BASE_IMAGE missing"
    local arch
    arch="$(image_field "$BASE_IMAGE_ARM64" Architecture)"
    if [[ -n "$arch" ]]; then
      echo "arm64 base image: $BASE_IMAGE_ARM64 present (architecture $arch)"
    else
      echo "arm64 base image: $BASE_IMAGE_ARM64 missing"
    fi
  fi
  if [[ -e "$EMU_HANDLER" ]]; then
    echo "emulation: $EMU_HANDLER $(head -n1 "$EMU_HANDLER"), flags '$(handler_flags)', interpreter $(handler_interpreter)"
  elif [[ -e "$BINFMT_DIR/register" ]]; then
    echo "emulation: binfmt_misc mounted, no qemu-aarch64 handler (run: $0 up)"
  else
    echo "emulation: binfmt_misc not mounted at $BINFMT_DIR (run: $0 up)"
  fi
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
