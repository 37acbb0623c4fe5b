#!/usr/bin/env bash
# The cluster profile of the native stack (`scripts/stack.sh up --cluster` starts it): ZooKeeper, three
# Kafka 4.1 KRaft nodes (RF 3, min.insync.replicas 2) and ClickHouse as 2 shards x 2 replicas
# (ReplicatedReplacingMergeTree on ZooKeeper, a Distributed table over them, the cluster `nrt` in
# remote_servers). The cluster tests (tests/it/cluster.rs, their own phase of scripts/test.sh) use it.
#
#   scripts/stack/cluster.sh up | down | status | running | kill NODE | start NODE | stop NODE
#                           | freeze NODE | thaw NODE
#
# Nodes: zookeeper, kafka-1..3, clickhouse-s1r1, -s1r2, -s2r1, -s2r2. Ports (all 127.0.0.1): ZooKeeper
# 22181; Kafka n: 2909n (clients), 2919n (controller); ClickHouse sSrR (i = 2(S-1)+R): HTTP 1812i,
# native 1910i, interserver 1920i. State and logs in .stack/cluster/. Needs what scripts/stack.sh
# installs (Kafka's jars, clickhouse-server, Debian's zookeeper jars). The ClickHouse servers' default
# user has no password here (loopback only; the servers query each other as it), as the single stack's
# by default (NRT_CLICKHOUSE_PASSWORD empty).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"
CACHE=${NRT_CACHE:-$HOME/.cache/nrt}
DIR=${NRT_STACK_DIR:-$ROOT/.stack}/cluster
KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
ZK_PORT=22181
KAFKA_NODES=(kafka-1 kafka-2 kafka-3)
CLICKHOUSE_NODES=(clickhouse-s1r1 clickhouse-s1r2 clickhouse-s2r1 clickhouse-s2r2)
NODES=(zookeeper "${KAFKA_NODES[@]}" "${CLICKHOUSE_NODES[@]}")
WAIT_SECS=${NRT_STACK_WAIT_SECS:-120}

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }

pid_of() { [[ -f $DIR/pids/$1.pid ]] && cat "$DIR/pids/$1.pid" || true; }
running() { local p; p=$(pid_of "$1"); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }
spawn() {
  local node=$1; shift
  mkdir -p "$DIR/pids" "$DIR/logs"
  # 9>&-: a node must not inherit stack.sh's lock (it would hold it as long as it runs).
  setsid "$@" </dev/null >>"$DIR/logs/$node.log" 2>&1 9>&- &
  echo $! >"$DIR/pids/$node.pid"
}

# kafka-N -> N; clickhouse-sSrR -> its index 1..4, shard S, replica R.
kafka_n() { echo "${1#kafka-}"; }
ch_shard() { local s=${1#clickhouse-s}; echo "${s%%r*}"; }
ch_replica() { echo "${1##*r}"; }
ch_index() { echo $(( 2 * ($(ch_shard "$1") - 1) + $(ch_replica "$1") )); }
ch_http() { echo "1812$(ch_index "$1")"; }

healthy() {
  case $1 in
    zookeeper) [[ $(echo srvr | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT; cat >&3; cat <&3" 2>/dev/null) == *Mode:* ]] ;;
    kafka-*) kcat -b "127.0.0.1:2909$(kafka_n "$1")" -L -m 3 >/dev/null 2>&1 ;;
    clickhouse-*) [[ $(curl -s -m 3 "http://127.0.0.1:$(ch_http "$1")/ping") == "Ok." ]] ;;
  esac
}

start_zookeeper() {
  mkdir -p "$DIR/zookeeper"
  # Debian's jars; four-letter words for the health check only.
  spawn zookeeper java -Xmx128m -cp "/usr/share/java/*" -Dzookeeper.admin.enableServer=false \
    -Dzookeeper.4lw.commands.whitelist=srvr,ruok \
    org.apache.zookeeper.server.ZooKeeperServerMain "$ZK_PORT" "$DIR/zookeeper"
}

start_kafka() {
  local node=$1 n dir voters
  n=$(kafka_n "$node")
  dir=$DIR/$node
  mkdir -p "$dir"
  voters="1@127.0.0.1:29191,2@127.0.0.1:29192,3@127.0.0.1:29193"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:2909$n,CONTROLLER://127.0.0.1:2919$n
advertised.listeners=PLAINTEXT://127.0.0.1:2909$n
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
PROPS
  local cp="$KAFKA_HOME/libs/*"
  local opts=(-Xms128m -Xmx384m -XX:+UseG1GC -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$ROOT/scripts/stack/kafka/log4j2.properties")
  if [[ ! -f $dir/data/meta.properties ]]; then
    # One cluster id for the three: made once, kept beside them.
    [[ -f $DIR/kafka-cluster-id ]] || java -cp "$cp" kafka.tools.StorageTool random-uuid >"$DIR/kafka-cluster-id"
    java "${opts[@]}" -cp "$cp" kafka.tools.StorageTool format -t "$(cat "$DIR/kafka-cluster-id")" \
      -c "$dir/server.properties" >>"$DIR/logs/$node.log" 2>&1 || die "$node: formatting storage failed"
  fi
  spawn "$node" java "${opts[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties"
}

shards_xml() {
  local s r out=""
  for s in 1 2; do
    out+="<shard><internal_replication>true</internal_replication>"
    for r in 1 2; do out+="<replica><host>127.0.0.1</host><port>1910$((2 * (s - 1) + r))</port></replica>"; done
    out+="</shard>"
  done
  echo "$out"
}

start_clickhouse() {
  local node=$1 i dir
  i=$(ch_index "$node")
  dir=$DIR/$node
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  sed -e "s#@DIR@#$dir#g" -e "s#@HTTP@#1812$i#" -e "s#@TCP@#1910$i#" -e "s#@INTERSERVER@#1920$i#" \
    -e "s#@SHARD@#$(ch_shard "$node")#" -e "s#@REPLICA@#$node#" -e "s#@ZK@#$ZK_PORT#" \
    -e "s#@SHARDS@#$(shards_xml)#" "$ROOT/scripts/stack/cluster/clickhouse.xml" >"$dir/config.xml"
  sed -e "s#@PASSWORD_ELEMENT@#<password></password>#" -e "s#@SECURE_PASSWORD_SHA256@#$(printf x | sha256sum | cut -d' ' -f1)#" \
    "$ROOT/scripts/stack/clickhouse/users.xml" >"$dir/users.xml"
  spawn "$node" clickhouse-server --config-file="$dir/config.xml"
}

start_node() {
  local node=$1 t0=$SECONDS
  if running "$node"; then return 0; fi
  case $node in
    zookeeper) start_zookeeper ;;
    kafka-*) start_kafka "$node" ;;
    clickhouse-*) start_clickhouse "$node" ;;
    *) die "unknown node '$node' (one of: ${NODES[*]})" ;;
  esac
}

wait_node() {
  local node=$1 deadline=$((SECONDS + WAIT_SECS))
  until healthy "$node"; do
    running "$node" || { tail -n 20 "$DIR/logs/$node.log" >&2; die "$node exited during start-up"; }
    ((SECONDS < deadline)) || { tail -n 20 "$DIR/logs/$node.log" >&2; die "$node did not answer in ${WAIT_SECS}s"; }
    sleep 0.5
  done
}

stop_node() {
  local node=$1 p
  p=$(pid_of "$node")
  if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
    kill -CONT "$p" 2>/dev/null || true
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$p" 2>/dev/null || true
    log "$node stopped"
  fi
  rm -f "$DIR/pids/$node.pid"
}

status() {
  local node bad=0
  for node in "${NODES[@]}"; do
    if healthy "$node"; then printf '%-17s up\n' "$node"; else printf '%-17s DOWN\n' "$node"; bad=1; fi
  done
  return $bad
}

cmd=${1:-}
case $cmd in
  up)
    [[ -f $KAFKA_HOME/.complete ]] || die "Kafka's jars are missing: run scripts/stack.sh install first"
    [[ -f /usr/share/java/zookeeper.jar ]] || die "ZooKeeper's jars are missing: run scripts/stack.sh install first"
    start_node zookeeper; wait_node zookeeper
    # The three controllers need each other for a quorum: start all, then wait.
    for n in "${KAFKA_NODES[@]}" "${CLICKHOUSE_NODES[@]}"; do start_node "$n"; done
    for n in "${KAFKA_NODES[@]}" "${CLICKHOUSE_NODES[@]}"; do wait_node "$n"; done
    status
    ;;
  down) for ((i = ${#NODES[@]} - 1; i >= 0; i--)); do stop_node "${NODES[$i]}"; done ;;
  status) status ;;
  start) start_node "${2:?node}"; wait_node "$2" ;;
  stop) stop_node "${2:?node}" ;;
  running)
    # Whether any node of the profile runs (stack.sh status and down ask).
    for n in "${NODES[@]}"; do running "$n" && exit 0; done
    exit 1
    ;;
  kill)
    # SIGKILL, as a crash would; returns once the process is gone.
    p=$(pid_of "${2:?node}")
    if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$DIR/pids/$2.pid"
    log "$2 killed"
    ;;
  freeze) kill -STOP "$(pid_of "${2:?node}")"; log "$2 frozen" ;;
  thaw) kill -CONT "$(pid_of "${2:?node}")"; log "$2 thawed" ;;
  *) echo "usage: $0 up|down|status|running|start NODE|stop NODE|kill NODE|freeze NODE|thaw NODE" >&2; exit 2 ;;
esac
