#!/usr/bin/env bash
# The project's one test command (README and .ci/run call exactly this): bring the real services up,
# then rustfmt, clippy, every test (unit + integration against those services), a short fuzz run, and
# the container deployment for real (scripts/containers.sh).
#
# Set NRT_KEEP_STACK=1 to leave services running that this script started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

# shellcheck source=scripts/phases.sh
source "$ROOT/scripts/phases.sh"

# Stop afterwards only what this run started; a developer's running stack stays up.
started_here=0
scripts/stack.sh status >/dev/null 2>&1 || started_here=1
images_pid=""
cleanup() {
  # This run found no engine and started the image build (and with it dockerd): both stop with the run,
  # also when a phase failed before the containers phase, which stops them otherwise. After that phase
  # `down` finds nothing left to stop (0.4 s).
  if [[ -n $images_pid ]]; then
    if kill -0 "$images_pid" 2>/dev/null; then
      kill -- "-$images_pid" 2>/dev/null || true
    fi
    scripts/containers.sh down >/dev/null 2>&1 || true
  fi
  # A run that failed before the pydeps phase: pip stops with it (a venv half made is made again).
  if [[ -n ${venv_pid:-} ]]; then kill "$venv_pid" 2>/dev/null || true; fi
  if [[ ${cluster_started:-0} == 1 ]]; then scripts/stack/cluster.sh down >/dev/null 2>&1 || true; fi
  if [[ $started_here == 1 && -z ${NRT_KEEP_STACK:-} ]]; then
    scripts/stack.sh down >/dev/null 2>&1 || true
  fi
}
PHASE_EXIT_HOOKS+=(cleanup)
# The closing `tests: N passed, N failed` line sums these (printed on exit, also when a phase failed);
# a previous run's logs must not count.
PHASE_TESTS_LOGS=(.stack/test-output.log .stack/containers-output.log)
rm -f "${PHASE_TESTS_LOGS[@]}"

# Confluent's Python client, the independent reference the registry tests compare against. Cached in a
# venv, rebuilt only when tests/python/requirements.txt changes. Made in the background from the start:
# on a fresh machine pip waits on the network while the stack phase compiles; the pydeps phase waits
# for it.
VENV=${NRT_CACHE:-$HOME/.cache/nrt}/venv
python_venv() {
  local req=tests/python/requirements.txt
  if [[ ! -x $VENV/bin/python ]] || ! cmp -s "$req" "$VENV/requirements.txt"; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" || { echo "python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2; return 1; }
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$VENV/requirements.txt"
  fi
}
mkdir -p .stack
python_venv >.stack/pydeps.log 2>&1 &
venv_pid=$!
python_deps() {
  local rc=0
  wait "$venv_pid" || rc=$?
  venv_pid=""
  cat .stack/pydeps.log
  ((rc == 0)) || return "$rc"
  export NRT_PYTHON=$VENV/bin/python
  "$NRT_PYTHON" -c 'import confluent_kafka as c; v = c.version(); print("confluent-kafka", v[0] if isinstance(v, tuple) else v)'
}

# A stopped stack is brought up by two callers at once, as `scripts/demo.sh` beside `scripts/test.sh`
# would: stack.sh's lock must make one wait for the other (Kafka's storage formatted by one), and both
# succeed.
stack_up() {
  if [[ $started_here == 0 ]]; then scripts/stack.sh up; return; fi
  mkdir -p .stack
  scripts/stack.sh up >.stack/stack-up-second.log 2>&1 &
  local second=$! rc=0 waited
  scripts/stack.sh up 2>&1 | tee .stack/stack-up-first.log || rc=$?
  wait "$second" || { echo "the second, concurrent stack.sh up failed:"; cat .stack/stack-up-second.log; return 1; }
  ((rc == 0)) || return "$rc"
  waited=$(cat .stack/stack-up-first.log .stack/stack-up-second.log | grep -c 'waiting for it' || true)
  [[ $waited == 1 ]] || { echo "expected exactly one stack.sh up to wait for the other, $waited did"; return 1; }
  echo "two concurrent stack.sh up: one waited for the other, both succeeded"
}
phase stack stack_up
# The container images (~10 min of CPU on a fresh machine, seconds when cached) build in the background
# while the phases below run: in a dockerd started at the lowest CPU priority, so the tests' own
# processes come first. Only when no engine runs yet (one already running keeps its priority: then the
# containers phase builds them).
if ! /usr/bin/docker info >/dev/null 2>&1; then
  setsid nice -n 19 scripts/containers.sh images >.stack/containers-images.log 2>&1 &
  images_pid=$!
fi
phase pydeps python_deps
# Debian's chromium, headless: tests/it/status_page.rs looks at the status pages in a real browser.
browser() {
  if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  export NRT_CHROMIUM=/usr/bin/chromium
  "$NRT_CHROMIUM" --version
}
phase browser browser
phase fmt cargo fmt --check
# --all-targets leaves out test targets marked `test = false` (the container phase's): named as well.
lint() {
  cargo clippy --all-targets --all-features -- -D warnings
  cargo clippy --all-features --test containers -- -D warnings
}
phase clippy lint
# The unit tests, then the integration tests (one binary, tests/it/): a module at a time, because some
# stop shared services while their tests run; each module's own tests run in parallel. Every module
# runs even after one failed (as `--no-fail-fast`), the failed ones are named at the end. --show-output:
# the fault and end-to-end tests print their figures (counts, rates) into the CI log.
run_tests() {
  mkdir -p .stack
  : >.stack/test-output.log
  cargo test --features integration --lib --bins -- --show-output 2>&1 | tee -a .stack/test-output.log
  local names module t0 failed=()
  names=$(cargo test --features integration --test it -- --list --format terse | sed -n 's/: test$//p')
  # `cluster` needs the cluster profile: its own phase below.
  for module in $(cut -d: -f1 <<<"$names" | sort -u | grep -vx cluster); do
    t0=$SECONDS
    # --exact with each test's full name: a filter alone is a substring (`faults::` would also select
    # `poller_faults::…`).
    # shellcheck disable=SC2046
    cargo test --features integration --test it -- --show-output --exact $(grep "^$module::" <<<"$names") \
      2>&1 | tee -a .stack/test-output.log || failed+=("$module")
    echo "module $module: $((SECONDS - t0)) s"
  done
  if ((${#failed[@]})); then
    echo "failed modules: ${failed[*]}"
    return 1
  fi
}
phase test run_tests
# The pipeline on the cluster profile (three Kafka nodes, ClickHouse 2 shards x 2 replicas on ZooKeeper)
# with their faults (tests/it/cluster.rs): the profile runs for this phase only.
cluster_started=0
run_cluster_tests() {
  local rc=0 names
  cluster_started=1
  scripts/stack/cluster.sh up
  names=$(cargo test --features integration --test it -- --list --format terse | sed -n 's/: test$//p' | grep '^cluster::')
  # shellcheck disable=SC2046
  cargo test --features integration --test it -- --show-output --exact $names 2>&1 | tee -a .stack/test-output.log || rc=$?
  scripts/stack/cluster.sh down
  cluster_started=0
  return $rc
}
phase cluster run_cluster_tests
# cargo-fuzz on the wire decoder (our schemas, any schema) and the events parser (45 s each; scripts/fuzz.sh
# says how, on stable).
phase fuzz scripts/fuzz.sh "${NRT_FUZZ_SECONDS:-45}"
# The container deployment for real: engine, images (the Dockerfile unchanged), the compose stack with
# local stand-ins, end to end (tests/containers.rs). Its own phases print beneath it.
run_containers() {
  if [[ -n $images_pid ]]; then
    local t0=$SECONDS rc=0
    wait "$images_pid" || rc=$?
    echo "images built in the background (log: .stack/containers-images.log); waited $((SECONDS - t0)) s for them:"
    cat .stack/containers-images.log
    ((rc == 0)) || return "$rc"
  fi
  scripts/containers.sh 2>&1 | tee .stack/containers-output.log
}
phase containers run_containers
summary
