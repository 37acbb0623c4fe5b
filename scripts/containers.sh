#!/usr/bin/env bash
# The container deployment, proven on this machine: the engine, base images made locally (no registry is
# reachable), the project's image from the unchanged Dockerfile, local stand-ins for the third-party
# images, then tests/containers.rs against docker-compose.yml + compose/standins.yml.
#
#   scripts/containers.sh          everything above; stops what it started (the phase scripts/test.sh runs)
#   scripts/containers.sh images   the engine and every image (cached: a second run takes seconds)
#   scripts/containers.sh standins the third-party stand-ins only
#   scripts/containers.sh up|down  the compose stack with the stand-ins, for a person to look at (`down`
#                                  also stops a dockerd this script started)
#
# NRT_BUILD_EXTRA_CA: a PEM file of CAs cargo must trust inside the build (a TLS-intercepting proxy).
# Default: the CAs this machine added to its trust store (/usr/local/share/ca-certificates/*.crt), which
# is where such a proxy's CA is installed; none there, no extra CA.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
# shellcheck source=scripts/phases.sh
source "$ROOT/scripts/phases.sh"
cd "$ROOT"

CACHE=${NRT_CACHE:-$HOME/.cache/nrt}
WORK=${NRT_STACK_DIR:-$ROOT/.stack}/containers
# Debian's client: a static docker CLI earlier on the PATH may want a buildx plugin this machine lacks.
DOCKER=/usr/bin/docker
export DOCKER_BUILDKIT=1
PROJECT=nrt-ct
EXTRA_CA=${NRT_BUILD_EXTRA_CA:-}

MIRROR=http://deb.debian.org/debian
SUITE=bookworm
# The versions the stand-ins are built from: the native stack's (scripts/versions.sh).
# shellcheck source=scripts/versions.sh
source "$ROOT/scripts/versions.sh"
NRT_IMAGE=$(sed -n 's/^ *image: \(nrt-pipeline:.*\)/\1/p' docker-compose.yml | head -n1)

DEBIAN_IMAGE=nrt-local/debian:$SUITE-slim
RUST_IMAGE=nrt-local/rust:$RUST_VERSION-slim-$SUITE

log() { printf '[containers] %s\n' "$*" >&2; }
die() { printf '[containers] ERROR: %s\n' "$*" >&2; exit 1; }

# --- engine --------------------------------------------------------------------------------------
# A dockerd this script started is stopped by `down` and at the end of a full run, whichever process
# of this script started it (scripts/test.sh builds the images in one and tests in another).
STARTED=$WORK/dockerd.started

ensure_engine() {
  local missing=() p
  for p in docker.io debootstrap docker-compose; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "apt: installing ${missing[*]}"
    # No init system starts dockerd for us, and none should start services during the install.
    local policy=/usr/sbin/policy-rc.d made=0
    if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made=1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    ((made)) && rm -f $policy
  fi
  if ! $DOCKER info >/dev/null 2>&1; then
    log "starting dockerd"
    mkdir -p "$WORK"
    setsid dockerd >"$WORK/dockerd.log" 2>&1 </dev/null &
    echo $! >"$STARTED"
    local deadline=$((SECONDS + 60))
    until $DOCKER info >/dev/null 2>&1; do
      ((SECONDS < deadline)) || { tail -n 20 "$WORK/dockerd.log" >&2; die "dockerd did not start (log: $WORK/dockerd.log)"; }
      sleep 0.5
    done
  fi
  log "engine: $($DOCKER info -f 'dockerd {{.ServerVersion}}, {{.Driver}}')"
}

stop_engine() {
  [[ -f $STARTED ]] || return 0
  local pid
  pid=$(cat "$STARTED")
  rm -f "$STARTED"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || { log "stopped dockerd"; return 0; }; sleep 0.5; done
  log "dockerd did not stop within 30 s"
}

# --- images --------------------------------------------------------------------------------------
label_of() { $DOCKER image inspect -f "{{index .Config.Labels \"nrt.inputs\"}}" "$1" 2>/dev/null || true; }
digest() { sha256sum | cut -c1-16; }

# debian:bookworm-slim's equivalent: debootstrap's minbase, with the slim image's path excludes.
debian_image() {
  local key
  key=$( { echo "$SUITE $MIRROR minbase"; declare -f debian_image; } | digest)
  [[ $(label_of "$DEBIAN_IMAGE") == "$key" ]] && return 0
  local root=$WORK/rootfs
  rm -rf "$root"
  log "$DEBIAN_IMAGE: debootstrap --variant=minbase $SUITE (once)"
  debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/{man,info,locale}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
  tar -C "$root" -c . | $DOCKER import --change 'CMD ["bash"]' --change "LABEL nrt.inputs=$key" - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$root"
}

# rust:X-slim-bookworm's equivalent: that base + this machine's toolchain of the same version (rustup
# cannot download one here).
rust_image() {
  local sysroot have
  sysroot=$(rustc --print sysroot)
  have=$(rustc -V | awk '{print $2}')
  [[ $have == "$RUST_VERSION" ]] || die "the Dockerfile builds with Rust $RUST_VERSION, this machine has $have: the local rust image needs the same version"
  build_standin rust "$RUST_IMAGE" "$sysroot"
}

# One stand-in: compose/standins/NAME/Dockerfile, built on the local Debian base with CONTEXT
# (default: the Dockerfile's directory). BuildKit's cache makes an unchanged rebuild take seconds.
build_standin() {
  local name=$1 tag=$2 context=${3:-compose/standins/$1}
  log "$tag"
  $DOCKER build -q -f "compose/standins/$name/Dockerfile" --build-arg "BASE=$DEBIAN_IMAGE" \
    -t "$tag" "$context" >"$WORK/build-$name.log" 2>&1 \
    || { tail -n 30 "$WORK/build-$name.log" >&2; die "building $tag failed (log: $WORK/build-$name.log)"; }
}

# The native stack's installs are the stand-ins' software; mc is built like minio (scripts/stack.sh).
standin_inputs() {
  scripts/stack.sh install >/dev/null
  local mc=$CACHE/mc-$MC_VERSION/mc
  if [[ ! -x $mc ]]; then
    log "mc: go install github.com/minio/mc@$MC_VERSION (once)"
    CGO_ENABLED=0 GOBIN=$(dirname "$mc") go install -trimpath -ldflags "-s -w" "github.com/minio/mc@$MC_VERSION"
  fi
  local ctx=$WORK/context
  mkdir -p "$ctx/kafka" "$ctx/minio"
  rm -rf "$ctx/kafka/libs"
  cp -al "$CACHE/kafka-$KAFKA_VERSION/libs" "$ctx/kafka/libs" 2>/dev/null || cp -a "$CACHE/kafka-$KAFKA_VERSION/libs" "$ctx/kafka/libs"
  cp compose/standins/kafka/* scripts/stack/kafka/log4j2.properties "$ctx/kafka/"
  cp "$CACHE/minio-$MINIO_TAG/minio" "$mc" compose/standins/minio/Dockerfile "$ctx/minio/"
}

# The extra CA for the build: NRT_BUILD_EXTRA_CA, or what this machine added to its trust store.
extra_ca() {
  if [[ -z $EXTRA_CA ]] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    EXTRA_CA=$WORK/extra-ca.pem
    cat /usr/local/share/ca-certificates/*.crt >"$EXTRA_CA"
  fi
  echo "$EXTRA_CA"
}

project_image() {
  log "$NRT_IMAGE: the Dockerfile, unchanged (base images by build argument)"
  extra_ca >/dev/null
  local secret=()
  [[ -s $EXTRA_CA ]] && secret=(--secret "id=extra_ca,src=$EXTRA_CA")
  $DOCKER build --progress=plain "${secret[@]}" \
    --build-arg "RUST_IMAGE=$RUST_IMAGE" --build-arg "RUNTIME_IMAGE=$DEBIAN_IMAGE" \
    -t "$NRT_IMAGE" . >"$WORK/build-nrt.log" 2>&1 \
    || { tail -n 40 "$WORK/build-nrt.log" >&2; die "building $NRT_IMAGE failed (log: $WORK/build-nrt.log)"; }
  log "$NRT_IMAGE: $($DOCKER image inspect -f '{{.Size}}' "$NRT_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
}

standin_images() {
  mkdir -p "$WORK"
  debian_image
  standin_inputs
  build_standin kafka "nrt-local/kafka:$KAFKA_VERSION" "$WORK/context/kafka"
  build_standin minio "nrt-local/minio:$MINIO_TAG" "$WORK/context/minio"
  build_standin clickhouse nrt-local/clickhouse:18.16
  build_standin prometheus nrt-local/prometheus:2.42
}

# --- the compose stack ---------------------------------------------------------------------------
# Fresh secrets for this stack (never the example's): compose reads them from this env file.
compose_env() {
  local env=$WORK/compose.env
  if [[ ! -f $env ]]; then
    umask 077
    {
      echo "MINIO_ROOT_USER=nrt-$(openssl rand -hex 4)"
      echo "MINIO_ROOT_PASSWORD=$(openssl rand -hex 20)"
      echo "CLICKHOUSE_PASSWORD=$(openssl rand -hex 20)"
      echo "GRAFANA_ADMIN_PASSWORD=$(openssl rand -hex 20)"
    } >"$env"
  fi
  echo "$env"
}

# The files docker-compose reads (COMPOSE_FILE, also for tests/containers.rs). Compose asks an open-files
# limit of 262144 for ClickHouse; a container cannot have more than dockerd itself, and a dockerd started
# from a shell whose hard limit is lower (20000 here, without CAP_SYS_RESOURCE to raise it) gets that
# shell's: then a third file lowers ClickHouse's limit to dockerd's, and says so.
compose_files() {
  local files=$ROOT/docker-compose.yml:$ROOT/compose/standins.yml pid hard
  pid=$(pgrep -xo dockerd || true)
  hard=$(awk '/Max open files/ {print $5}' "/proc/${pid:-0}/limits" 2>/dev/null || true)
  if [[ $hard =~ ^[0-9]+$ ]] && ((hard < 262144)); then
    printf 'services:\n  clickhouse:\n    ulimits:\n      nofile: {soft: %d, hard: %d}\n' "$hard" "$hard" >"$WORK/nofile.yml"
    files+=:$WORK/nofile.yml
    log "ClickHouse's open-files limit: $hard (dockerd's own hard limit here), not compose's 262144"
  fi
  export COMPOSE_FILE=$files COMPOSE_PROJECT_NAME=$PROJECT
}

compose() {
  docker-compose --env-file "$(compose_env)" "$@"
}

# tests/containers.rs, pointed at the compose stack's published ports and secrets.
checks() {
  local env
  env=$(compose_env)
  (
    set -a
    # shellcheck disable=SC1090
    source "$env"
    set +a
    export NRT_COMPOSE_ENV=$env NRT_RUST_IMAGE=$RUST_IMAGE NRT_RUNTIME_IMAGE=$DEBIAN_IMAGE \
      NRT_S3_ENDPOINT=http://127.0.0.1:19000 NRT_S3_ACCESS_KEY=$MINIO_ROOT_USER NRT_S3_SECRET_KEY=$MINIO_ROOT_PASSWORD \
      NRT_S3_BUCKET=raw-events NRT_CLICKHOUSE_URL=http://127.0.0.1:18123 NRT_CLICKHOUSE_USER=nrt \
      NRT_CLICKHOUSE_PASSWORD=$CLICKHOUSE_PASSWORD NRT_CLICKHOUSE_DATABASE=analytics \
      NRT_SCHEMA_REGISTRY_URL=http://127.0.0.1:18081 NRT_PROMETHEUS_URL=http://127.0.0.1:19090
    cargo test --features integration --test containers -- --test-threads=1 --show-output
  )
}

teardown() {
  compose_files >/dev/null 2>&1 || true
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  stop_engine
}

timed() {
  local t0=$SECONDS
  "$@"
  log "$* took $((SECONDS - t0)) s"
}

images() {
  mkdir -p "$WORK"
  timed debian_image
  timed rust_image
  timed project_image
  timed standin_images
}

case ${1:-all} in
  all)
    PHASE_EXIT_HOOKS+=(teardown)
    phase engine ensure_engine
    phase images images
    compose_files
    phase checks checks
    summary
    ;;
  images) ensure_engine; images ;;
  standins) ensure_engine; standin_images ;;
  up) ensure_engine; compose_files; compose up -d --no-build "${@:2}" ;;
  down) teardown ;;
  *) die "usage: scripts/containers.sh [all|images|standins|up|down]" ;;
esac
