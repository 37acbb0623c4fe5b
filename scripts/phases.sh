# Phase timing shared by the scripts (sourced). `phase NAME CMD...` runs CMD and records how long it
# took; `summary` prints the durations. A script that sources this must run with `set -euo pipefail`.
#
# CMD runs with errexit in force, so the first failing command inside it (and inside every function it
# calls) ends the script with that command's status. That is why CMD is not run inside `if`: bash turns
# errexit off in every function called from an `if`, `&&`, `||` or `!`, and a phase's first failure
# would then be masked by whatever its last command returned. For the same reason `phase` refuses to run
# in such a context itself. When a phase fails, the exit handler records it, prints the durations and,
# when the script named test logs in PHASE_TESTS_LOGS, the closing `tests: N passed, N failed` line.
#
# A script with work of its own to do on exit adds a function to PHASE_EXIT_HOOKS instead of calling
# `trap ... EXIT` (which would replace this one); hooks run after the summary, in order.

shopt -s inherit_errexit
PHASES=()
T_START=$SECONDS
PHASE_CURRENT=""
PHASE_T0=0
PHASE_FAILED=""
PHASE_EXIT_HOOKS=()
PHASE_TESTS_LOGS=()

phase() {
  local probe
  # Whether errexit is really in force here: a subshell that turns it on stops at `false` unless the
  # caller's context (an `if`, `&&`, `||`, `!`) ignores errexit, subshells included.
  set +e
  probe=$(set -e; false; echo reached)
  set -e
  if [[ $probe == reached ]]; then
    echo "phase $1: called inside an if, &&, || or !: its failures would pass unnoticed; call it plainly" >&2
    exit 2
  fi
  PHASE_CURRENT=$1
  shift
  PHASE_T0=$SECONDS
  printf '\n=== %s\n' "$PHASE_CURRENT"
  "$@"
  PHASES+=("$(printf '%-26s %5ds  ok' "$PHASE_CURRENT" $((SECONDS - PHASE_T0)))")
  PHASE_CURRENT=""
}

summary() {
  printf '\n=== phase durations\n'
  if ((${#PHASES[@]})); then
    printf '%s\n' "${PHASES[@]}"
  fi
  printf '%-26s %5ds\n' total $((SECONDS - T_START))
}

# The closing line: every `test result:` line of the logs named in PHASE_TESTS_LOGS, summed; the
# failed phase too, so a run that never reached its tests cannot read as a clean one.
tests_line() {
  local logs=() f
  for f in "${PHASE_TESTS_LOGS[@]}"; do
    [[ -f $f ]] && logs+=("$f")
  done
  local line
  line=$(awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed", p, f }' \
    "${logs[@]}" /dev/null)
  if [[ -n $PHASE_FAILED ]]; then
    line+="; phase $PHASE_FAILED failed"
  fi
  echo "$line"
}

phases_on_exit() {
  local rc=$?
  set +e
  if [[ -n $PHASE_CURRENT ]]; then
    PHASE_FAILED=$PHASE_CURRENT
    PHASES+=("$(printf '%-26s %5ds  FAILED (exit %d)' "$PHASE_CURRENT" $((SECONDS - PHASE_T0)) "$rc")")
    PHASE_CURRENT=""
    summary
  fi
  if ((${#PHASE_TESTS_LOGS[@]})); then
    tests_line
  fi
  local hook
  for hook in "${PHASE_EXIT_HOOKS[@]}"; do
    "$hook"
  done
  exit "$rc"
}
trap phases_on_exit EXIT
