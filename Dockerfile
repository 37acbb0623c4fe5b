# One image for every role and subcommand of nrt (run --role producer|consumer|all, mock-api, registry).
# Built with the same cargo features as the tests (the defaults); --release compiles out the test-only
# crash hook of the admin API. Needs BuildKit (DOCKER_BUILDKIT=1 with Docker 20.10; the default since 23).
#
# Base images: the official ones by default. A machine that cannot pull them may name its own builds of
# the same releases (scripts/containers.sh does: --build-arg RUST_IMAGE=… --build-arg RUNTIME_IMAGE=…).
#
# Behind a TLS-intercepting proxy, cargo needs the proxy's CA to download crates: pass it as a build
# secret, `--secret id=extra_ca,src=/path/to/ca.pem`. It is used by the build stage only and is never
# stored in a layer. The runtime image trusts it only when asked with its SHA-256:
# `--build-arg TRUST_EXTRA_CA=$(sha256sum ca.pem | cut -d' ' -f1)`. A secret's content is not part of the
# build cache's key; the fingerprint is, so a changed CA is never left stale in a cached layer, and a
# secret that does not match it fails the build.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# librdkafka is built from source by rdkafka-sys (see docs/deployment.md, "Why bundled librdkafka"), with
# the system's OpenSSL for SASL_SSL and SCRAM.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates cmake make g++ perl pkg-config zlib1g-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
# Declared in Cargo.toml: cargo refuses a manifest whose bench target is missing.
COPY benches ./benches
COPY schemas ./schemas
# The crate registry and target/ live in BuildKit cache mounts, so a rebuild after a source change
# compiles the project only, not its ~400 dependencies again. The binary is copied out of the cache.
RUN --mount=type=secret,id=extra_ca \
    --mount=type=cache,id=nrt-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=nrt-target,target=/src/target \
    if [ -s /run/secrets/extra_ca ]; then \
        cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra_ca > /tmp/ca.pem \
        && export CARGO_HTTP_CAINFO=/tmp/ca.pem; \
    fi \
    && cargo build --release --locked --bin nrt \
    && cp target/release/nrt /usr/local/bin/nrt

FROM ${RUNTIME_IMAGE}
ARG TRUST_EXTRA_CA=no
RUN --mount=type=secret,id=extra_ca \
    apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && if [ "$TRUST_EXTRA_CA" != no ]; then \
        printf '%s  /run/secrets/extra_ca\n' "$TRUST_EXTRA_CA" > /tmp/extra_ca.sha256 \
        && sha256sum -c /tmp/extra_ca.sha256 && rm /tmp/extra_ca.sha256 \
        && cp /run/secrets/extra_ca /usr/local/share/ca-certificates/extra-ca.crt && update-ca-certificates; \
    fi \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin nrt \
    && mkdir -p /var/lib/nrt && chown 10001 /var/lib/nrt
COPY --from=build /usr/local/bin/nrt /usr/local/bin/nrt
COPY schemas /usr/share/nrt/schemas
USER 10001
ENV NRT_ADMIN_ADDR=0.0.0.0:9180
EXPOSE 9180
# Exec form: no shell at run time. Nothing is written to the root filesystem (read_only: true works);
# /var/lib/nrt is for state that must persist (the registry's data, replay checkpoints): mount a volume.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:9180/health"]
ENTRYPOINT ["nrt"]
CMD ["run", "--role", "all"]
