#!/usr/bin/env bash
# Builds the tools of one module under tools/kube/ into OUT_DIR, after
# checking that its go.mod pins the version the caller expects:
#   tools/kube/build.sh kubernetes /opt/kubernetes-1.32.2/bin v1.32.2
# Each module's go.mod names what it builds (its `tool` lines) and pins
# everything; go.sum makes the download verifiable. -trimpath and a fixed
# build date make the output reproducible.
set -euo pipefail

module_dir=$(cd "$(dirname "$0")/$1" && pwd)
out_dir=$2
expected_version=$3
cd "$module_dir"

# The pinned version of the module that holds the commands, from go.mod.
source_module=$(awk '$1 == "//" && $2 == "source:" { print $3 }' go.mod)
source_version=$(go list -m -f '{{.Version}}' "$source_module")
if [[ $source_version != "$expected_version" ]]; then
  echo "tools/kube/$1/go.mod pins $source_module $source_version, expected $expected_version" >&2
  exit 1
fi

ldflags=(-s -w)
case $source_module in
  k8s.io/kubernetes)
    # What `kube-apiserver --version` and kubectl's skew check read; the
    # upstream build sets these from git, which a module download has not.
    minor=${source_version#v1.}
    minor=${minor%%.*}
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=(
        -X "$pkg.gitVersion=$source_version" -X "$pkg.gitMajor=1" -X "$pkg.gitMinor=$minor"
        -X "$pkg.gitTreeState=clean" -X "$pkg.buildDate=1970-01-01T00:00:00Z"
      )
    done
    ;;
  github.com/coredns/coredns)
    # Its version is a constant in coremain; main.go is this folder's own.
    ;;
  *)
    # The CSI sidecars print main.version for --version.
    ldflags+=(-X "main.version=$source_version")
    ;;
esac

# What to build: the go.mod's `tool` lines, or this folder's own main package.
targets=(tool)
[[ -f main.go ]] && targets=(.)
mkdir -p "$out_dir"
CGO_ENABLED=0 go build -trimpath -ldflags="${ldflags[*]}" -o "$out_dir/" "${targets[@]}"
