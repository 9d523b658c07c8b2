# Multi-stage build: compile with the Rust toolchain, run on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p portcullis-cli

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/portcullis --create-home portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
USER portcullis
WORKDIR /var/lib/portcullis
# The embedded SQLite default keeps its database and generated key-encryption key in
# ./data here: a volume, which Compose keeps when it recreates the container. With plain
# `docker run`, mount a named volume or a directory here (`-v portcullis:/var/lib/portcullis`):
# a new container otherwise gets a new, empty one. With PostgreSQL it stays empty.
VOLUME /var/lib/portcullis
EXPOSE 9090 9091
ENTRYPOINT ["portcullis"]
CMD ["serve"]
