#!/usr/bin/env bash
# The main job: the real services, then the pipeline in the foreground.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

scripts/stack.sh up

if ! target/debug/nrt run --help >/dev/null 2>&1; then
  cat <<'MSG'

The stack is up. The pipeline itself (`nrt run --role all` and `nrt mock-api`) is not built yet:
this demo stops here. Meanwhile:
  target/debug/nrt doctor          which services answer
  scripts/stack.sh status          endpoints and versions
  scripts/stack.sh down            stop everything
MSG
  exit 0
fi

cat <<'MSG'

Where to look:
  Prometheus      http://127.0.0.1:9090/targets
  MinIO console   http://127.0.0.1:9001   (credentials: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD in .env)
  ClickHouse      curl 'http://127.0.0.1:8123/?query=SELECT+count()+FROM+analytics.events_raw'
  Admin API       http://127.0.0.1:9180/ready
MSG

target/debug/nrt mock-api --listen 127.0.0.1:8000 &
mock=$!
trap 'kill $mock 2>/dev/null || true' EXIT
trap 'kill $mock 2>/dev/null || true; exit 130' INT TERM
target/debug/nrt run --role all
