# One image for every role and subcommand of nrt (run --role producer|consumer|all, mock-api, registry).
# Built with the same cargo features as the tests (the defaults); --release compiles out the test-only
# crash hook of the admin API.

FROM rust:1.95.0-slim-bookworm AS build
# librdkafka is built from source by rdkafka-sys (see README, "Why bundled librdkafka").
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake make g++ perl pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
# Declared in Cargo.toml: cargo refuses a manifest whose bench target is missing.
COPY benches ./benches
COPY schemas ./schemas
RUN cargo build --release --locked --bin nrt

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin nrt
COPY --from=build /src/target/release/nrt /usr/local/bin/nrt
COPY schemas /usr/share/nrt/schemas
USER 10001
ENV NRT_ADMIN_ADDR=0.0.0.0:9180
EXPOSE 9180
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:9180/health"]
ENTRYPOINT ["nrt"]
CMD ["run", "--role", "all"]
