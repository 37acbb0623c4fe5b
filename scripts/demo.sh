#!/usr/bin/env bash
# The main job: the real services, the Mock API and the pipeline; then where to look, and one live
# progress line (events/s produced and consumed, lag, freshness p99) until Ctrl-C.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

ADMIN=http://127.0.0.1:9180
LOGS=.stack/logs

scripts/stack.sh up
nrt=target/debug/nrt
mkdir -p "$LOGS"

# Their own sessions: Ctrl-C reaches this script only, which then stops the pipeline with one SIGTERM
# (a second signal would make it exit without draining).
setsid "$nrt" mock-api --listen 127.0.0.1:8000 >>"$LOGS/demo-mock-api.log" 2>&1 </dev/null &
mock=$!
setsid "$nrt" run --role all --admin-addr 127.0.0.1:9180 >>"$LOGS/demo-pipeline.log" 2>&1 </dev/null &
pipeline=$!

stop() {
  trap - INT TERM EXIT
  printf '\n[demo] stopping the pipeline (it drains: what it read is written and committed)...\n'
  kill -TERM "$pipeline" 2>/dev/null || true
  wait "$pipeline" 2>/dev/null || true
  kill "$mock" 2>/dev/null || true
  wait "$mock" 2>/dev/null || true
  echo "[demo] stopped. The services still run: scripts/stack.sh down stops them."
  exit 0
}
trap stop INT TERM EXIT

for _ in $(seq 120); do
  curl -sf -m 2 "$ADMIN/ready" >/dev/null && break
  kill -0 "$pipeline" 2>/dev/null || { tail -n 20 "$LOGS/demo-pipeline.log"; echo "[demo] the pipeline exited"; exit 1; }
  sleep 0.5
done

cat <<MSG

Where to look:
  status page     $ADMIN/                  (actors, events/s, lag, freshness, dead letters)
  admin API       $ADMIN/ready  /metrics  /actors
  registry        http://127.0.0.1:8081/   (subjects, versions, schemas)
  Prometheus      http://127.0.0.1:9090/targets  and  /alerts
  MinIO console   http://127.0.0.1:9001    (user and password: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD in .env)
  ClickHouse      curl 127.0.0.1:8123 --data-binary 'SELECT count() FROM analytics.events_raw FINAL'
  logs            $LOGS/demo-pipeline.log, $LOGS/demo-mock-api.log
Ctrl-C stops the pipeline (the services keep running).

MSG

# One line, redrawn: rates from the counters' change over each 2 s; lag summed over partitions;
# freshness p99 from the histogram's buckets (linear within a bucket, as Prometheus estimates it).
summary() {
  awk -v prev_p="$1" -v prev_c="$2" -v secs="$3" '
    /^nrt_events_published_total / { p = $2 }
    /^nrt_events_consumed_total / { c = $2 }
    /^nrt_consumer_lag\{/ { lag += $2 }
    /^nrt_freshness_seconds_bucket\{/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n++; bound[n] = le; count[n] = $2
    }
    END {
      p99 = "-"
      total = count[n]
      if (total > 0) {
        rank = 0.99 * total; lo = 0; lc = 0
        for (i = 1; i <= n; i++) {
          if (count[i] >= rank) {
            if (bound[i] == "+Inf") { p99 = "> " lo " s"; break }
            p99 = sprintf("%.2f s", lo + (bound[i] - lo) * (rank - lc) / (count[i] - lc)); break
          }
          lo = bound[i]; lc = count[i]
        }
      }
      printf "%d %d produced %6.0f/s  consumed %6.0f/s  lag %d  freshness p99 %s\n",
        p, c, (p - prev_p) / secs, (c - prev_c) / secs, lag, p99
    }'
}

prev_p=0 prev_c=0 first=1
while kill -0 "$pipeline" 2>/dev/null; do
  if metrics=$(curl -sf -m 2 "$ADMIN/metrics"); then
    read -r prev_p prev_c line < <(summary "$prev_p" "$prev_c" 2 <<<"$metrics")
    # The first reading has no earlier one to make a rate with.
    ((first)) || printf '\r[demo] %s\033[K' "$line"
    first=0
  fi
  sleep 2
done
trap - INT TERM EXIT
kill "$mock" 2>/dev/null || true
printf '\n[demo] the pipeline exited:\n'
tail -n 20 "$LOGS/demo-pipeline.log"
exit 1
