#!/usr/bin/env bash
# The real services, natively, without Docker: install on first use (cached), start, stop, check.
#
#   scripts/stack.sh up | down | status | logs [SERVICE] | stop SERVICE | kill SERVICE | start SERVICE
#   scripts/stack.sh install     (install only; scripts/containers.sh builds its stand-ins from these)
#
# Installs into ${NRT_CACHE:-$HOME/.cache/nrt}; state, logs and pid files live in ./.stack/.
# Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
CACHE=${NRT_CACHE:-$HOME/.cache/nrt}
STACK=${NRT_STACK_DIR:-$ROOT/.stack}
PIDS=$STACK/pids
LOGS=$STACK/logs
SERVICES=(kafka minio clickhouse prometheus registry)

# Pinned versions. Kafka's is in scripts/stack/kafka/pom.xml (read below); ClickHouse and Prometheus are
# whatever Debian 12 ships (18.16.1 and 2.42.0).
MINIO_TAG=RELEASE.2025-09-07T16-13-09Z
MINIO_COMMIT=07c3a429bfed
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/stack/kafka/pom.xml")
# docker-compose only validates docker-compose.yml in the tests (it needs no engine for that).
APT_PACKAGES=(clickhouse-server clickhouse-client prometheus kcat curl openssl docker-compose)

KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
MINIO_BIN=$CACHE/minio-$MINIO_TAG/minio
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
  log "minio: go install github.com/minio/minio@$MINIO_TAG (a few minutes, once)"
  local version=${MINIO_TAG#RELEASE.} pkg=github.com/minio/minio/cmd
  version=$(sed -E 's/T([0-9]{2})-([0-9]{2})-([0-9]{2})Z/T\1:\2:\3Z/' <<<"$version")
  GOBIN=$(dirname "$MINIO_BIN") go install -trimpath \
    -ldflags "-s -w -X $pkg.Version=$version -X $pkg.ReleaseTag=$MINIO_TAG -X $pkg.CommitID=$MINIO_COMMIT -X $pkg.ShortCommitID=$MINIO_COMMIT" \
    "github.com/minio/minio@$MINIO_TAG"
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
    kafka) echo "9092 9093" ;; minio) echo "9000 9001" ;; clickhouse) echo "8123 19100 19109" ;;
    prometheus) echo 9090 ;; registry) echo 8081 ;;
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
    minio) "$MINIO_BIN" --version 2>/dev/null | head -n1 | sed 's/^minio version //' ;;
    clickhouse) echo "ClickHouse $(curl -s -m 3 'http://127.0.0.1:8123/?query=SELECT%20version()' || echo '?')" ;;
    prometheus) prometheus --version 2>&1 | head -n1 | awk '{print "Prometheus " $3}' ;;
    registry) echo "nrt registry $("$(nrt_bin)" --version 2>/dev/null | awk '{print $2}')" ;;
  esac
}

endpoint_of() {
  case $1 in
    kafka) echo "127.0.0.1:9092 (controller 9093)" ;;
    minio) echo "http://127.0.0.1:9000 (console http://127.0.0.1:9001)" ;;
    clickhouse) echo "http://127.0.0.1:8123 (native 19100)" ;;
    prometheus) echo "http://127.0.0.1:9090" ;;
    registry) echo "http://127.0.0.1:8081" ;;
  esac
}

# --- start one service ---------------------------------------------------------------------------
start_kafka() {
  local dir=$STACK/kafka
  mkdir -p "$dir" "$LOGS"
  sed -e "s#@DATA@#$dir/data#" "$ROOT/scripts/stack/kafka/server.properties" > "$dir/server.properties"
  local cp="$KAFKA_HOME/libs/*"
  local java_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/scripts/stack/kafka/log4j2.properties")
  if [[ ! -f $dir/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid)
    java "${java_opts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$dir/server.properties" >>"$LOGS/kafka.log" 2>&1 || die "kafka: formatting storage failed (see $LOGS/kafka.log)"
  fi
  spawn kafka java "${java_opts[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
}

start_minio() {
  mkdir -p "$STACK/minio/data"
  [[ -n ${MINIO_ROOT_USER:-} && -n ${MINIO_ROOT_PASSWORD:-} ]] || die "minio: MINIO_ROOT_USER/MINIO_ROOT_PASSWORD are not set (.env)"
  MINIO_PROMETHEUS_AUTH_TYPE=public MINIO_UPDATE=off MINIO_BROWSER_REDIRECT=off \
    spawn minio "$MINIO_BIN" server "$STACK/minio/data" --quiet --address 127.0.0.1:9000 --console-address 127.0.0.1:9001
}

start_clickhouse() {
  local dir=$STACK/clickhouse
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  sed -e "s#@DIR@#$dir#g" "$ROOT/scripts/stack/clickhouse/config.xml" > "$dir/config.xml"
  local password="<password></password>"
  if [[ -n ${NRT_CLICKHOUSE_PASSWORD:-} ]]; then
    password="<password_sha256_hex>$(printf '%s' "$NRT_CLICKHOUSE_PASSWORD" | sha256sum | cut -d' ' -f1)</password_sha256_hex>"
  fi
  sed -e "s#@PASSWORD_ELEMENT@#$password#" "$ROOT/scripts/stack/clickhouse/users.xml" > "$dir/users.xml"
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

start_one() {
  local svc=$1
  if running "$svc"; then
    wait_healthy "$svc"
    [[ $svc == prometheus ]] && refresh_prometheus
    return 0
  fi
  if [[ $svc == registry ]] && ! has_registry; then
    log "registry: this build has no 'nrt registry' subcommand yet; not started"
    return 0
  fi
  check_ports_free "$svc"
  local t0=$SECONDS
  "start_$svc"
  wait_healthy "$svc"
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
  printf '%-11s %-5s %-52s %s\n' SERVICE STATE ENDPOINT VERSION
  local svc bad=0 state version
  for svc in "${SERVICES[@]}"; do
    if healthy "$svc"; then state=up; version=$(version_of "$svc")
    elif [[ $svc == registry ]] && ! has_registry; then state=n/a; version="not built yet (no 'nrt registry')"
    else state=DOWN; version=-; bad=1; fi
    printf '%-11s %-5s %-52s %s\n' "$svc" "$state" "$(endpoint_of "$svc")" "$version"
  done
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
