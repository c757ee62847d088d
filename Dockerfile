# zerofs-csi image: one binary (`deno compile`) on Debian with the host tools the node
# agent runs (nbd-client, mkfs/blkid/resize tools, mount, modprobe).
#
# Not built on the development machines: they have no Docker engine, and
# `deno compile` downloads a runtime, which they cannot do. Build it in CI/release:
#   docker build -t ghcr.io/zerofs/zerofs-csi:0.1.0 .

FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY csi/ csi/
COPY zerofs/ zerofs/
COPY blockdev/ blockdev/
# `deno task compile` (deno.json): the binary carries the node permission set (the
# controller needs a subset of it) and the node agent's V8 heap flags.
RUN deno install --frozen --entrypoint main.ts \
  && deno task compile && cp dist/zerofs-csi /zerofs-csi

FROM debian:bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends \
    nbd-client e2fsprogs xfsprogs btrfs-progs util-linux kmod ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /zerofs-csi /usr/local/bin/zerofs-csi
ENTRYPOINT ["/usr/local/bin/zerofs-csi"]
