#!/usr/bin/env bash
# Sourced by scripts/stack.sh (not run on its own): each service described once — its ports, its endpoint, how to
# tell it answers, its version, how it starts and what it needs once it answers — and the generic
# start, stop and status built on those descriptions.

# --- process bookkeeping -------------------------------------------------------------------------
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

# --- the services --------------------------------------------------------------------------------
# For a service S (`-` in its name becomes `_`): S_ports (every port it takes), S_endpoint (for people),
# S_healthy, S_version, S_start; S_ready if it needs something once it answers.

# kafka: Apache Kafka, one KRaft node; SASL_SSL with SCRAM on localhost:9094.
kafka_ports="9092 9093 9094"
kafka_endpoint="127.0.0.1:9092 (controller 9093), SASL_SSL localhost:9094"
kafka_healthy() { kcat -b 127.0.0.1:9092 -L -m 3 >/dev/null 2>&1; }
kafka_version() { echo "Apache Kafka $KAFKA_VERSION (KRaft)"; }
# --- start one service ---------------------------------------------------------------------------
kafka_start() {
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

# The broker's SCRAM user has the password of secure.env (one made anew has another): set it through the
# plaintext listener when it changed; the marker remembers.
kafka_ready() {
  local marker=$STACK/kafka/scram.sha256
  [[ $(cat "$marker" 2>/dev/null) == "$(scram_digest)" ]] && return 0
  log "kafka: setting the SCRAM-SHA-512 user $NRT_TEST_KAFKA_SCRAM_USER"
  java -Xmx256m "-Dlog4j2.configurationFile=$ROOT/scripts/stack/kafka/log4j2.properties" -cp "$KAFKA_HOME/libs/*" \
    kafka.admin.ConfigCommand --bootstrap-server 127.0.0.1:9092 --alter --entity-type users \
    --entity-name "$NRT_TEST_KAFKA_SCRAM_USER" --add-config "SCRAM-SHA-512=[password=$NRT_TEST_KAFKA_SCRAM_PASSWORD]" \
    >>"$LOGS/kafka.log" 2>&1 || die "kafka: could not set the SCRAM user (see $LOGS/kafka.log)"
  scram_digest >"$marker"
}

# minio: the lake's S3, plain HTTP (console on 9001).
minio_ports="9000 9001"
minio_endpoint="http://127.0.0.1:9000 (console http://127.0.0.1:9001)"
minio_healthy() { curl -sf -m 3 http://127.0.0.1:9000/minio/health/live >/dev/null; }
minio_version() { "$MINIO_BIN" --version 2>/dev/null | head -n1 | sed 's/^minio version //'; }
minio_start() {
  mkdir -p "$STACK/minio/data"
  [[ -n ${MINIO_ROOT_USER:-} && -n ${MINIO_ROOT_PASSWORD:-} ]] || die "minio: MINIO_ROOT_USER/MINIO_ROOT_PASSWORD are not set (.env)"
  MINIO_PROMETHEUS_AUTH_TYPE=public MINIO_UPDATE=off MINIO_BROWSER_REDIRECT=off \
    spawn minio "$MINIO_BIN" server "$STACK/minio/data" --quiet --address 127.0.0.1:9000 --console-address 127.0.0.1:9001
}

# minio-tls: the same binary again over HTTPS only, for the TLS and SSE tests.
minio_tls_ports="9443 9444"
minio_tls_endpoint="https://localhost:9443 (console https://localhost:9444)"
minio_tls_healthy() { curl -sf -m 3 --cacert "$TLS/ca.pem" https://localhost:9443/minio/health/live >/dev/null; }
minio_tls_version() { minio_version; }
# The same MinIO binary again, over HTTPS only, with its own data and root user, and a KMS key so that
# SSE-S3 (x-amz-server-side-encryption: AES256) works.
minio_tls_start() {
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

# versitygw: a second S3 implementation (posix backend).
versitygw_ports="7070"
versitygw_endpoint="http://127.0.0.1:7070"
versitygw_healthy() { curl -sf -m 3 http://127.0.0.1:7070/health >/dev/null; }
versitygw_version() { echo "versitygw $VERSITYGW_VERSION"; }
# Whether the filesystem under $1 keeps user xattrs (versitygw's posix backend keeps metadata in them).
xattrs_work() {
  local probe=$1/.xattr-probe ok=1
  : >"$probe"
  setfattr -n user.nrt-probe -v 1 "$probe" 2>/dev/null && ok=0
  rm -f "$probe"
  return $ok
}

versitygw_start() {
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

# clickhouse: Debian's server; HTTPS on localhost:8443 with a password user of its own.
clickhouse_ports="8123 8443 19100 19109"
clickhouse_endpoint="http://127.0.0.1:8123, https://localhost:8443 (native 19100)"
clickhouse_healthy() { [[ $(curl -s -m 3 http://127.0.0.1:8123/ping) == "Ok." ]]; }
clickhouse_version() { echo "ClickHouse $(curl -s -m 3 'http://127.0.0.1:8123/?query=SELECT%20version()' || echo '?')"; }
clickhouse_start() {
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

# prometheus: Debian's, scraping the pipeline and MinIO, with the checked-in alert rules.
prometheus_ports="9090"
prometheus_endpoint="http://127.0.0.1:9090"
prometheus_healthy() { curl -sf -m 3 http://127.0.0.1:9090/-/ready >/dev/null; }
prometheus_version() { prometheus --version 2>&1 | head -n1 | awk '{print "Prometheus " $3}'; }
prometheus_start() {
  local dir=$STACK/prometheus
  mkdir -p "$dir/data"
  cp "$ROOT/scripts/stack/prometheus.yml" "$dir/prometheus.yml"
  cp "$ROOT/prometheus/alerts.yml" "$dir/alerts.yml"
  spawn prometheus prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address=127.0.0.1:9090 --web.enable-lifecycle --storage.tsdb.retention.time=2d
}

# A running Prometheus gets the checked-in config and rules again (they may have changed since it started).
prometheus_ready() {
  local dir=$STACK/prometheus
  if ! cmp -s "$ROOT/prometheus/alerts.yml" "$dir/alerts.yml" ||
     ! cmp -s "$ROOT/scripts/stack/prometheus.yml" "$dir/prometheus.yml"; then
    cp "$ROOT/scripts/stack/prometheus.yml" "$dir/prometheus.yml"
    cp "$ROOT/prometheus/alerts.yml" "$dir/alerts.yml"
    curl -sf -m 10 -X POST http://127.0.0.1:9090/-/reload >/dev/null || die "prometheus: reload refused"
    log "prometheus: config and rules reloaded"
  fi
}

# registry: this project's own `nrt registry`.
registry_ports="8081"
registry_endpoint="http://127.0.0.1:8081"
registry_healthy() { curl -sf -m 3 http://127.0.0.1:8081/subjects >/dev/null; }
registry_version() { echo "nrt registry $("$(nrt_bin)" --version 2>/dev/null | awk '{print $2}')"; }
registry_start() {
  has_registry || die "registry: no 'nrt registry' at $(nrt_bin): cargo build --bin nrt (stack.sh up builds it)"
  mkdir -p "$STACK/registry"
  spawn registry "$(nrt_bin)" registry --listen 127.0.0.1:8081 --data-dir "$STACK/registry"
}

# --- generic, on the descriptions above ----------------------------------------------------------
# The description `what` of service $1 (a variable).
described() { local v="${1//-/_}_$2"; echo "${!v}"; }
healthy() { "${1//-/_}_healthy"; }
version_of() { "${1//-/_}_version"; }

check_ports_free() {
  local svc=$1 p
  for p in $(described "$svc" ports); do
    port_busy "$p" && die "$svc: port $p is taken by a process this script did not start (a system-wide $svc service? stop it first)"
  done
  return 0
}

# What a service needs once it answers, whether this call started it or it was running already.
after_start() {
  if declare -F "${1//-/_}_ready" >/dev/null; then "${1//-/_}_ready"; fi
  return 0
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

start_one() {
  local svc=$1
  if running "$svc"; then
    wait_healthy "$svc"
    after_start "$svc"
    return 0
  fi
  check_ports_free "$svc"
  local t0=$SECONDS
  "${svc//-/_}_start"
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

# --- status -------------------------------------------------------------------------------------------
table() {
  printf '%-11s %-5s %-60s %s\n' SERVICE STATE ENDPOINT VERSION
  local svc bad=0 state version
  for svc in "${SERVICES[@]}"; do
    if healthy "$svc"; then state=up; version=$(version_of "$svc")
    elif [[ $svc == registry ]] && ! has_registry; then state=n/a; version="not built yet (no 'nrt registry')"
    else state=DOWN; version=-; bad=1; fi
    printf '%-11s %-5s %-60s %s\n' "$svc" "$state" "$(described "$svc" endpoint)" "$version"
  done
  [[ -f $SECURE_ENV ]] && echo "secured endpoints: credentials in $SECURE_ENV, CA $TLS/ca.pem"
  return $bad
}

valid_service() {
  local s
  for s in "${SERVICES[@]}"; do [[ $s == "${1:-}" ]] && return 0; done
  die "unknown service '${1:-}' (one of: ${SERVICES[*]})"
}
