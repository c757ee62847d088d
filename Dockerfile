# zerofs-csi images, two targets built from one source tree with `deno compile`:
#
#   controller  the controller binary under deno.json's `controller` permission set (an
#               allowlist) on a minimal Debian, as a fixed non-root user;
#   node        (default) the node binary under the `node` set (all: it reads mountinfo,
#               sysfs and block devices) with the host tools the node agent runs
#               (nbd-client, mkfs/blkid/resize tools, mount, modprobe); it runs as root,
#               privileged, because it attaches NBD devices and mounts.
#
# Not built on the development machines: they have no Docker engine, and
# `deno compile` downloads a runtime, which they cannot do. Build it in CI/release:
#   docker build --target controller -t ghcr.io/zerofs/zerofs-csi-controller:0.1.0 .
#   docker build --target node -t ghcr.io/zerofs/zerofs-csi:0.1.0 .
#
# Base images are referenced by tag: no published digest for these exact tags could be
# found from the development machines (no registry access); pin them as
# `<image>:<tag>@sha256:<digest>` from `docker buildx imagetools inspect <image>:<tag>`
# when releasing.

FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY csi/ csi/
COPY zerofs/ zerofs/
COPY kube/ kube/
COPY blockdev/ blockdev/
# `deno task compile:node` / `compile:controller` (deno.json) hold each binary's
# permission set and runtime flags; the tests run main.ts with exactly those flags.
RUN deno install --frozen --entrypoint main.ts \
  && deno task compile:node && deno task compile:controller \
  && cp dist/zerofs-csi dist/zerofs-csi-controller /

FROM debian:bookworm-slim AS controller
# Only CA certificates: the controller talks to the Kubernetes API and the object store
# and runs no host tools.
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /zerofs-csi-controller /usr/local/bin/zerofs-csi-controller
# The same fixed uid/gid as the Deployment's securityContext (runAsNonRoot needs a
# numeric USER to verify it).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/zerofs-csi-controller"]

FROM debian:bookworm-slim AS node
RUN apt-get update \
  && apt-get install -y --no-install-recommends \
    nbd-client e2fsprogs xfsprogs btrfs-progs util-linux kmod ca-certificates \
    libnbd-bin fuse3 \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /zerofs-csi /usr/local/bin/zerofs-csi
# libnbd-bin (nbdfuse) and fuse3 (fusermount3): --attach-mode=userspace, for nodes
# without the nbd module.
# The node agent attaches NBD devices, formats and mounts: it needs root (and runs
# privileged, see the DaemonSet).
USER 0:0
ENTRYPOINT ["/usr/local/bin/zerofs-csi"]
