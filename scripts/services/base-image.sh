# shellcheck shell=bash
# The local amd64 base image, $BASE_IMAGE, imported from /bin/busybox (no
# image is ever pulled), also tagged $BASE_IMAGE_AMD64; and the busybox rootfs
# and reproducible tar that emulation.sh's arm64 image reuses.

BASE_IMAGE="dbk-busybox:1"
# The amd64 base under an arch-named tag, so a Dockerfile can pick its base per
# platform: `FROM dbk-busybox-${TARGETARCH}:1`.
BASE_IMAGE_AMD64="dbk-busybox-amd64:1"

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

# The base image line of `status`.
base_image_status() {
  [[ "$(image_code "$BASE_IMAGE")" == 200 ]] && echo "base image: $BASE_IMAGE present" || echo "base image: $BASE_IMAGE missing"
}
