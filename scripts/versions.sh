# The pinned versions of what the scripts install and build, in one place: sourced by stack.sh (the
# native services) and containers.sh (the images built from the same versions). Kafka's is Maven's, in
# scripts/stack/kafka/pom.xml (read here); ClickHouse and Prometheus are whatever Debian 12 ships
# (18.16.1 and 2.42.0); Rust's for the image is the Dockerfile's.
# shellcheck shell=bash disable=SC2034
_versions_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

MINIO_TAG=RELEASE.2025-09-07T16-13-09Z
MINIO_COMMIT=07c3a429bfed
# The same commit as Go's canonical pseudo-version: a module proxy may refuse to resolve the non-semver
# RELEASE tag (it answers 403 "not available") but serves the canonical form.
MINIO_MODULE_VERSION=v0.0.0-20250907161309-$MINIO_COMMIT
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$_versions_root/scripts/stack/kafka/pom.xml")
# A second S3 implementation, so that what the pipeline asks of S3 is not just what MinIO happens to do.
VERSITYGW_VERSION=v1.8.0
# mc (MinIO's client: minio's healthcheck and the bucket job in the images). The Go module proxy serves
# one version of it here, a commit of 2025-03-13 (compose pins the image RELEASE.2024-11-21, not served
# as a module).
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
RUST_VERSION=$(sed -n 's/^ARG RUST_IMAGE=rust:\(.*\)-slim-bookworm$/\1/p' "$_versions_root/Dockerfile")
unset _versions_root
