# syntax=docker/dockerfile:1.7
#
# One Dockerfile for every binary of the workspace. Pick the binary with BIN:
#
#   docker build --build-arg BIN=order-service -t sales-system/order-service .
#   docker build --build-arg BIN=sales-operator -t sales-system/sales-operator .
#
# Stages: cargo-chef computes a recipe of the dependencies (planner), builds them
# once into a layer that only changes with Cargo.lock (cook), then builds the one
# binary. The runtime image is distroless: glibc, OpenSSL's libssl3 and CA
# certificates, no shell, no package manager, running as the unprivileged user 65532.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# librdkafka builds against OpenSSL (TLS and SASL/SCRAM to Kafka). Bookworm's security
# updates replace these versions, so they are taken as the release has them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
# Declared after the cook step: a build argument changes the cache key of every RUN
# after it, and the dependency layer must be shared by all binaries.
ARG BIN
COPY . .
# sqlx's migrate! macros read the migrations at build time; queries are checked by
# the test suite, so no database is needed here.
RUN test -n "${BIN}" || { echo "pass --build-arg BIN=<binary>" >&2; exit 1; } \
    && cargo build --release --locked --bin "${BIN}" \
    && cp "target/release/${BIN}" /usr/local/bin/app

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG BIN
LABEL org.opencontainers.image.source="https://github.com/sales-system/sales-system" \
      org.opencontainers.image.title="${BIN}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /usr/local/bin/app /app
# Blocks over 256 KiB get mappings of their own, returned when freed: with glibc's
# default threshold (it grows to the largest block freed) each thread's arena kept
# argon2's 19 MiB per password hash, 400-590 MiB in the customer service.
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=262144
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/app"]
