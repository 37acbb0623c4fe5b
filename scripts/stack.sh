#!/usr/bin/env bash
# The real services, natively, without Docker: install on first use (cached), start, stop, check.
#
#   scripts/stack.sh up [--cluster] | down | status | install | logs [SERVICE]
#   scripts/stack.sh start | stop | kill | freeze | thaw SERVICE
#
# `up --cluster` (or NRT_STACK_CLUSTER=1) also starts the cluster profile (scripts/stack/cluster.sh:
# ZooKeeper, three Kafka nodes, ClickHouse as 2 shards x 2 replicas) beside the single-node stack,
# whose registry, MinIO and Prometheus it uses; its nodes (kafka-1, clickhouse-s1r2, zookeeper, …) take
# the same per-service commands; `down` stops it too.
#
# `install` installs only (scripts/containers.sh builds its stand-ins from these); `kill` is SIGKILL,
# `freeze`/`thaw` SIGSTOP/SIGCONT (the fault tests use them). What each part does:
# scripts/stack/install.sh (installs, cached), scripts/stack/tls.sh (.env, the test PKI, secure.env),
# scripts/stack/services.sh (each service described once: ports, health, version, start).
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
# zookeeper: the jars only (no daemon), for the cluster profile's replicated tables (scripts/stack/cluster.sh).
APT_PACKAGES=(clickhouse-server clickhouse-client prometheus kcat curl openssl docker-compose attr libssl-dev pkg-config zookeeper)

KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
MINIO_BIN=$CACHE/minio-$MINIO_TAG/minio
VERSITYGW_BIN=$CACHE/versitygw-$VERSITYGW_VERSION/versitygw
TLS=$STACK/tls
SECURE_ENV=$STACK/secure.env
WAIT_SECS=${NRT_STACK_WAIT_SECS:-90}

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

for part in tls install services; do
  # shellcheck source=/dev/null
  source "$ROOT/scripts/stack/$part.sh"
done

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
CLUSTER=$ROOT/scripts/stack/cluster.sh
# A node of the cluster profile: its own script says how.
case ${2:-} in
  zookeeper|kafka-[0-9]|clickhouse-s[0-9]r[0-9]) exec "$CLUSTER" "$@" ;;
esac
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
    if [[ ${2:-} == --cluster || -n ${NRT_STACK_CLUSTER:-} ]]; then "$CLUSTER" up; fi
    ;;
  install)
    install_all
    ;;
  down)
    "$CLUSTER" down
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_one "${SERVICES[$i]}"; done
    ;;
  status)
    rc=0
    table || rc=$?
    if "$CLUSTER" running; then "$CLUSTER" status || rc=1; fi
    exit $rc
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
    echo "usage: $0 up [--cluster]|down|status|install|logs [SERVICE]|stop SERVICE|kill SERVICE|start SERVICE|freeze SERVICE|thaw SERVICE" >&2
    exit 2
    ;;
esac
