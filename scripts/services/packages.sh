# shellcheck shell=bash
# Packages: what the services need from Debian (dockerd 20.10 and its CLI,
# docker-registry, htpasswd, busybox-static, curl, openssl, OpenSSH's client
# (for the ssh-agent of the build-session tests and ssh:// Docker hosts) and
# server (sshd.sh runs its own sshd; the package's system sshd is never
# started), and ps and ss), installed with apt-get when missing, without letting
# package scripts start system services.
# (emulation.sh installs its own packages through apt_install, and never fails
# `up` when it cannot.)

PACKAGES=(docker.io docker-registry apache2-utils busybox-static curl openssl openssh-client
  openssh-server procps iproute2 runc)

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
  # the docker0 bridge), a system registry, a system sshd (on port 22, all
  # addresses) or binfmt-support's service.
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
