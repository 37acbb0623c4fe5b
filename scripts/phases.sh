# Phase timing shared by the scripts (sourced): `phase NAME CMD...` runs CMD, records how long it took,
# and on failure prints the durations so far and exits with CMD's status; `summary` prints them all.
PHASES=()
T_START=$SECONDS

phase() {
  local name=$1; shift
  local t0=$SECONDS
  printf '\n=== %s\n' "$name"
  if "$@"; then
    PHASES+=("$(printf '%-26s %5ds  ok' "$name" $((SECONDS - t0)))")
  else
    local rc=$?
    PHASES+=("$(printf '%-26s %5ds  FAILED (exit %d)' "$name" $((SECONDS - t0)) "$rc")")
    summary
    exit "$rc"
  fi
}

summary() {
  printf '\n=== phase durations\n'
  printf '%s\n' "${PHASES[@]}"
  printf '%-26s %5ds\n' total $((SECONDS - T_START))
}
