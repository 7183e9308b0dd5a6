# Multi-stage build of the three Tally binaries.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system tally
COPY --from=build /src/target/release/command-api /src/target/release/query-api /src/target/release/projector /usr/local/bin/
USER tally
ENV RUST_LOG=info
