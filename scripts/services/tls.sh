# shellcheck shell=bash
# TLS material for dockerd's TCP endpoint, made once with openssl and remade
# when missing, invalid or close to expiry, in $TLS_DIR: ca/ (the CA and its
# key), server/ (what dockerd uses) and client/ (ca.pem, cert.pem, key.pem: a
# DOCKER_CERT_PATH). Not for: running dockerd (dockerd.sh).

TLS_DIR="$DIR/tls"

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
