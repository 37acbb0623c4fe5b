#!/usr/bin/env bash
# Sourced by scripts/stack.sh (not run on its own): installing what the services run, cached under
# $CACHE: Debian's packages, Kafka's jars (Maven Central), MinIO and versitygw (go install), nrt.

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
  log "minio: go install github.com/minio/minio@$MINIO_MODULE_VERSION ($MINIO_TAG; a few minutes, once)"
  local version=${MINIO_TAG#RELEASE.} pkg=github.com/minio/minio/cmd
  version=$(sed -E 's/T([0-9]{2})-([0-9]{2})-([0-9]{2})Z/T\1:\2:\3Z/' <<<"$version")
  GOBIN=$(dirname "$MINIO_BIN") go install -trimpath \
    -ldflags "-s -w -X $pkg.Version=$version -X $pkg.ReleaseTag=$MINIO_TAG -X $pkg.CommitID=$MINIO_COMMIT -X $pkg.ShortCommitID=$MINIO_COMMIT" \
    "github.com/minio/minio@$MINIO_MODULE_VERSION"
}

install_versitygw() {
  [[ -x $VERSITYGW_BIN ]] && return 0
  command -v go >/dev/null || die "versitygw: Go is needed to build versitygw from its module"
  log "versitygw: go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION (a few minutes, once)"
  GOBIN=$(dirname "$VERSITYGW_BIN") go install -trimpath \
    -ldflags "-s -w -X main.Version=$VERSITYGW_VERSION" \
    "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
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
  install_versitygw
  install_nrt
  log "install/verify took $((SECONDS - t0))s"
}
