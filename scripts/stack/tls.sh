#!/usr/bin/env bash
# Sourced by scripts/stack.sh (not run on its own): the .env of the stack, the test PKI of the secured
# endpoints and their credentials (.stack/tls/, .stack/secure.env).

# --- secrets -------------------------------------------------------------------------------------
# .env is never committed. On first use it is made from .env.example with fresh random credentials, so
# no two machines share a password and none is in git.
ensure_env() {
  if [[ ! -f $ROOT/.env ]]; then
    [[ -f $ROOT/.env.example ]] || die ".env.example is missing"
    local user pass
    user=nrt-$(openssl rand -hex 4)
    pass=$(openssl rand -hex 20)
    sed -e "s/^MINIO_ROOT_USER=.*/MINIO_ROOT_USER=$user/" \
        -e "s/^MINIO_ROOT_PASSWORD=.*/MINIO_ROOT_PASSWORD=$pass/" \
        -e "s/^NRT_S3_ACCESS_KEY=.*/NRT_S3_ACCESS_KEY=$user/" \
        -e "s/^NRT_S3_SECRET_KEY=.*/NRT_S3_SECRET_KEY=$pass/" \
        "$ROOT/.env.example" > "$ROOT/.env"
    chmod 600 "$ROOT/.env"
    log "wrote .env with generated MinIO credentials (git-ignored)"
  fi
  set -a
  # shellcheck disable=SC1091
  source "$ROOT/.env"
  set +a
}

# --- secured endpoints: test PKI and credentials --------------------------------------------------
# The TLS tests need a CA of their own, a server certificate signed by it for the names clients dial
# (localhost, 127.0.0.1), one that has expired, and a CA that signed nothing we serve (a client trusting
# only it must refuse every server). Made once per .stack, never in git; all of it or nothing, so the
# files always belong together.
TLS_FILES=(ca.pem ca.key server.pem server.key server-chain.pem expired.pem expired.key other-ca.pem kafka-keystore.pem)

# openssl, quiet unless it fails (it reports progress on stderr); $tls_tmp is ensure_tls's scratch dir.
ossl() {
  openssl "$@" 2>>"$tls_tmp/openssl.log" || { cat "$tls_tmp/openssl.log" >&2; rm -rf "$tls_tmp"; die "tls: openssl $1 failed"; }
}

ensure_tls() {
  local f missing=0
  for f in "${TLS_FILES[@]}"; do [[ -s $TLS/$f ]] || missing=1; done
  [[ $missing -eq 0 ]] && return 0
  log "tls: making the test CA and certificates in $TLS"
  tls_tmp=$(mktemp -d)
  local t=$tls_tmp
  # Leaves are CA:FALSE with serverAuth: rustls/webpki refuse a CA certificate as a server's.
  cat >"$t/ext.cnf" <<CNF
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# openssl 3.0's x509 cannot backdate a certificate (no -not_before/-not_after); 'openssl ca' can.
[ca]
default_ca = backdating_ca
[backdating_ca]
database = $t/index.txt
new_certs_dir = $t
serial = $t/serial
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = none
[any_name]
organizationName = optional
commonName = supplied
CNF
  : >"$t/index.txt"
  openssl rand -hex 16 >"$t/serial"
  # RSA rather than ECDSA: ClickHouse 18.16's TLS stack and every client take it without further setup.
  # genpkey writes unencrypted PKCS#8 ("BEGIN PRIVATE KEY"), which Kafka's PEM keystore wants.
  for f in ca server expired other-ca; do
    ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$t/$f.key"
  done
  ossl req -new -key "$t/ca.key" -subj "/O=nrt-pipeline tests/CN=nrt test CA" -out "$t/ca.csr"
  ossl x509 -req -in "$t/ca.csr" -signkey "$t/ca.key" -days 3650 -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$t/ext.cnf" -extensions ca_ext -out "$t/ca.pem"
  ossl req -new -key "$t/server.key" -subj "/O=nrt-pipeline tests/CN=localhost" -out "$t/server.csr"
  ossl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -days 1825 -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$t/ext.cnf" -extensions leaf_ext -out "$t/server.pem"
  ossl req -new -key "$t/expired.key" -subj "/O=nrt-pipeline tests/CN=localhost" -out "$t/expired.csr"
  ossl ca -batch -notext -config "$t/ext.cnf" -cert "$t/ca.pem" -keyfile "$t/ca.key" -in "$t/expired.csr" \
    -startdate 20200101000000Z -enddate 20210101000000Z -extfile "$t/ext.cnf" -extensions leaf_ext -out "$t/expired.pem"
  ossl req -x509 -new -key "$t/other-ca.key" -subj "/O=nrt-pipeline tests/CN=unrelated test CA" -days 3650 -out "$t/other-ca.pem"
  mkdir -p "$t/out"
  cp "$t/ca.pem" "$t/ca.key" "$t/server.pem" "$t/server.key" "$t/expired.pem" "$t/expired.key" "$t/other-ca.pem" "$t/out/"
  cat "$t/server.pem" "$t/ca.pem" >"$t/out/server-chain.pem"
  # Kafka's PEM keystore is one file: the key, then the certificate chain.
  cat "$t/server.key" "$t/server.pem" "$t/ca.pem" >"$t/out/kafka-keystore.pem"
  chmod 644 "$t/out/"*.pem
  chmod 600 "$t/out/"*.key "$t/out/kafka-keystore.pem"
  mkdir -p "$TLS"
  mv -f "$t/out/"* "$TLS/"
  rm -rf "$t"
}

secure_get() { if [[ -f $SECURE_ENV ]]; then sed -n "s/^$1=//p" "$SECURE_ENV" | tail -n 1; fi; }
# The value KEY has in secure.env, or else the output of the command that follows.
secure_or() { local v; v=$(secure_get "$1"); if [[ -n $v ]]; then echo "$v"; else "${@:2}"; fi; }
random_user() { echo "nrt-$(openssl rand -hex 4)"; }
# MinIO's built-in single KMS key, for SSE-S3: NAME:base64(32 random bytes).
random_kms_key() { echo "nrt-test-key:$(openssl rand -base64 32)"; }

# What the tests need to reach the secured endpoints, as KEY=value lines and nothing else, so that a test
# can read the file with a plain split on '=' (.stack/secure.env, mode 600).
# Random secrets are made once and kept: Kafka's SCRAM user and the TLS MinIO's root are stored by the
# services themselves, so a new password would lock the tests out. The rest is rewritten if it changed.
ensure_secure_env() {
  mkdir -p "$TLS"
  local tls_dir scram ch_pw minio_key minio_secret kms alt_key alt_secret content
  tls_dir=$(cd "$TLS" && pwd)
  scram=$(secure_or NRT_TEST_KAFKA_SCRAM_PASSWORD openssl rand -hex 20)
  ch_pw=$(secure_or NRT_TEST_CLICKHOUSE_SECURE_PASSWORD openssl rand -hex 20)
  minio_key=$(secure_or NRT_TEST_MINIO_HTTPS_ACCESS_KEY random_user)
  minio_secret=$(secure_or NRT_TEST_MINIO_HTTPS_SECRET_KEY openssl rand -hex 20)
  kms=$(secure_or NRT_TEST_MINIO_KMS_SECRET_KEY random_kms_key)
  alt_key=$(secure_or NRT_TEST_S3_ALT_ACCESS_KEY random_user)
  alt_secret=$(secure_or NRT_TEST_S3_ALT_SECRET_KEY openssl rand -hex 20)
  content="NRT_TEST_KAFKA_SASL_BROKERS=localhost:9094
NRT_TEST_KAFKA_SCRAM_USER=nrt-scram
NRT_TEST_KAFKA_SCRAM_PASSWORD=$scram
NRT_TEST_CLICKHOUSE_HTTPS_URL=https://localhost:8443
NRT_TEST_CLICKHOUSE_SECURE_USER=nrt_secure
NRT_TEST_CLICKHOUSE_SECURE_PASSWORD=$ch_pw
NRT_TEST_MINIO_HTTPS_URL=https://localhost:9443
NRT_TEST_MINIO_HTTPS_ACCESS_KEY=$minio_key
NRT_TEST_MINIO_HTTPS_SECRET_KEY=$minio_secret
NRT_TEST_MINIO_KMS_SECRET_KEY=$kms
NRT_TEST_S3_ALT_URL=http://127.0.0.1:7070
NRT_TEST_S3_ALT_ACCESS_KEY=$alt_key
NRT_TEST_S3_ALT_SECRET_KEY=$alt_secret
NRT_TEST_TLS_DIR=$tls_dir"
  if [[ ! -f $SECURE_ENV || $content != "$(cat "$SECURE_ENV")" ]]; then
    (umask 077 && printf '%s\n' "$content" >"$SECURE_ENV.tmp")
    mv -f "$SECURE_ENV.tmp" "$SECURE_ENV"
    chmod 600 "$SECURE_ENV"
    log "wrote $SECURE_ENV (credentials of the secured endpoints)"
  fi
  set -a
  # shellcheck disable=SC1090
  source "$SECURE_ENV"
  set +a
}

ensure_secure() {
  ensure_tls
  ensure_secure_env
}
