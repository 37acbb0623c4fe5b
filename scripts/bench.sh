#!/usr/bin/env bash
# Throughput of the release build on this machine, against the real services of scripts/stack.sh:
#   1. codec: the CPU cost of each stage, single-threaded (cargo bench --bench codec; BENCH_CODEC=0
#      skips it);
#   2. producer: a seeded Mock API of N events → Poller → Encoder → Kafka, until Kafka acked all N;
#   3. consumer: those N events from Kafka → both sinks, until MinIO and ClickHouse acknowledged all N.
#   4. replicas (--consumers "1 2 3"): the same N events read by 1, 2, 3… consumer processes in one
#      group (a fresh group each time), until MinIO and ClickHouse acknowledged all N between them.
#   3a. lake formats (BENCH_FORMATS=0 skips it): the consumer alone on the same N events writing the
#      lake as JSONL, then as Parquet, two rounds alternating: events/s, nrt CPU and the lake's bytes
#      per event of each (goal: Parquet <= 25 % of JSONL's bytes at >= 85 % of its events/s).
#   3b. against (--against "BIN..."): the consumer run again with other nrt binaries (say the last
#      release's) and with this one, alternating, three rounds (each starting with the next binary),
#      each on the same N events with a fresh group and table: events/s, CPU of nrt and of the
#      services, batches.
#   4b. topics (--topics T): the same number of events spread over T topics (N/T each), produced and
#      consumed by one process each with a pipelines file of T pipelines (one per topic), consumer-side
#      events/s and memory against the one-topic consumer above; then read again with pipeline t1's
#      table renamed away: the other pipelines' events/s with and without that fault.
#   5. wide (BENCH_WIDE records, default 200000, 0 skips it): records of benches/wide.avsc (48 fields
#      with a nested record, an array and a map, ~1 KB of Avro) from a seeded Mock API through the
#      producer, then from Kafka to both sinks (a table nrt creates from the schema): MB/s of Avro, and
#      MB of Avro per CPU second of nrt (the goal: >= 100 MB/s per busy core).
#   --cluster: everything against the cluster profile (scripts/stack.sh up --cluster: three Kafka nodes,
#      topics RF 3; ClickHouse 2 shards x 2 replicas, tables made ON CLUSTER): service CPU sums every
#      node (ClickHouse's includes ZooKeeper's). With --consumers "1 2 3" the sizing figures of
#      docs/deployment.md. --topics and the wide records are single-node only.
#   6. freshness: a steady 10,000 events/s (BENCH_FRESH_RATE) through producer and consumer for 30 s
#      (BENCH_FRESH_SECS, 0 skips it): created_at to ClickHouse acknowledging, p50 and p99.
# Prints events/s, peak RSS, and CPU microseconds per event of nrt, Kafka, ClickHouse and MinIO, so the
# ceiling of the whole job on this machine (cores / total CPU per event) is visible. Figures, not
# pass/fail: nothing here is a test.
#
#   scripts/bench.sh [--events N] [--partitions P] [--consumers "1 2 3"] [--against "BIN..."] [--topics T]
#                    [--cluster]                               (defaults 1000000, 3, none, none, none)
#   scripts/bench.sh N                                                        (the old form: N events)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

N=1000000 BENCH_PARTITIONS=${BENCH_PARTITIONS:-3} BENCH_REPLICAS=${BENCH_REPLICAS:-} AGAINST="" TOPICS="" CLUSTER=""
usage() { echo 'usage: scripts/bench.sh [--events N] [--partitions P] [--consumers "1 2 3"] [--against "BIN..."] [--topics T] [--cluster]' >&2; exit 2; }
while (($#)); do
  case $1 in
    --events) N=${2:-}; shift 2 ;;
    --partitions) BENCH_PARTITIONS=${2:-}; shift 2 ;;
    --consumers) BENCH_REPLICAS=${2:-}; shift 2 ;;
    --topics) TOPICS=${2:-}; shift 2; [[ $TOPICS =~ ^[1-9][0-9]?$ ]] || usage ;;
    --cluster) CLUSTER=1; shift ;;
    --against) AGAINST=${2:-}; shift 2
      for bin in $AGAINST; do [[ -x $bin ]] || { echo "--against: $bin is not an executable" >&2; exit 2; }; done ;;
    [0-9]*) N=$1; shift ;;
    *) usage ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ && $BENCH_PARTITIONS =~ ^[1-9][0-9]*$ ]] || usage
[[ -z $CLUSTER || -z $TOPICS ]] || { echo "--topics is single-node only" >&2; exit 2; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

t0=$SECONDS
cargo build --release --quiet
echo "release build: $((SECONDS - t0)) s"
scripts/stack.sh up ${CLUSTER:+--cluster} >/dev/null
[[ -f .env ]] && { set -a; source .env; set +a; }
# ClickHouse's native port for the bench's own statements (drops, renames).
CH_PORT=19100 ON_CLUSTER=""
if [[ -n $CLUSTER ]]; then
  export NRT_KAFKA_BROKERS=127.0.0.1:29091,127.0.0.1:29092,127.0.0.1:29093 NRT_TOPIC_REPLICATION=3 \
    NRT_CLICKHOUSE_URL=http://127.0.0.1:18121 NRT_CLICKHOUSE_CLUSTER=nrt \
    NRT_CLICKHOUSE_SHARDS="http://127.0.0.1:18121,http://127.0.0.1:18122;http://127.0.0.1:18123,http://127.0.0.1:18124"
  CH_PORT=19101 ON_CLUSTER="ON CLUSTER nrt" BENCH_WIDE=0
fi
# Drops table $1 of nrt_bench (and, on the cluster, its local tables on every node).
drop_table() {
  clickhouse-client --port "$CH_PORT" -q "DROP TABLE IF EXISTS nrt_bench.$1 $ON_CLUSTER" >/dev/null || true
  [[ -z $CLUSTER ]] || clickhouse-client --port "$CH_PORT" -q "DROP TABLE IF EXISTS nrt_bench.$1_local $ON_CLUSTER" >/dev/null || true
}

if [[ ${BENCH_CODEC:-1} != 0 ]]; then
  echo; echo "=== codec (single thread, per stage)"
  cargo bench --quiet --bench codec 2>/dev/null | awk '/seeded events|wide records/ {print}
    /^(per_event|wide_record)\// {name = substr($0, index($0, "/") + 1)}
    /thrpt:/ && name != "" {printf "  %-45s %s %s (median)\n", name, $4, $5; name = ""}'
fi

NRT=target/release/nrt
id=$(date +%s)
export NRT_TOPIC=nrt-bench-$id NRT_GROUP_ID=nrt-bench-$id NRT_S3_PREFIX=bench-$id/ \
  NRT_CLICKHOUSE_DATABASE=nrt_bench NRT_CLICKHOUSE_TABLE=events_$id NRT_ADMIN_ADDR=127.0.0.1:0 \
  NRT_POLL_BATCH=10000 NRT_TOPIC_PARTITIONS=$BENCH_PARTITIONS RUST_LOG=warn

# Starts `nrt ARGS...` in the background; sets PID and URL (its admin address, printed on stdout).
spawn() {
  local out=$WORK/$1.out
  shift
  "$NRT" "$@" >"$out" 2>>"$WORK/stderr.log" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 100); do
    URL=$(grep -o 'http://[0-9.:]*' "$out" | head -n1 || true)
    [[ -n $URL ]] && return 0
    sleep 0.1
  done
  echo "nrt $* did not start; its log:" >&2
  cat "$WORK/stderr.log" >&2
  exit 1
}

# CPU seconds (user + system) processes have used so far: one pid, or several joined by commas.
cpu() {
  local total=0 p
  for p in ${1//,/ }; do
    total=$(awk -v t="$total" -v hz="$(getconf CLK_TCK)" '{printf "%.2f", t + ($14 + $15) / hz}' "/proc/$p/stat" 2>/dev/null || echo "$total")
  done
  echo "$total"
}
# Clock ticks (user + system) of the processes of comma-joined pids $1.
cpu_ticks() {
  local total=0 p
  for p in ${1//,/ }; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
  echo "$total"
}
joined() { paste -sd, -; }
service_pids() {
  if [[ -n $CLUSTER ]]; then
    echo "$(pgrep -f 'cluster/kafka-.*server.properties' | joined)" \
      "$( (pgrep -f 'cluster/clickhouse-s'; pgrep -f ZooKeeperServerMain) | joined)" "$(pgrep -x minio | head -1)"
  else
    echo "$(pgrep -f 'stack/kafka/server.properties' | head -1) $(pgrep -f 'stack/clickhouse/config.xml' | head -1)" \
      "$(pgrep -x minio | head -1)"
  fi
}

metric() { curl -sf -m 5 "$1/metrics" | awk -v m="$2" '$1 == m {print int($2)}'; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN {printf "%.0f events/s (%.2f s)", n / (b - a), b - a}'; }
# Waits until the producer at $URL has published $1 records; START: when it published its first.
wait_published() {
  local n=$1 published
  START=""
  while :; do
    published=$(metric "$URL" nrt_events_published_total)
    [[ -z $START && ${published:-0} -gt 0 ]] && START=$(now)
    [[ ${published:-0} -ge $n ]] && return 0
    sleep 0.1
  done
}

# The CPU seconds of the busiest threads of process $1.
busiest_threads() {
  for t in /proc/"$1"/task/*; do
    awk -v hz="$(getconf CLK_TCK)" -v name="$(cat "$t/comm")" '{printf "  %6.2f  %s\n", ($14 + $15) / hz, name}' "$t/stat"
  done | sort -rn | head -n "$2"
}

# Waits until the consumer at $URL has written $1 records to both sinks; START: when it read its first.
wait_written() {
  local n=$1 consumed minio clickhouse
  START=""
  while :; do
    consumed=$(metric "$URL" nrt_events_consumed_total)
    [[ -z $START && ${consumed:-0} -gt 0 ]] && START=$(now)
    minio=$(metric "$URL" 'nrt_events_written_total{sink="minio"}')
    clickhouse=$(metric "$URL" 'nrt_events_written_total{sink="clickhouse"}')
    [[ ${minio:-0} -ge $n && ${clickhouse:-0} -ge $n ]] && return 0
    sleep 0.1
  done
}

"$NRT" mock-api --listen 127.0.0.1:18765 --seed 1 --limit "$N" >/dev/null 2>>"$WORK/stderr.log" &
PIDS+=("$!")
export NRT_MOCK_API_URL=http://127.0.0.1:18765
sleep 0.5

echo; echo "=== producer: $N events, Mock API → Kafka (one transaction per batch)"
read -r kafka_pid clickhouse_pid minio_pid <<<"$(service_pids)"
kafka_before=$(cpu "$kafka_pid")
spawn producer run --role producer
producer=$PID
wait_published "$N"
echo "producer: $(rate "$N" "$START" "$(now)")"
awk -v p="$(cpu "$producer")" -v k0="$kafka_before" -v k1="$(cpu "$kafka_pid")" -v n="$N" 'BEGIN {
  printf "CPU per event: nrt %.2f µs, Kafka %.2f µs\n", p / n * 1e6, (k1 - k0) / n * 1e6 }'
kill -TERM "$producer"; wait "$producer" 2>/dev/null || true

echo; echo "=== consumer: $N events, Kafka → MinIO (JSONL) + ClickHouse, committed"
read -r kafka_pid clickhouse_pid minio_pid <<<"$(service_pids)"
cpu_before="$(cpu "$kafka_pid") $(cpu "$clickhouse_pid") $(cpu "$minio_pid")"
spawn consumer run --role consumer
consumer=$PID
start=""
while :; do
  consumed=$(metric "$URL" nrt_events_consumed_total)
  [[ -z $start && ${consumed:-0} -gt 0 ]] && start=$(now)
  [[ -z ${read_all:-} && ${consumed:-0} -ge $N ]] && read_all=$(now)
  minio=$(metric "$URL" 'nrt_events_written_total{sink="minio"}')
  clickhouse=$(metric "$URL" 'nrt_events_written_total{sink="clickhouse"}')
  [[ ${minio:-0} -ge $N && ${clickhouse:-0} -ge $N ]] && break
  sleep 0.1
done
end=$(now)
peak=$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$consumer/status")
echo "consumer: $(rate "$N" "$start" "$end"), peak RSS $peak; read and decoded: $(rate "$N" "$start" "$read_all")"
one_topic_rate=$(awk -v n="$N" -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", n / (b - a)}')
cpu_after="$(cpu "$consumer") $(cpu "$kafka_pid") $(cpu "$clickhouse_pid") $(cpu "$minio_pid")"
awk -v b="$cpu_before" -v a="$cpu_after" -v n="$N" -v cores="$(nproc)" 'BEGIN {
  split(b, x, " "); split(a, y, " "); k = y[2] - x[1]; c = y[3] - x[2]; m = y[4] - x[3];
  printf "CPU seconds during the consumer run: nrt %.1f, Kafka %.1f, ClickHouse %.1f, MinIO %.1f\n", y[1], k, c, m;
  t = (y[1] + k + c + m) / n * 1e6;
  printf "CPU per event: nrt %.2f µs, Kafka %.2f, ClickHouse %.2f, MinIO %.2f; total %.2f µs -> ceiling on %d cores: %.0f events/s\n",
    y[1] / n * 1e6, k / n * 1e6, c / n * 1e6, m / n * 1e6, t, cores, cores * 1e6 / t }'
echo "busiest threads of the consumer (CPU seconds):"
busiest_threads "$consumer" 5
kill -TERM "$consumer"; wait "$consumer" 2>/dev/null || true
drop_table "events_$id"

# Sum of one metric over the admin URLs given.
metric_sum() {
  local m=$1 total=0 v
  shift
  for u in "$@"; do v=$(metric "$u" "$m"); total=$((total + ${v:-0})); done
  echo "$total"
}

# The consumer alone, with binary $1 (label $2): N events into a fresh group, prefix and table.
consume_with() {
  local bin=$1 label=$2 run=$3
  export NRT_GROUP_ID=nrt-bench-$id-$run NRT_S3_PREFIX=bench-$id-$run/ NRT_CLICKHOUSE_TABLE=events_${id}_$run
  local saved=$NRT kafka_pid clickhouse_pid minio_pid before
  read -r kafka_pid clickhouse_pid minio_pid <<<"$(service_pids)"
  before=$(( $(cpu_ticks "$kafka_pid") + $(cpu_ticks "$clickhouse_pid") + $(cpu_ticks "$minio_pid") ))
  NRT=$bin
  spawn "against-$run" run --role consumer
  NRT=$saved
  local pid=$PID
  wait_written "$N"
  local services=$(( $(cpu_ticks "$kafka_pid") + $(cpu_ticks "$clickhouse_pid") + $(cpu_ticks "$minio_pid") - before ))
  printf '  %-10s %s, CPU %.2f µs/event (services %.2f), peak RSS %s, %s batches\n' "$label" \
    "$(rate "$N" "$START" "$(now)")" "$(awk -v c="$(cpu "$pid")" -v n="$N" 'BEGIN {print c / n * 1e6}')" \
    "$(awk -v t="$services" -v hz="$(getconf CLK_TCK)" -v n="$N" 'BEGIN {print t / hz / n * 1e6}')" \
    "$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status")" \
    "$(metric "$URL" 'nrt_batch_events_count{sink="clickhouse"}')"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  drop_table "events_${id}_$run"
}

# The consumer alone writing the lake as $1 (jsonl|parquet): N events into a fresh group, prefix and
# table. Prints its events/s, nrt CPU per event, the lake's bytes per event, peak RSS; sets FORMAT_RATE
# and FORMAT_BYTES (bytes per event) for the summary.
consume_as() {
  local format=$1 run=$2 pid
  export NRT_GROUP_ID=nrt-bench-$id-$run NRT_S3_PREFIX=bench-$id-$run/ NRT_CLICKHOUSE_TABLE=events_${id}_$run \
    NRT_LAKE_FORMAT=$format
  spawn "format-$run" run --role consumer
  pid=$PID
  wait_written "$N"
  local end
  end=$(now)
  FORMAT_RATE=$(awk -v n="$N" -v a="$START" -v b="$end" 'BEGIN {printf "%.0f", n / (b - a)}')
  FORMAT_BYTES=$(awk -v b="$(metric "$URL" 'nrt_sink_bytes_total{sink="minio"}')" -v n="$N" 'BEGIN {printf "%.1f", b / n}')
  printf '  %-8s %s events/s, CPU %.2f µs/event, %s lake bytes/event, peak RSS %s, %s batches\n' "$format" \
    "$FORMAT_RATE" "$(awk -v c="$(cpu "$pid")" -v n="$N" 'BEGIN {print c / n * 1e6}')" "$FORMAT_BYTES" \
    "$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status")" \
    "$(metric "$URL" 'nrt_batch_events_count{sink="clickhouse"}')"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  unset NRT_LAKE_FORMAT
  drop_table "events_${id}_$run"
}

if [[ ${BENCH_FORMATS:-1} != 0 ]]; then
  echo; echo "=== lake formats: the consumer writing JSONL, then Parquet, alternating, $N events each"
  declare -A rates=() sizes=()
  for round in 1 2; do
    for format in jsonl parquet; do
      consume_as "$format" "$format$round"
      rates[$format]="${rates[$format]:-} $FORMAT_RATE" sizes[$format]=$FORMAT_BYTES
    done
  done
  awk -v j="${rates[jsonl]}" -v p="${rates[parquet]}" -v jb="${sizes[jsonl]}" -v pb="${sizes[parquet]}" 'BEGIN {
    nj = split(j, a, " "); np = split(p, b, " "); bj = 0; bp = 0
    for (i = 1; i <= nj; i++) if (a[i] > bj) bj = a[i]
    for (i = 1; i <= np; i++) if (b[i] > bp) bp = b[i]
    printf "  Parquet: %.0f %% of JSONL'"'"'s bytes, %.0f %% of its events/s (best of two rounds each; goal <= 25 %% at >= 85 %%)\n",
      pb / jb * 100, bp / bj * 100 }'
fi

if [[ -n $AGAINST ]]; then
  echo; echo "=== consumer against $AGAINST: $N events each, alternating"
  # The order turns each round: a run pays for the background work (merges, MinIO's) of the one
  # before it, so no binary always goes second.
  for round in 1 2 3; do
    runs=() b=0
    for bin in $AGAINST; do
      b=$((b + 1))
      runs+=("$bin $(basename "$bin") base${b}r$round")
    done
    runs+=("$NRT this this$round")
    for ((k = 0; k < ${#runs[@]}; k++)); do
      # shellcheck disable=SC2086
      consume_with ${runs[(k + round - 1) % ${#runs[@]}]}
    done
  done
fi

for replicas in ${BENCH_REPLICAS:-}; do
  echo; echo "=== $replicas consumer process(es) in one group, $BENCH_PARTITIONS partitions: $N events → both sinks"
  export NRT_GROUP_ID=nrt-bench-$id-r$replicas NRT_S3_PREFIX=bench-$id-r$replicas/ \
    NRT_CLICKHOUSE_TABLE=events_${id}_r$replicas
  urls=() members=()
  read -r kafka_pid clickhouse_pid minio_pid <<<"$(service_pids)"
  cpu_before="$(cpu "$kafka_pid") $(cpu "$clickhouse_pid") $(cpu "$minio_pid")"
  for i in $(seq 1 "$replicas"); do
    spawn "consumer-$replicas-$i" run --role consumer
    urls+=("$URL") members+=("$PID")
  done
  start=""
  while :; do
    consumed=$(metric_sum nrt_events_consumed_total "${urls[@]}")
    [[ -z $start && $consumed -gt 0 ]] && start=$(now)
    minio=$(metric_sum 'nrt_events_written_total{sink="minio"}' "${urls[@]}")
    clickhouse=$(metric_sum 'nrt_events_written_total{sink="clickhouse"}' "${urls[@]}")
    [[ $minio -ge $N && $clickhouse -ge $N ]] && break
    sleep 0.1
  done
  end=$(now)
  echo "$replicas consumer(s): $(rate "$N" "$start" "$end")"
  nrt_cpu=0
  for p in "${members[@]}"; do
    printf '  pid %s: peak RSS %s, CPU %s s\n' "$p" "$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$p/status")" "$(cpu "$p")"
    nrt_cpu=$(awk -v a="$nrt_cpu" -v b="$(cpu "$p")" 'BEGIN {print a + b}')
  done
  cpu_after="$nrt_cpu $(cpu "$kafka_pid") $(cpu "$clickhouse_pid") $(cpu "$minio_pid")"
  awk -v b="$cpu_before" -v a="$cpu_after" -v n="$N" 'BEGIN {
    split(b, x, " "); split(a, y, " "); k = y[2] - x[1]; c = y[3] - x[2]; m = y[4] - x[3];
    printf "  CPU seconds: nrt %.1f, Kafka %.1f, ClickHouse %.1f, MinIO %.1f; per event: nrt %.2f µs, services %.2f µs\n",
      y[1], k, c, m, y[1] / n * 1e6, (k + c + m) / n * 1e6 }'
  for p in "${members[@]}"; do kill -TERM "$p"; done
  for p in "${members[@]}"; do wait "$p" 2>/dev/null || true; done
  drop_table "events_${id}_r$replicas"
done

# Sum of every sample of a metric whose name and labels start with $2 (one per pipeline).
metric_prefix_sum() { curl -sf -m 5 "$1/metrics" | awk -v m="$2" 'index($1, m) == 1 {s += $2} END {printf "%d", s}'; }

# The pipelines file of the topics phase: pipeline t<i> reads topic nrt-bench-<id>-t<i>; its group,
# lake prefix and table carry run $1 (a second run reads the same topics afresh).
topics_file() {
  local run=$1 i
  for i in $(seq 1 "$TOPICS"); do
    printf '[[pipeline]]\nname = "t%d"\ntopic = "nrt-bench-%s-t%d"\ngroup_id = "nrt-bench-%s-%s%d"\ns3_prefix = "bench-%s-%s%d/"\nclickhouse_table = "events_%s_%s%d"\nmock_api_url = "http://127.0.0.1:%d"\npoll_batch = 10000\ntopic_partitions = %d\n\n' \
      "$i" "$id" "$i" "$id" "$run" "$i" "$id" "$run" "$i" "$id" "$run" "$i" "$((18770 + i))" "$BENCH_PARTITIONS"
  done
}

# Waits until the consumer at $URL has written all $2 records to both sinks ($1 = yes), or ($1 = no)
# only those of pipelines t2…; OTHERS_DONE: when t2… had all theirs. One scrape per look.
wait_topics() {
  local with_first=$1 n=$2 seen others all
  OTHERS_DONE=""
  while :; do
    seen=$(curl -sf -m 5 "$URL/metrics" | awk '
      $1 ~ /^nrt_events_written_total\{/ {
        sink = ($1 ~ /sink="minio"/) ? "m" : "c"; first = ($1 ~ /pipeline="t1"/)
        total[sink] += $2; if (!first) others[sink] += $2 }
      END { printf "%d %d", (others["m"] < others["c"] ? others["m"] : others["c"]), (total["m"] < total["c"] ? total["m"] : total["c"]) }')
    read -r others all <<<"${seen:-0 0}"
    [[ -z $OTHERS_DONE && $others -ge $((per * (TOPICS - 1))) ]] && OTHERS_DONE=$(now)
    if [[ -n $OTHERS_DONE && ($with_first == no || $all -ge $n) ]]; then
      return 0
    fi
    sleep 0.1
  done
}

if [[ -n $TOPICS ]]; then
  per=$((N / TOPICS))
  echo; echo "=== $TOPICS topics of $per events in one process (a pipelines file of $TOPICS pipelines) → both sinks"
  for i in $(seq 1 "$TOPICS"); do
    "$NRT" mock-api --listen "127.0.0.1:$((18770 + i))" --seed "$((10 + i))" --limit "$per" >/dev/null 2>>"$WORK/stderr.log" &
    PIDS+=("$!")
  done
  topics_file t >"$WORK/topics.toml"
  topics_file f >"$WORK/fault.toml"
  sleep 0.5
  # The file configures every pipeline: the variables of the one-topic runs above must not be set too.
  (
    unset NRT_TOPIC NRT_GROUP_ID NRT_S3_PREFIX NRT_CLICKHOUSE_TABLE NRT_POLL_BATCH NRT_TOPIC_PARTITIONS NRT_MOCK_API_URL
    export NRT_CONFIG=$WORK/topics.toml
    spawn topics-producer run --role producer
    producer=$PID
    until (($(metric_prefix_sum "$URL" nrt_events_published_total) >= per * TOPICS)); do sleep 0.1; done
    kill -TERM "$producer"; wait "$producer" 2>/dev/null || true
    read -r kafka_pid clickhouse_pid minio_pid <<<"$(service_pids)"
    cpu_before="$(cpu "$kafka_pid") $(cpu "$clickhouse_pid") $(cpu "$minio_pid")"
    spawn topics-consumer run --role consumer
    consumer=$PID
    until (($(metric_prefix_sum "$URL" nrt_events_consumed_total) > 0)); do sleep 0.05; done
    start=$(now)
    total=$((per * TOPICS))
    wait_topics yes "$total"
    end=$(now)
    echo "$TOPICS topics: $(rate "$total" "$start" "$end"), peak RSS $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$consumer/status"); one topic above: ${one_topic_rate} events/s"
    cpu_after="$(cpu "$consumer") $(cpu "$kafka_pid") $(cpu "$clickhouse_pid") $(cpu "$minio_pid")"
    awk -v b="$cpu_before" -v a="$cpu_after" -v n="$total" -v one="$one_topic_rate" -v s="$start" -v e="$end" 'BEGIN {
      split(b, x, " "); split(a, y, " "); k = y[2] - x[1]; c = y[3] - x[2]; m = y[4] - x[3];
      printf "  CPU per event: nrt %.2f µs, Kafka %.2f, ClickHouse %.2f, MinIO %.2f; events/s against one topic: %+.0f %%\n",
        y[1] / n * 1e6, k / n * 1e6, c / n * 1e6, m / n * 1e6, (n / (e - s) / one - 1) * 100 }'
    others_rate=$(awk -v n="$((per * (TOPICS - 1)))" -v a="$start" -v b="$OTHERS_DONE" 'BEGIN {printf "%.0f", n / (b - a)}')
    kill -TERM "$consumer"; wait "$consumer" 2>/dev/null || true

    # Isolation: the same topics read afresh, with pipeline t1's table renamed away once it exists
    # (every insert of t1 refused); the other pipelines' rate against theirs above.
    ((TOPICS >= 2)) || exit 0
    export NRT_CONFIG=$WORK/fault.toml
    spawn fault-consumer run --role consumer
    consumer=$PID
    until [[ $(clickhouse-client --port "$CH_PORT" -q "EXISTS TABLE nrt_bench.events_${id}_f1" 2>/dev/null) == 1 ]]; do sleep 0.05; done
    clickhouse-client --port "$CH_PORT" -q "RENAME TABLE nrt_bench.events_${id}_f1 TO nrt_bench.events_${id}_f1_away"
    start=$(now)
    wait_topics no "$total"
    held=$(metric "$URL" 'nrt_events_written_total{sink="clickhouse",pipeline="t1"}')
    clickhouse-client --port "$CH_PORT" -q "RENAME TABLE nrt_bench.events_${id}_f1_away TO nrt_bench.events_${id}_f1"
    awk -v n="$((per * (TOPICS - 1)))" -v a="$start" -v b="$OTHERS_DONE" -v before="$others_rate" -v held="${held:-0}" 'BEGIN {
      r = n / (b - a)
      printf "  with t1 table gone: the other %d pipelines %.0f events/s against %.0f without the fault (%+.0f %%); t1 wrote %d rows meanwhile\n",
        '"$((TOPICS - 1))"', r, before, (r / before - 1) * 100, held }'
    wait_topics yes "$total"
    kill -TERM "$consumer"; wait "$consumer" 2>/dev/null || true
  )
  for i in $(seq 1 "$TOPICS"); do
    drop_table "events_${id}_t$i"
    drop_table "events_${id}_f$i"
  done
fi

# Wide records: the producer and the consumer of another record type, measured in Avro bytes too.
WIDE=${BENCH_WIDE:-200000}
if ((WIDE > 0)); then
  echo; echo "=== wide records (benches/wide.avsc): $WIDE records, Mock API → Kafka → MinIO + ClickHouse"
  "$NRT" mock-api --listen 127.0.0.1:18767 --seed 2 --limit "$WIDE" --schema benches/wide.avsc \
    >/dev/null 2>>"$WORK/stderr.log" &
  PIDS+=("$!")
  export NRT_MOCK_API_URL=http://127.0.0.1:18767 NRT_SCHEMA_FILE=benches/wide.avsc NRT_TOPIC=nrt-bench-$id-wide \
    NRT_GROUP_ID=nrt-bench-$id-wide NRT_S3_PREFIX=bench-$id-wide/ NRT_CLICKHOUSE_TABLE=wide_$id
  spawn wide-producer run --role producer
  producer=$PID
  wait_published "$WIDE"
  echo "producer: $(rate "$WIDE" "$START" "$(now)"), CPU $(awk -v c="$(cpu "$producer")" -v n="$WIDE" 'BEGIN {printf "%.2f", c / n * 1e6}') µs/record"
  kill -TERM "$producer"; wait "$producer" 2>/dev/null || true
  spawn wide-consumer run --role consumer
  consumer=$PID
  wait_written "$WIDE"
  end=$(now)
  avro=$(metric "$URL" nrt_consumed_bytes_total)
  awk -v n="$WIDE" -v b="${avro:-0}" -v a="$START" -v e="$end" -v c="$(cpu "$consumer")" \
    -v rss="$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$consumer/status")" 'BEGIN {
    printf "consumer: %.0f records/s, %.1f MB/s of Avro (%.0f bytes/record with framing), peak RSS %d MiB\n",
      n / (e - a), b / (e - a) / 1e6, b / n, rss
    printf "nrt CPU: %.2f µs/record, %.1f MB of Avro per CPU second (into both sinks)\n", c / n * 1e6, b / c / 1e6 }'
  echo "busiest threads of the consumer (CPU seconds):"
  busiest_threads "$consumer" 4
  kill -TERM "$consumer"; wait "$consumer" 2>/dev/null || true
  drop_table "wide_$id"
  unset NRT_SCHEMA_FILE
fi

# Freshness: created_at (stamped by the Mock API when it serves the event) to ClickHouse acknowledging
# the insert, from the consumer's nrt_freshness_seconds histogram, over BENCH_FRESH_SECS after a 5 s
# warm-up, at a steady BENCH_FRESH_RATE events/s. 0 seconds skips it.
FRESH_SECS=${BENCH_FRESH_SECS:-30} FRESH_RATE=${BENCH_FRESH_RATE:-10000}
if ((FRESH_SECS > 0)); then
  echo; echo "=== freshness: a steady $FRESH_RATE events/s for $FRESH_SECS s, created → acknowledged by ClickHouse"
  "$NRT" mock-api --listen 127.0.0.1:18766 --rate "$FRESH_RATE" >/dev/null 2>>"$WORK/stderr.log" &
  PIDS+=("$!")
  export NRT_MOCK_API_URL=http://127.0.0.1:18766 NRT_TOPIC=nrt-bench-$id-fresh NRT_GROUP_ID=nrt-bench-$id-fresh \
    NRT_S3_PREFIX=bench-$id-fresh/ NRT_CLICKHOUSE_TABLE=events_${id}_fresh NRT_POLL_BATCH=1000
  spawn fresh-producer run --role producer
  fresh_producer=$PID
  spawn fresh-consumer run --role consumer
  fresh_consumer=$PID consumer_url=$URL
  histogram() { curl -sf -m 5 "$consumer_url/metrics" | grep -E '^nrt_freshness_seconds_(bucket|count|sum)'; }
  sleep 5
  histogram >"$WORK/fresh0"
  sleep "$FRESH_SECS"
  histogram >"$WORK/fresh1"
  flush_s=$(awk -v ms="${NRT_FLUSH_INTERVAL_MS:-1000}" 'BEGIN {print ms / 1000}')
  # Quantiles as Prometheus' histogram_quantile computes them (linear within a bucket), on the difference
  # of the two snapshots.
  awk -v flush="$flush_s" '
    function le(line) { match(line, /le="[^"]*"/); return substr(line, RSTART + 4, RLENGTH - 5) }
    FNR == NR { before[$1] = $2; next }
    /_bucket/ { n++; bound[n] = le($1); cum[n] = $2 - before[$1] }
    /_count/ { count = $2 - before[$1] }
    /_sum/ { sum = $2 - before[$1] }
    function q(p,   i, want, lo, prev) {
      want = p * count; prev = 0; lo = 0
      for (i = 1; i <= n; i++) {
        if (cum[i] >= want) {
          if (bound[i] == "+Inf") return lo
          return lo + (bound[i] - lo) * (want - prev) / (cum[i] - prev)
        }
        prev = cum[i]; lo = bound[i]
      }
    }
    END {
      if (count == 0) { print "no event acknowledged by ClickHouse in the window"; exit }
      printf "%d events: mean %.3f s, p50 %.3f s, p99 %.3f s (target: flush interval %.2f s + 0.25 s = %.2f s)\n",
        count, sum / count, q(0.5), q(0.99), flush, flush + 0.25
    }' "$WORK/fresh0" "$WORK/fresh1"
  kill -TERM "$fresh_producer" "$fresh_consumer"
  wait "$fresh_producer" "$fresh_consumer" 2>/dev/null || true
  drop_table "events_${id}_fresh"
fi
