# shellcheck shell=bash
# Emulation: RUN steps for linux/arm64 on this amd64 host run through
# qemu-aarch64-static, registered with the kernel's binfmt_misc with the F flag
# (the kernel opens the interpreter once, at registration, so it works inside
# containers whose root has no qemu); and the arm64 base image,
# $BASE_IMAGE_ARM64. Nothing here is fatal: what cannot be done is recorded as
# DBK_EMULATION=0 with the reason. Emulation is host-wide kernel state, not a
# process: `down` leaves it as it is.

BASE_IMAGE_ARM64="dbk-busybox-arm64:1"
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

# The arm64 base image line of `status` (asked of a running dockerd).
arm64_image_status() {
  local arch
  arch="$(image_field "$BASE_IMAGE_ARM64" Architecture)"
  if [[ -n "$arch" ]]; then
    echo "arm64 base image: $BASE_IMAGE_ARM64 present (architecture $arch)"
  else
    echo "arm64 base image: $BASE_IMAGE_ARM64 missing"
  fi
}

# The emulation line of `status`.
emulation_status() {
  if [[ -e "$EMU_HANDLER" ]]; then
    echo "emulation: $EMU_HANDLER $(head -n1 "$EMU_HANDLER"), flags '$(handler_flags)', interpreter $(handler_interpreter)"
  elif [[ -e "$BINFMT_DIR/register" ]]; then
    echo "emulation: binfmt_misc mounted, no qemu-aarch64 handler (run: $0 up)"
  else
    echo "emulation: binfmt_misc not mounted at $BINFMT_DIR (run: $0 up)"
  fi
}
