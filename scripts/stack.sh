#!/usr/bin/env bash
# The real services, natively, without Docker: install on first use (cached), start, stop, check.
#
#   scripts/stack.sh up | down | status | logs [SERVICE] | stop SERVICE | kill SERVICE | start SERVICE
#   scripts/stack.sh install     (install only; scripts/containers.sh builds its stand-ins from these)
#
# Installs into ${NRT_CACHE:-$HOME/.cache/nrt}; state, logs and pid files live in ./.stack/.
# Everything listens on 127.0.0.1 only.
#
# Besides the plaintext endpoints the pipeline's tests use, the stack always serves secured ones for the
# TLS and authentication tests (they cost next to nothing): Kafka SASL_SSL/SCRAM on localhost:9094,
# ClickHouse HTTPS on localhost:8443, a second MinIO on https://localhost:9443 (with SSE-S3), and a
# second S3 implementation, versitygw, on http://127.0.0.1:7070. Their test CA and certificates are in
# .stack/tls/, their credentials in .stack/secure.env (both made on first use, never in git).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
CACHE=${NRT_CACHE:-$HOME/.cache/nrt}
STACK=${NRT_STACK_DIR:-$ROOT/.stack}
PIDS=$STACK/pids
LOGS=$STACK/logs
SERVICES=(kafka minio minio-tls versitygw clickhouse prometheus registry)

# Pinned versions: scripts/versions.sh (shared with containers.sh).
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"
# docker-compose only validates docker-compose.yml in the tests (it needs no engine for that).
# attr: setfattr, to ask whether the filesystem keeps user xattrs (versitygw stores metadata in them).
# libssl-dev + pkg-config: librdkafka links the system OpenSSL (SASL_SSL, SCRAM).
APT_PACKAGES=(clickhouse-server clickhouse-client prometheus kcat curl openssl docker-compose attr libssl-dev pkg-config)

KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
MINIO_BIN=$CACHE/minio-$MINIO_TAG/minio
VERSITYGW_BIN=$CACHE/versitygw-$VERSITYGW_VERSION/versitygw
TLS=$STACK/tls
SECURE_ENV=$STACK/secure.env
WAIT_SECS=${NRT_STACK_WAIT_SECS:-90}

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

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

# --- install (cached) ----------------------------------------------------------------------------
install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  log "apt: installing ${missing[*]}"
  # Keep the packages' own init scripts from starting system-wide services on our ports.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null && $sudo chmod +x $policy && made_policy=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ $made_policy -eq 1 ]] && $sudo rm -f $policy
  return 0
}

install_kafka() {
  [[ -f $KAFKA_HOME/.complete ]] && return 0
  command -v mvn >/dev/null || die "kafka: Maven (mvn) is needed to fetch the broker from Maven Central"
  log "kafka: fetching kafka_2.13 $KAFKA_VERSION and its runtime dependencies from Maven Central"
  rm -rf "$KAFKA_HOME"
  mkdir -p "$CACHE"
  mvn -B -Dstyle.color=never -f "$ROOT/scripts/stack/kafka/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" >"$CACHE/mvn.log" 2>&1 \
    || { tail -n 30 "$CACHE/mvn.log" >&2; die "kafka: Maven could not fetch the broker (log: $CACHE/mvn.log)"; }
  touch "$KAFKA_HOME/.complete"
}

install_minio() {
  [[ -x $MINIO_BIN ]] && return 0
  command -v go >/dev/null || die "minio: Go is needed to build MinIO from its module"
  log "minio: go install github.com/minio/minio@$MINIO_MODULE_VERSION ($MINIO_TAG; a few minutes, once)"
  local version=${MINIO_TAG#RELEASE.} pkg=github.com/minio/minio/cmd
  version=$(sed -E 's/T([0-9]{2})-([0-9]{2})-([0-9]{2})Z/T\1:\2:\3Z/' <<<"$version")
  GOBIN=$(dirname "$MINIO_BIN") go install -trimpath \
    -ldflags "-s -w -X $pkg.Version=$version -X $pkg.ReleaseTag=$MINIO_TAG -X $pkg.CommitID=$MINIO_COMMIT -X $pkg.ShortCommitID=$MINIO_COMMIT" \
    "github.com/minio/minio@$MINIO_MODULE_VERSION"
}

install_versitygw() {
  [[ -x $VERSITYGW_BIN ]] && return 0
  command -v go >/dev/null || die "versitygw: Go is needed to build versitygw from its module"
  log "versitygw: go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION (a few minutes, once)"
  GOBIN=$(dirname "$VERSITYGW_BIN") go install -trimpath \
    -ldflags "-s -w -X main.Version=$VERSITYGW_VERSION" \
    "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
}

nrt_bin() { echo "${NRT_BIN:-$ROOT/target/debug/nrt}"; }

# The registry is `nrt registry`: build the binary (debug profile, shared with `cargo test`).
install_nrt() {
  [[ -n ${NRT_BIN:-} ]] && return 0
  log "registry: cargo build --bin nrt"
  (cd "$ROOT" && cargo build --quiet --bin nrt)
}

has_registry() { "$(nrt_bin)" registry --help >/dev/null 2>&1; }

install_all() {
  local t0=$SECONDS
  install_apt
  install_kafka
  install_minio
  install_versitygw
  install_nrt
  log "install/verify took $((SECONDS - t0))s"
}

# --- process bookkeeping -------------------------------------------------------------------------
pid_of() { [[ -f $PIDS/$1.pid ]] && cat "$PIDS/$1.pid" || true; }
running() { local p; p=$(pid_of "$1"); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts "$@" detached from our terminal (no inherited stdout: a CI runner must not wait on it).
spawn() {
  local svc=$1; shift
  mkdir -p "$PIDS" "$LOGS"
  # 9>&-: the service must not inherit stack.sh's lock (it would hold it as long as it runs).
  setsid "$@" </dev/null >>"$LOGS/$svc.log" 2>&1 9>&- &
  echo $! > "$PIDS/$svc.pid"
}

ports_of() {
  case $1 in
    kafka) echo "9092 9093 9094" ;; minio) echo "9000 9001" ;; minio-tls) echo "9443 9444" ;;
    versitygw) echo 7070 ;; clickhouse) echo "8123 8443 19100 19109" ;;
    prometheus) echo 9090 ;; registry) echo 8081 ;;
  esac
}

# A service started by a stack.sh from before the secured endpoints lacks its secured port: `up` then
# restarts it with the new config instead of leaving the TLS tests without it.
lacks_secure_port() {
  case $1 in
    kafka) ! port_busy 9094 ;; clickhouse) ! port_busy 8443 ;; *) false ;;
  esac
}

check_ports_free() {
  local svc=$1 p
  for p in $(ports_of "$svc"); do
    port_busy "$p" && die "$svc: port $p is taken by a process this script did not start (a system-wide $svc service? stop it first)"
  done
  return 0
}

# --- health --------------------------------------------------------------------------------------
healthy() {
  case $1 in
    kafka) kcat -b 127.0.0.1:9092 -L -m 3 >/dev/null 2>&1 ;;
    minio) curl -sf -m 3 http://127.0.0.1:9000/minio/health/live >/dev/null ;;
    minio-tls) curl -sf -m 3 --cacert "$TLS/ca.pem" https://localhost:9443/minio/health/live >/dev/null ;;
    versitygw) curl -sf -m 3 http://127.0.0.1:7070/health >/dev/null ;;
    clickhouse) [[ $(curl -s -m 3 http://127.0.0.1:8123/ping) == "Ok." ]] ;;
    prometheus) curl -sf -m 3 http://127.0.0.1:9090/-/ready >/dev/null ;;
    registry) curl -sf -m 3 http://127.0.0.1:8081/subjects >/dev/null ;;
  esac
}

wait_healthy() {
  local svc=$1 deadline=$((SECONDS + WAIT_SECS))
  until healthy "$svc"; do
    if ! running "$svc"; then
      tail -n 30 "$LOGS/$svc.log" >&2 || true
      die "$svc exited during start-up (log above: $LOGS/$svc.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 30 "$LOGS/$svc.log" >&2 || true
      die "$svc did not answer within ${WAIT_SECS}s (log above: $LOGS/$svc.log)"
    fi
    sleep 0.5
  done
}

version_of() {
  case $1 in
    kafka) echo "Apache Kafka $KAFKA_VERSION (KRaft)" ;;
    minio|minio-tls) "$MINIO_BIN" --version 2>/dev/null | head -n1 | sed 's/^minio version //' ;;
    versitygw) echo "versitygw $VERSITYGW_VERSION" ;;
    clickhouse) echo "ClickHouse $(curl -s -m 3 'http://127.0.0.1:8123/?query=SELECT%20version()' || echo '?')" ;;
    prometheus) prometheus --version 2>&1 | head -n1 | awk '{print "Prometheus " $3}' ;;
    registry) echo "nrt registry $("$(nrt_bin)" --version 2>/dev/null | awk '{print $2}')" ;;
  esac
}

endpoint_of() {
  case $1 in
    kafka) echo "127.0.0.1:9092 (controller 9093), SASL_SSL localhost:9094" ;;
    minio) echo "http://127.0.0.1:9000 (console http://127.0.0.1:9001)" ;;
    minio-tls) echo "https://localhost:9443 (console https://localhost:9444)" ;;
    versitygw) echo "http://127.0.0.1:7070" ;;
    clickhouse) echo "http://127.0.0.1:8123, https://localhost:8443 (native 19100)" ;;
    prometheus) echo "http://127.0.0.1:9090" ;;
    registry) echo "http://127.0.0.1:8081" ;;
  esac
}

# --- start one service ---------------------------------------------------------------------------
start_kafka() {
  local dir=$STACK/kafka
  mkdir -p "$dir" "$LOGS"
  sed -e "s#@DATA@#$dir/data#" -e "s#@TLS@#$TLS#" "$ROOT/scripts/stack/kafka/server.properties" > "$dir/server.properties"
  local cp="$KAFKA_HOME/libs/*"
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/scripts/stack/kafka/log4j2.properties")
  if [[ ! -f $dir/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid)
    # The SCRAM user of the SASL_SSL listener goes into the metadata log with the format.
    java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=$NRT_TEST_KAFKA_SCRAM_USER,password=$NRT_TEST_KAFKA_SCRAM_PASSWORD]" \
      >>"$LOGS/kafka.log" 2>&1 || die "kafka: formatting storage failed (see $LOGS/kafka.log)"
    scram_digest >"$dir/scram.sha256"
  fi
  spawn kafka java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
}

# Which SCRAM user and password the broker's metadata has (a digest: the marker holds no secret).
scram_digest() { printf '%s:%s' "$NRT_TEST_KAFKA_SCRAM_USER" "$NRT_TEST_KAFKA_SCRAM_PASSWORD" | sha256sum | cut -d' ' -f1; }

# A broker formatted before the SASL_SSL listener existed has no SCRAM user (and one whose secure.env was
# made anew has another password): set it through the plaintext listener, once; the marker remembers.
ensure_kafka_scram() {
  local marker=$STACK/kafka/scram.sha256
  [[ $(cat "$marker" 2>/dev/null) == "$(scram_digest)" ]] && return 0
  log "kafka: setting the SCRAM-SHA-512 user $NRT_TEST_KAFKA_SCRAM_USER"
  java -Xmx256m "-Dlog4j2.configurationFile=$ROOT/scripts/stack/kafka/log4j2.properties" -cp "$KAFKA_HOME/libs/*" \
    kafka.admin.ConfigCommand --bootstrap-server 127.0.0.1:9092 --alter --entity-type users \
    --entity-name "$NRT_TEST_KAFKA_SCRAM_USER" --add-config "SCRAM-SHA-512=[password=$NRT_TEST_KAFKA_SCRAM_PASSWORD]" \
    >>"$LOGS/kafka.log" 2>&1 || die "kafka: could not set the SCRAM user (see $LOGS/kafka.log)"
  scram_digest >"$marker"
}

start_minio() {
  mkdir -p "$STACK/minio/data"
  [[ -n ${MINIO_ROOT_USER:-} && -n ${MINIO_ROOT_PASSWORD:-} ]] || die "minio: MINIO_ROOT_USER/MINIO_ROOT_PASSWORD are not set (.env)"
  MINIO_PROMETHEUS_AUTH_TYPE=public MINIO_UPDATE=off MINIO_BROWSER_REDIRECT=off \
    spawn minio "$MINIO_BIN" server "$STACK/minio/data" --quiet --address 127.0.0.1:9000 --console-address 127.0.0.1:9001
}

# The same MinIO binary again, over HTTPS only, with its own data and root user, and a KMS key so that
# SSE-S3 (x-amz-server-side-encryption: AES256) works.
start_minio_tls() {
  local dir=$STACK/minio-tls
  mkdir -p "$dir/data" "$dir/certs"
  # MinIO's certificate directory: public.crt is the chain (leaf then CA), private.key the leaf's key.
  cp "$TLS/server-chain.pem" "$dir/certs/public.crt"
  cp "$TLS/server.key" "$dir/certs/private.key"
  chmod 600 "$dir/certs/private.key"
  MINIO_ROOT_USER=$NRT_TEST_MINIO_HTTPS_ACCESS_KEY MINIO_ROOT_PASSWORD=$NRT_TEST_MINIO_HTTPS_SECRET_KEY \
    MINIO_KMS_SECRET_KEY=$NRT_TEST_MINIO_KMS_SECRET_KEY \
    MINIO_PROMETHEUS_AUTH_TYPE=public MINIO_UPDATE=off MINIO_BROWSER_REDIRECT=off \
    spawn minio-tls "$MINIO_BIN" server "$dir/data" --quiet --certs-dir "$dir/certs" \
    --address 127.0.0.1:9443 --console-address 127.0.0.1:9444
}

# Whether the filesystem under $1 keeps user xattrs (versitygw's posix backend keeps metadata in them).
xattrs_work() {
  local probe=$1/.xattr-probe ok=1
  : >"$probe"
  setfattr -n user.nrt-probe -v 1 "$probe" 2>/dev/null && ok=0
  rm -f "$probe"
  return $ok
}

start_versitygw() {
  local dir=$STACK/versitygw
  mkdir -p "$dir/data"
  local meta=()
  if ! xattrs_work "$dir"; then
    # No xattrs here (tmpfs, some overlays): versitygw keeps the metadata in files beside the data.
    mkdir -p "$dir/sidecar"
    meta=(--sidecar "$dir/sidecar")
  fi
  ROOT_ACCESS_KEY=$NRT_TEST_S3_ALT_ACCESS_KEY ROOT_SECRET_KEY=$NRT_TEST_S3_ALT_SECRET_KEY \
    spawn versitygw "$VERSITYGW_BIN" --port 127.0.0.1:7070 --health /health --quiet \
    posix "${meta[@]}" "$dir/data"
}

start_clickhouse() {
  local dir=$STACK/clickhouse
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  sed -e "s#@DIR@#$dir#g" -e "s#@TLS@#$TLS#g" "$ROOT/scripts/stack/clickhouse/config.xml" > "$dir/config.xml"
  local password="<password></password>"
  if [[ -n ${NRT_CLICKHOUSE_PASSWORD:-} ]]; then
    password="<password_sha256_hex>$(printf '%s' "$NRT_CLICKHOUSE_PASSWORD" | sha256sum | cut -d' ' -f1)</password_sha256_hex>"
  fi
  local secure_sha
  secure_sha=$(printf '%s' "$NRT_TEST_CLICKHOUSE_SECURE_PASSWORD" | sha256sum | cut -d' ' -f1)
  sed -e "s#@PASSWORD_ELEMENT@#$password#" -e "s#@SECURE_PASSWORD_SHA256@#$secure_sha#" \
    "$ROOT/scripts/stack/clickhouse/users.xml" > "$dir/users.xml"
  chmod 600 "$dir/users.xml"
  spawn clickhouse clickhouse-server --config-file="$dir/config.xml"
}

start_prometheus() {
  local dir=$STACK/prometheus
  mkdir -p "$dir/data"
  cp "$ROOT/scripts/stack/prometheus.yml" "$dir/prometheus.yml"
  cp "$ROOT/prometheus/alerts.yml" "$dir/alerts.yml"
  spawn prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address=127.0.0.1:9090 --web.enable-lifecycle --storage.tsdb.retention.time=2d
}

# A running Prometheus gets the checked-in config and rules again (they may have changed since it started).
refresh_prometheus() {
  local dir=$STACK/prometheus
  if ! cmp -s "$ROOT/prometheus/alerts.yml" "$dir/alerts.yml" ||
     ! cmp -s "$ROOT/scripts/stack/prometheus.yml" "$dir/prometheus.yml"; then
    cp "$ROOT/scripts/stack/prometheus.yml" "$dir/prometheus.yml"
    cp "$ROOT/prometheus/alerts.yml" "$dir/alerts.yml"
    curl -sf -m 10 -X POST http://127.0.0.1:9090/-/reload >/dev/null || die "prometheus: reload refused"
    log "prometheus: config and rules reloaded"
  fi
}

start_registry() {
  mkdir -p "$STACK/registry"
  spawn registry "$(nrt_bin)" registry --listen 127.0.0.1:8081 --data-dir "$STACK/registry"
}

# What a service needs once it answers, whether this call started it or it was running already.
after_start() {
  case $1 in
    prometheus) refresh_prometheus ;;
    kafka) ensure_kafka_scram ;;
  esac
  return 0
}

start_one() {
  local svc=$1
  if running "$svc"; then
    wait_healthy "$svc"
    if ! lacks_secure_port "$svc"; then
      after_start "$svc"
      return 0
    fi
    log "$svc: running without its secured endpoint (started before it existed); restarting it"
    stop_one "$svc"
  fi
  if [[ $svc == registry ]] && ! has_registry; then
    log "registry: this build has no 'nrt registry' subcommand yet; not started"
    return 0
  fi
  check_ports_free "$svc"
  local t0=$SECONDS
  "start_${svc//-/_}"
  wait_healthy "$svc"
  after_start "$svc"
  log "$svc up in $((SECONDS - t0))s"
}

stop_one() {
  local svc=$1 p
  p=$(pid_of "$svc")
  if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$p" 2>/dev/null; then
      log "$svc (pid $p) did not stop in 30s; killing it"
      kill -KILL "$p" 2>/dev/null || true
    fi
    log "$svc stopped"
  fi
  rm -f "$PIDS/$svc.pid"
}

# --- commands ------------------------------------------------------------------------------------
table() {
  printf '%-11s %-5s %-60s %s\n' SERVICE STATE ENDPOINT VERSION
  local svc bad=0 state version
  for svc in "${SERVICES[@]}"; do
    if healthy "$svc"; then state=up; version=$(version_of "$svc")
    elif [[ $svc == registry ]] && ! has_registry; then state=n/a; version="not built yet (no 'nrt registry')"
    else state=DOWN; version=-; bad=1; fi
    printf '%-11s %-5s %-60s %s\n' "$svc" "$state" "$(endpoint_of "$svc")" "$version"
  done
  [[ -f $SECURE_ENV ]] && echo "secured endpoints: credentials in $SECURE_ENV, CA $TLS/ca.pem"
  return $bad
}

valid_service() {
  local s
  for s in "${SERVICES[@]}"; do [[ $s == "${1:-}" ]] && return 0; done
  die "unknown service '${1:-}' (one of: ${SERVICES[*]})"
}

# One stack.sh at a time changes the stack: a second caller (demo.sh in one terminal, test.sh in
# another) waits for the first, instead of formatting Kafka's storage beside it.
lock() {
  mkdir -p "$STACK"
  exec 9>>"$STACK/.lock"
  if ! flock -n 9; then
    log "another stack.sh ($(cat "$STACK/.lock-owner" 2>/dev/null || echo '?')) is changing the stack: waiting for it"
    flock 9
    log "the other stack.sh finished: carrying on"
  fi
  echo "pid $$, $*" >"$STACK/.lock-owner"
}

cmd=${1:-}
case $cmd in
  up|down|start|stop|install) lock "$@" ;;
esac
case $cmd in
  up)
    ensure_env
    ensure_secure
    install_all
    for svc in "${SERVICES[@]}"; do start_one "$svc"; done
    table
    ;;
  install)
    install_all
    ;;
  down)
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_one "${SERVICES[$i]}"; done
    ;;
  status)
    table
    ;;
  start)
    valid_service "${2:-}"
    ensure_env
    ensure_secure
    start_one "$2"
    ;;
  stop)
    valid_service "${2:-}"
    stop_one "$2"
    ;;
  kill)
    # SIGKILL, as a crash or a pulled plug would: fault tests use it (a graceful stop of ClickHouse, for
    # one, keeps serving open connections for up to 30 s).
    valid_service "${2:-}"
    p=$(pid_of "$2")
    if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      log "$2 killed"
    fi
    rm -f "$PIDS/$2.pid"
    ;;
  freeze|thaw)
    # SIGSTOP/SIGCONT: a service that hangs (connections accepted, nothing answered) and then carries
    # on with what it was sent meanwhile, as a stalled disk or a long GC pause would.
    valid_service "${2:-}"
    p=$(pid_of "$2")
    [[ -n $p ]] && kill -0 "$p" 2>/dev/null || die "$2 is not running"
    if [[ $cmd == freeze ]]; then kill -STOP "$p"; log "$2 frozen"; else kill -CONT "$p"; log "$2 thawed"; fi
    ;;
  logs)
    if [[ -n ${2:-} ]]; then valid_service "$2"; tail -n "${LINES_N:-100}" "$LOGS/$2.log"
    else for svc in "${SERVICES[@]}"; do [[ -f $LOGS/$svc.log ]] && { echo "== $svc"; tail -n 20 "$LOGS/$svc.log"; }; done; fi
    ;;
  *)
    echo "usage: $0 up|down|status|install|logs [SERVICE]|stop SERVICE|kill SERVICE|start SERVICE|freeze SERVICE|thaw SERVICE" >&2
    exit 2
    ;;
esac
