#!/usr/bin/env bash
# Builds the images the end-to-end tier runs, with no registry, and imports them into
# a containerd (`ctr -n k8s.io images import`; pods use imagePullPolicy Never or
# IfNotPresent):
#   localhost/pause:local      the sandbox image: pause.c beside this script, static
#   zerofs-csi:dev             Deno plus this repository's sources (no tests) on a
#                              Debian rootfs with the Dockerfile's host tools. Not the
#                              release image: that one is `deno compile`d, which cannot
#                              run here (it downloads a runtime)
#   localhost/zerofs:0.16.2    the pinned ZeroFS binary .ci/install builds, with the
#                              libraries `ldd` names. The tag is the bare release: the
#                              driver reads the ZeroFS release from it
#   localhost/node-driver-registrar-standin:dev
#   localhost/livenessprobe-standin:dev
#                              zerofs-csi:dev's runtime and sources plus a STAND-IN
#                              (tests/e2e/registrar_standin.ts, livenessprobe_standin.ts)
#                              for a sidecar the proxy does not serve, run by a /bin/sh
#                              launcher at the upstream image's binary path
#                              (/csi-node-driver-registrar, /livenessprobe) as entrypoint:
#                              the manifests' exec probe runs that path
#   localhost/minio:<version>  the pinned MinIO (MINIO_BIN) and mc (MC_BIN) .ci/install
#   localhost/mc:<version>     builds, for the dev overlay's in-cluster S3 and bucket Job;
#                              tagged with the pinned Go module version. HOME=/tmp: both
#                              fail without a HOME (they look up ~/.minio, ~/.mc). A
#                              missing binary is skipped with a warning
#   localhost/csi-*:vX.Y.Z     each CSI sidecar .ci/install built (tools/kube), tagged
#                              with the version the binary reports; a missing one is
#                              skipped with a warning
# Each image is rebuilt only when its inputs changed, and imported only when the
# containerd lacks it with those inputs (a label records them). Progress goes to
# stdout; every tool's output goes to a log under the cache directory.
#
# Usage: build.sh [--address SOCKET] [--namespace NS] [--cache DIR]
#   --address    containerd socket to import into; without it only the archives are built
#   --namespace  containerd namespace (default k8s.io, the one the CRI plugin reads)
#   --cache      archives, build storage and logs (default $ZEROFS_CSI_IMAGE_CACHE or
#                /var/cache/zerofs-csi-e2e-images)
# Needs (Debian 12): buildah, mmdebstrap, gcc, libc6-dev, containerd (for ctr), deno;
# go (optional) to check the MinIO and mc binaries' versions.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)

PAUSE_IMAGE=localhost/pause:local
CSI_IMAGE=zerofs-csi:dev
CSI_IMAGE_REF=docker.io/library/zerofs-csi:dev # what containerd and the kubelet call it
ZEROFS_VERSION=0.16.2
ZEROFS_IMAGE=localhost/zerofs:${ZEROFS_VERSION}
ZEROFS_BIN=${ZEROFS_BIN:-/opt/zerofs-${ZEROFS_VERSION}/bin/zerofs}
SIDECARS_DIR=${CSI_SIDECARS_BIN:-/opt/csi-sidecars/bin}
SIDECARS=(csi-provisioner csi-attacher csi-resizer livenessprobe csi-node-driver-registrar)
# The pins of .ci/install (MinIO's also in tests/fixtures/s3.ts), checked against the
# binary's Go build info when `go` is on PATH.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINIO_MODULE=github.com/minio/minio
MINIO_BIN=${MINIO_BIN:-/opt/minio/minio}
MC_VERSION=v0.0.0-20250313080218-cf909e1063a9
MC_MODULE=github.com/minio/mc
MC_BIN=${MC_BIN:-/opt/minio-mc/mc}
DEBIAN_SUITE=bookworm
# minbase = Essential and Priority: required, as in the Dockerfile's bookworm-slim base
# (`mount` is required, not Essential: the apt variant lacks it).
DEBIAN_VARIANT=minbase
# The Dockerfile's runtime packages: what the node agent runs; plus nbdfuse (libnbd-bin)
# and fusermount3 (fuse3) for --attach-mode=userspace, which the e2e node (a kernel
# without NBD) needs and the Dockerfile's node image lacks.
NODE_PACKAGES=(nbd-client e2fsprogs xfsprogs btrfs-progs util-linux kmod ca-certificates libnbd-bin fuse3)
# The driver's files the Dockerfile copies; *_test.ts files are left out.
APP_FILES=(deno.json deno.lock main.ts csi zerofs kube blockdev)
# The Dockerfile's `deno task compile` flags, as a `deno run` entrypoint.
CSI_ENTRYPOINT='["/usr/local/bin/deno","run","--quiet","--cached-only","--config=/app/deno.json","-P=node","--v8-flags=--max-semi-space-size=1,--max-old-space-size=128","/app/main.ts"]'
LABEL=zerofs-csi.e2e/inputs
# Image configs name PATH themselves (a rootfs tarball carries none); the driver finds
# its host tools (/usr/sbin/nbd-client, mkfs.*) through it.
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ADDRESS=""
NAMESPACE=k8s.io
CACHE=${ZEROFS_CSI_IMAGE_CACHE:-/var/cache/zerofs-csi-e2e-images}
while (($# > 0)); do
  case $1 in
  --address) ADDRESS=$2 && shift 2 ;;
  --namespace) NAMESPACE=$2 && shift 2 ;;
  --cache) CACHE=$2 && shift 2 ;;
  *) echo "build.sh: unknown argument $1 (see the header of $0)" >&2 && exit 2 ;;
  esac
done

START=$SECONDS
LOGS=$CACHE/logs
mkdir -p "$CACHE" "$LOGS"
say() { printf '[images %4ds] %s\n' "$((SECONDS - START))" "$*"; }

# The one way this script starts a tool: argv as given, a timeout in seconds, stdout
# kept in RUN_STDOUT, stdout and stderr appended to a log. A failure names argv[0],
# the exit code and the tail of stderr, and stops the script. RUN_OK="0 1" (set for the
# call) names the exit codes that are answers.
RUN_STDOUT=""
run() {
  local seconds=$1
  shift
  local name out err rc=0
  name=$(basename "$1")
  out=$(mktemp "$CACHE/.out.XXXXXX")
  err=$(mktemp "$CACHE/.err.XXXXXX")
  timeout --kill-after=10 "$seconds" "$@" >"$out" 2>"$err" || rc=$?
  RUN_STDOUT=$(<"$out")
  {
    printf '$ %s\n' "$*"
    cat "$out" "$err"
  } >>"$LOGS/$name.log"
  if [[ " ${RUN_OK:-0} " != *" $rc "* ]]; then
    local what="exited with code $rc"
    ((rc == 124 || rc == 137)) && what="timed out after ${seconds}s (exit code $rc)"
    say "ERROR: $1 $what; stderr tail:" >&2
    tail -c 2000 "$err" >&2
    say "full output: $LOGS/$name.log" >&2
    rm -f "$out" "$err"
    exit 1
  fi
  rm -f "$out" "$err"
}

# Tools with their fixed arguments. buildah keeps its storage in the cache directory
# (vfs: nothing is run inside the images, so no overlay mounts are needed).
bah() { run "$1" buildah --root "$CACHE/buildah/root" --runroot "$CACHE/buildah/run" --storage-driver vfs "${@:2}"; }
ctr_() { run "$1" ctr --address "$ADDRESS" --namespace "$NAMESPACE" "${@:2}"; }

# Removes the other tags of KEEP's repository from the build storage: superseded bases
# and runtimes (hundreds of MB each in vfs storage).
prune_other_tags() {
  local keep=$1 ref
  bah 60 images --noheading --format '{{.Name}}:{{.Tag}}' --filter "reference=${keep%%:*}"
  for ref in $RUN_STDOUT; do
    [[ $ref == "$keep" ]] || bah 120 rmi "$ref"
  done
}

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || {
      say "ERROR: $tool is not on PATH (install it: see the header of $0, or run .ci/install)" >&2
      exit 1
    }
  done
}

# sha256 of stdin, hex only.
digest() { sha256sum | cut -d' ' -f1; }
# sha256 over the names and contents of the files under the given paths, relative to
# the current directory (order-independent of the file system).
tree_digest() { find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | digest; }
# Is the archive there, built from these inputs?
archive_current() { [[ -f $1 && -f $1.inputs && $(<"$1.inputs") == "$2" ]]; }
human_size() { numfmt --to=iec --suffix=B "$(stat -c %s "$1")"; }

# One image archive from a buildah working container: config, commit, remove.
# commit_archive CONTAINER ARCHIVE NAME INPUTS [buildah config flags...]
commit_archive() {
  local container=$1 archive=$2 name=$3 inputs=$4
  shift 4
  bah 60 config "$@" --label "$LABEL=$inputs" "$container"
  rm -f "$archive.tmp"
  bah 600 commit --quiet --format docker "$container" "docker-archive:$archive.tmp:$name"
  bah 60 rm "$container"
  mv "$archive.tmp" "$archive"
  printf '%s' "$inputs" >"$archive.inputs"
}

# --- pause ----------------------------------------------------------------------

build_pause() {
  local archive=$CACHE/pause.tar inputs stage
  inputs=$( (cat "$HERE/pause.c" && gcc --version) | digest)
  if archive_current "$archive" "$inputs"; then
    say "pause: archive up to date"
    return
  fi
  local t=$SECONDS
  stage=$CACHE/stage/pause
  rm -rf "$stage" && mkdir -p "$stage"
  run 120 gcc -static -Os -s -o "$stage/pause" "$HERE/pause.c"
  bah 60 from scratch
  local c=$RUN_STDOUT
  bah 60 copy "$c" "$stage/pause" /pause
  commit_archive "$c" "$archive" "$PAUSE_IMAGE" "$inputs" \
    --entrypoint '["/pause"]' --user 65535:65535
  say "pause: built $(human_size "$archive") in $((SECONDS - t)) s"
  rm -rf "$stage"
}

# --- zerofs-csi:dev ---------------------------------------------------------------

# The Debian rootfs (mmdebstrap, from this machine's apt sources), kept as a buildah
# image named after its inputs. Built again only when the suite, the package list
# or the apt sources change; delete the cache directory for newer packages.
NODE_BASE=""
build_node_base() {
  local sources inputs
  sources=$(find /etc/apt/sources.list.d -maxdepth 1 -name '*.sources' | sort | head -n 1)
  [[ -n $sources ]] || sources=/etc/apt/sources.list
  inputs=$( (echo "$DEBIAN_SUITE $DEBIAN_VARIANT ${NODE_PACKAGES[*]}" && cat "$sources") | digest)
  NODE_BASE=localhost/zerofs-csi-e2e-base:${inputs:0:16}
  bah 60 images --quiet --noheading --filter "reference=$NODE_BASE"
  if [[ -n $RUN_STDOUT ]]; then
    say "node rootfs: $NODE_BASE present"
    prune_other_tags "$NODE_BASE"
    return
  fi
  local t=$SECONDS tarball=$CACHE/stage/node-rootfs.tar
  local include
  include=$(
    IFS=,
    echo "${NODE_PACKAGES[*]}"
  )
  mkdir -p "$CACHE/stage"
  rm -f "$tarball"
  say "node rootfs: mmdebstrap $DEBIAN_SUITE ($DEBIAN_VARIANT) with ${NODE_PACKAGES[*]}"
  run 900 mmdebstrap --mode=root --variant="$DEBIAN_VARIANT" --include="$include" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$DEBIAN_SUITE" "$tarball" "$sources"
  bah 60 from scratch
  local c=$RUN_STDOUT
  bah 600 add "$c" "$tarball" /
  bah 600 commit --quiet --format docker "$c" "$NODE_BASE"
  bah 60 rm "$c"
  say "node rootfs: $(human_size "$tarball") in $((SECONDS - t)) s"
  rm -f "$tarball"
  prune_other_tags "$NODE_BASE"
}

# The runtime layer: the deno binary and the npm packages main.ts needs, fetched by
# `deno install --frozen` into a DENO_DIR kept in the cache (only new packages are
# downloaded). Named after the base, the deno binary and the package set.
CSI_RUNTIME=""
build_csi_runtime() {
  local app=$1 deno_dir=$CACHE/deno-dir deno_bin inputs
  deno_bin=$(readlink -f "$(command -v deno)")
  # DENO_DIR must be absolute, and deno reads the config beside main.ts.
  (cd "$app" && export DENO_DIR=$deno_dir && run 900 deno install --frozen --entrypoint main.ts)
  inputs=$( (echo "$NODE_BASE" && sha256sum <"$deno_bin" &&
    cd "$deno_dir" && find npm -mindepth 2 -maxdepth 3 -type d | sort) | digest)
  CSI_RUNTIME=localhost/zerofs-csi-e2e-runtime:${inputs:0:16}
  bah 60 images --quiet --noheading --filter "reference=$CSI_RUNTIME"
  if [[ -n $RUN_STDOUT ]]; then
    say "zerofs-csi runtime: $CSI_RUNTIME present"
    prune_other_tags "$CSI_RUNTIME"
    return
  fi
  local t=$SECONDS
  bah 60 from --pull=never "$NODE_BASE"
  local c=$RUN_STDOUT
  bah 300 copy "$c" "$deno_bin" /usr/local/bin/deno
  bah 600 copy "$c" "$deno_dir/npm" /app/.deno/npm
  bah 600 commit --quiet --format docker "$c" "$CSI_RUNTIME"
  bah 60 rm "$c"
  say "zerofs-csi runtime: deno + npm packages in $((SECONDS - t)) s"
  prune_other_tags "$CSI_RUNTIME"
}

# The repository's driver files, without tests, in a fresh staging directory.
stage_app() {
  local app=$1
  rm -rf "$app" && mkdir -p "$app"
  (cd "$REPO" && cp -r "${APP_FILES[@]}" "$app/")
  find "$app" -name '*_test.ts' -delete
}

# An image of the driver's runtime and sources (staged in $CACHE/stage/app), plus
# EXTRA files (SOURCE:DEST, modes kept), run by ENTRYPOINT. INPUTS says when it is
# current.
build_app_image() { # IMAGE ARCHIVE ENTRYPOINT INPUTS [EXTRA...]
  local image=$1 archive=$2 entrypoint=$3 inputs=$4 app=$CACHE/stage/app
  shift 4
  if archive_current "$archive" "$inputs"; then
    say "$image: archive up to date"
    return
  fi
  local t=$SECONDS
  bah 60 from --pull=never "$CSI_RUNTIME"
  local c=$RUN_STDOUT
  local f
  for f in "${APP_FILES[@]}"; do bah 120 copy "$c" "$app/$f" "/app/$f"; done
  for f in "$@"; do bah 60 copy "$c" "${f%%:*}" "${f#*:}"; done
  commit_archive "$c" "$archive" "$image" "$inputs" \
    --workingdir /app --env PATH="$IMAGE_PATH" --env DENO_DIR=/app/.deno --env DENO_NO_UPDATE_CHECK=1 \
    --entrypoint "$entrypoint"
  say "$image: built $(human_size "$archive") in $((SECONDS - t)) s"
}

build_csi() {
  local app=$CACHE/stage/app inputs
  stage_app "$app"
  build_node_base
  build_csi_runtime "$app"
  inputs=$( (echo "$CSI_RUNTIME $CSI_ENTRYPOINT $IMAGE_PATH" && cd "$app" && tree_digest .) | digest)
  build_app_image "$CSI_IMAGE" "$CACHE/zerofs-csi-dev.tar" "$CSI_ENTRYPOINT" "$inputs"
}

# The STAND-INs: the same runtime and driver sources, plus the stand-in, started by
# a launcher at the upstream image's binary path. The launcher's deno flags are the
# stand-ins' permissions (tests/integration/sidecar_standins_test.ts runs them so).
REGISTRAR_STANDIN_IMAGE=localhost/node-driver-registrar-standin:dev
LIVENESSPROBE_STANDIN_IMAGE=localhost/livenessprobe-standin:dev
STANDIN_DENO_ARGS=(run --quiet --cached-only --config=/app/deno.json --allow-read --allow-write --allow-env --allow-net)
build_standin() { # IMAGE ARCHIVE BINARY FILE
  local image=$1 archive=$2 binary=$3 file=$4 app=$CACHE/stage/app launcher inputs
  launcher=$CACHE/stage/launchers/$binary
  mkdir -p "$(dirname "$launcher")"
  {
    echo '#!/bin/sh'
    echo "# A STAND-IN for $binary: $file (see its header)."
    echo "exec /usr/local/bin/deno ${STANDIN_DENO_ARGS[*]} /app/$file"' "$@"'
  } >"$launcher"
  chmod 0755 "$launcher"
  inputs=$( (echo "$CSI_RUNTIME $IMAGE_PATH" && cat "$launcher" && sha256sum <"$REPO/$file" &&
    cd "$app" && tree_digest .) | digest)
  build_app_image "$image" "$archive" "[\"/$binary\"]" "$inputs" \
    "$REPO/$file:/app/$file" "$launcher:/$binary"
}

build_standins() {
  build_standin "$REGISTRAR_STANDIN_IMAGE" "$CACHE/registrar-standin.tar" \
    csi-node-driver-registrar tests/e2e/registrar_standin.ts
  build_standin "$LIVENESSPROBE_STANDIN_IMAGE" "$CACHE/livenessprobe-standin.tar" \
    livenessprobe tests/e2e/livenessprobe_standin.ts
}

# --- one binary per image: ZeroFS, MinIO, mc, the CSI sidecars ----------------------

# An image FROM scratch holding BINARY at DEST, the libraries `ldd` names (none for a
# static Go binary), the system's trust store (ZeroFS reads it for an https S3
# endpoint) and /tmp (mode 1777). CONFIG: more `buildah config` flags.
# build_binary_image KEY REF BINARY DEST [CONFIG...]
build_binary_image() {
  local key=$1 ref=$2 bin=$3 dest=$4
  shift 4
  local archive=$CACHE/$key.tar inputs stage libs lib
  RUN_OK="0 1" run 30 ldd "$bin" # 1: "not a dynamic executable"
  libs=$(grep -oE '/[^ ]+' <<<"$RUN_STDOUT" || true)
  inputs=$( (echo "$ref $dest $IMAGE_PATH${*:+ $*}" && for f in "$bin" $libs /etc/ssl/certs/ca-certificates.crt; do
    sha256sum <"$f"
  done) | digest)
  if archive_current "$archive" "$inputs"; then
    say "$ref: archive up to date"
    return
  fi
  local t=$SECONDS
  stage=$CACHE/stage/$key
  rm -rf "$stage" && mkdir -p "$stage$(dirname "$dest")" "$stage/etc/ssl/certs" "$stage/tmp"
  chmod 1777 "$stage/tmp"
  cp "$bin" "$stage$dest"
  for lib in $libs; do cp -L --parents "$lib" "$stage/"; done
  cp -L /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/"
  bah 60 from scratch
  local c=$RUN_STDOUT
  bah 300 copy "$c" "$stage/" /
  commit_archive "$c" "$archive" "$ref" "$inputs" \
    --entrypoint "[\"$dest\"]" --env PATH="$IMAGE_PATH" "$@"
  say "$ref: built $(human_size "$archive") in $((SECONDS - t)) s"
  rm -rf "$stage"
}

build_zerofs() {
  [[ -x $ZEROFS_BIN ]] || {
    say "ERROR: $ZEROFS_BIN is missing: .ci/install builds ZeroFS $ZEROFS_VERSION (or set ZEROFS_BIN)" >&2
    exit 1
  }
  build_binary_image "zerofs-$ZEROFS_VERSION" "$ZEROFS_IMAGE" "$ZEROFS_BIN" /usr/local/bin/zerofs
}

# The Go module version in BINARY's build info, or the pin itself without `go`.
module_version() { # BINARY MODULE PIN
  if ! command -v go >/dev/null; then
    say "WARNING: no go on PATH: $1 taken as $2@$3 unchecked" >&2
    printf '%s' "$3"
    return
  fi
  run 30 go version -m "$1"
  awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }' <<<"$RUN_STDOUT"
}

# MinIO and mc as the dev overlay runs them: the entrypoint is the binary (the
# manifest gives only args). Both need a writable HOME for their config directory.
MINIO_IMAGE=localhost/minio:$MINIO_VERSION
MC_IMAGE=localhost/mc:$MC_VERSION
BUILT_S3_IMAGES=()
build_go_tool_image() { # NAME BINARY MODULE VERSION REF
  local name=$1 bin=$2 module=$3 version=$4 ref=$5 found
  if [[ ! -x $bin ]]; then
    say "WARNING: no $bin: image $ref not built (.ci/install builds it)"
    return
  fi
  found=$(module_version "$bin" "$module" "$version")
  if [[ $found != "$version" ]]; then
    say "ERROR: $bin is $module@${found:-unknown}, not the pinned $version (.ci/install)" >&2
    exit 1
  fi
  build_binary_image "$name-$version" "$ref" "$bin" "/usr/bin/$name" --env HOME=/tmp
  BUILT_S3_IMAGES+=("$name-$version=$ref")
}

build_s3_images() {
  build_go_tool_image minio "$MINIO_BIN" "$MINIO_MODULE" "$MINIO_VERSION" "$MINIO_IMAGE"
  build_go_tool_image mc "$MC_BIN" "$MC_MODULE" "$MC_VERSION" "$MC_IMAGE"
}

# Each sidecar .ci/install built (tools/kube) as localhost/NAME:VERSION, the version
# from the binary itself, the binary at /NAME as in the upstream images. A missing
# one is said, not fatal: the proxy serves no livenessprobe or node-driver-registrar.
SIDECAR_REFS=()
build_sidecars() {
  local name bin version
  for name in "${SIDECARS[@]}"; do
    bin=$SIDECARS_DIR/$name
    if [[ ! -x $bin ]]; then
      say "WARNING: no $bin: image localhost/$name not built"
      continue
    fi
    run 30 "$bin" --version
    version=${RUN_STDOUT##* }
    build_binary_image "$name-$version" "localhost/$name:$version" "$bin" "/$name"
    SIDECAR_REFS+=("$name-$version=localhost/$name:$version")
  done
}

# --- import -----------------------------------------------------------------------

# import ARCHIVE REF: into the containerd unless REF is there with the archive's inputs.
import_image() {
  local archive=$1 ref=$2 inputs
  inputs=$(<"$archive.inputs")
  ctr_ 60 images ls "name==$ref"
  if grep -q "$LABEL=$inputs" <<<"$RUN_STDOUT"; then
    say "$ref: already in containerd ($NAMESPACE)"
    return
  fi
  local t=$SECONDS
  ctr_ 900 images import "$archive"
  ctr_ 60 images label "$ref" "$LABEL=$inputs"
  say "$ref: imported in $((SECONDS - t)) s"
}

need buildah mmdebstrap gcc deno ldd timeout
say "cache: $CACHE"
build_pause
build_csi
build_standins
build_zerofs
build_s3_images
build_sidecars
if [[ -n $ADDRESS ]]; then
  need ctr
  import_image "$CACHE/pause.tar" "$PAUSE_IMAGE"
  import_image "$CACHE/zerofs-csi-dev.tar" "$CSI_IMAGE_REF"
  import_image "$CACHE/registrar-standin.tar" "$REGISTRAR_STANDIN_IMAGE"
  import_image "$CACHE/livenessprobe-standin.tar" "$LIVENESSPROBE_STANDIN_IMAGE"
  import_image "$CACHE/zerofs-${ZEROFS_VERSION}.tar" "$ZEROFS_IMAGE"
  for built in "${BUILT_S3_IMAGES[@]}" "${SIDECAR_REFS[@]}"; do
    import_image "$CACHE/${built%%=*}.tar" "${built#*=}"
  done
fi
say "done"
