# syntax=docker/dockerfile:1
# Multi-stage build of the `volcanion` binary; the runtime image runs it as a non-root user.
# CI proves the build stage without Docker: scripts/docker-build-check.sh copies exactly what
# the COPY lines below name into an empty directory and compiles there.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Cargo.toml declares the test and bench targets, so their files must be present for the
# manifest to load, even though only the binary is built.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY config config
# The dashboard's page and chart library, compiled into the binary (include_bytes!).
COPY assets assets
COPY cql cql
COPY tests tests
COPY benches benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin volcanion \
    && cp target/release/volcanion /usr/local/bin/volcanion

FROM debian:bookworm-slim
# The data directory exists in the image, owned by the service's user, so a named volume
# mounted there starts with that owner and is writable without running as root.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/volcanion --create-home volcanion \
    && mkdir -p /var/lib/volcanion/data \
    && chown -R volcanion:volcanion /var/lib/volcanion
COPY --from=build /usr/local/bin/volcanion /usr/local/bin/volcanion
USER volcanion
WORKDIR /var/lib/volcanion
ENV VOLCANION_LISTEN=0.0.0.0:8080 \
    VOLCANION_DATA_DIR=/var/lib/volcanion/data
VOLUME /var/lib/volcanion/data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["volcanion"]
CMD ["serve"]
