#!/usr/bin/env bash
# Builds the local control plane and node (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kubelet, kube-proxy, etcd, helm, coredns) from the Go module proxy at the versions pinned in hack/versions.env, cached by version outside
# the repo so a second run costs seconds.
#   build (default)  build whatever is missing from the cache
#   path             print the cached binaries' directories, PATH-style (colon separated)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${PIXCRAWLER_CACHE:-$HOME/.cache/pixcrawler-operator}
BIN=$CACHE/bin
WORK=$CACHE/build
K8S_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
export CGO_ENABLED=0 GOTOOLCHAIN=local

die() { echo "control-plane: $*" >&2; exit 1; }
log() { echo "control-plane: $*" >&2; }

dir_of() { # component -> its versioned cache dir
  case $1 in
    etcd) echo "$BIN/etcd-$ETCD_VERSION" ;;
    helm) echo "$BIN/helm-$HELM_VERSION" ;;
    coredns) echo "$BIN/coredns-$COREDNS_VERSION" ;;
    *) echo "$BIN/$1-$KUBERNETES_VERSION" ;;
  esac
}

all_components() { echo "${K8S_COMPONENTS[@]}" etcd helm coredns; }

missing_components() {
  local c
  for c in $(all_components); do [ -x "$(dir_of "$c")/$c" ] || echo "$c"; done
}

check_go() {
  command -v go >/dev/null 2>&1 || die "Go is not installed (need Go >= $GO_MIN_VERSION: https://go.dev/dl/)"
  local have
  have=$(go env GOVERSION | sed 's/^go//')
  printf '%s\n%s\n' "$GO_MIN_VERSION" "$have" | sort -V -C \
    || die "Go $have is too old (need >= $GO_MIN_VERSION)"
}

check_proxy() {
  local proxy
  command -v curl >/dev/null 2>&1 || die "curl is not installed (needed to check the Go module proxy)"
  proxy=$(go env GOPROXY | cut -d, -f1 | cut -d'|' -f1)
  case $proxy in off | direct | '') die "GOPROXY is '$proxy'; the build needs a Go module proxy (e.g. https://proxy.golang.org)" ;; esac
  curl -fsS --max-time 20 -o /dev/null "$proxy/k8s.io/kubernetes/@v/$KUBERNETES_VERSION.info" \
    || die "cannot reach the Go module proxy $proxy (network?)"
}

# install_bin SRC_DIR COMPONENT: move a built binary into its versioned dir with one rename, so an
# interrupted build never leaves a broken binary where a later run would take it as built.
install_bin() {
  local src=$1 c=$2 final tmp
  final=$(dir_of "$c")
  tmp=$final.tmp.$$
  rm -rf "$tmp" && mkdir -p "$tmp"
  mv "$src/$c" "$tmp/$c"
  rm -rf "$final"
  mv -T "$tmp" "$final"
  log "built $c -> $final/$c"
}

# Writes the wrapper module for k8s.io/kubernetes: its staging modules are replaced by ./staging paths
# in its own go.mod, which a dependent cannot use, so each becomes k8s.io/<m> => k8s.io/<m> v0.<minor>.<patch>.
k8s_wrapper() {
  local dir=$1 mod staging_version
  mod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$mod" ] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
  staging_version=v0.${KUBERNETES_VERSION#v1.}
  mkdir -p "$dir"
  {
    echo "module pixcrawler.local/kubernetes-wrapper"
    echo
    grep -E '^(go|godebug) ' "$mod"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    # only staging modules the release actually requires (sample-* are replaced but never published)
    awk -v v="$staging_version" '
      /^require \(/ {inreq=1; next}
      /^replace \(/ {inrep=1; next}
      /^\)/ {inreq=0; inrep=0; next}
      inreq && $2 == "v0.0.0" {req[$1]=1}
      inrep && $3 ~ /^\.\/staging\// {rep[$1]=1}
      END {for (m in rep) if (m in req) printf "\t%s => %s %s\n", m, m, v}' "$mod" | sort
    echo ")"
  } >"$dir/go.mod"
}

k8s_ldflags() {
  local minor=${KUBERNETES_VERSION#v1.} flags="-s -w" pkg
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # the source default is an unexpanded "$Format:%H$"; empty when the proxy does not name the commit
    flags+=" -X $pkg.gitCommit=${KUBERNETES_COMMIT:-}"
  done
  echo "$flags"
}

build_k8s() {
  local dir=$WORK/kubernetes-$KUBERNETES_VERSION out pkgs=() c
  KUBERNETES_COMMIT=$(release_commit k8s.io/kubernetes "$KUBERNETES_VERSION" || true)
  k8s_wrapper "$dir"
  for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  out=$(mktemp -d "$WORK/out.$$.XXXXXX")
  log "building $* $KUBERNETES_VERSION (cold: about 15 minutes on 2 cores)"
  (cd "$dir" && go get "${pkgs[@]/%/@$KUBERNETES_VERSION}")
  (cd "$dir" && nice -n 10 go build -p 2 -trimpath -ldflags "$(k8s_ldflags)" -o "$out/" "${pkgs[@]}")
  for c in "$@"; do install_bin "$out" "$c"; done
  rm -rf "$out"
}

build_etcd() {
  local dir=$WORK/etcd-$ETCD_VERSION out
  mkdir -p "$dir"
  cat >"$dir/main.go" <<'GO'
// Command etcd is etcd's own main, built from go.etcd.io/etcd/server/v3.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  printf 'module pixcrawler.local/etcd-wrapper\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$dir/go.mod"
  out=$(mktemp -d "$WORK/out.$$.XXXXXX")
  log "building etcd $ETCD_VERSION"
  (cd "$dir" && go mod tidy && nice -n 10 go build -p 2 -trimpath -ldflags "-s -w" -o "$out/etcd" .)
  install_bin "$out" etcd
  rm -rf "$out"
}

# The proxy's .info names the release's commit when it knows it (helm's does; kubernetes' does not).
release_commit() {
  local proxy
  proxy=$(go env GOPROXY | cut -d, -f1 | cut -d'|' -f1)
  curl -fsS --max-time 20 "$proxy/$1/@v/$2.info" | sed -n 's/.*"Hash": *"\([0-9a-f]*\)".*/\1/p'
}

build_helm() {
  local out commit
  commit=$(release_commit helm.sh/helm/v3 "$HELM_VERSION" || true)
  out=$(mktemp -d "$WORK/out.$$.XXXXXX")
  log "building helm $HELM_VERSION"
  GOBIN=$out nice -n 10 go install -p 2 -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/internal/version.gitCommit=$commit" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  install_bin "$out" helm
  rm -rf "$out"
}

build_coredns() {
  local out
  out=$(mktemp -d "$WORK/out.$$.XXXXXX")
  log "building coredns $COREDNS_VERSION"
  GOBIN=$out nice -n 10 go install -p 2 -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$(release_commit github.com/coredns/coredns "$COREDNS_VERSION" || true)" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  install_bin "$out" coredns
  rm -rf "$out"
}

cmd_path() {
  local c dirs=()
  for c in $(all_components); do dirs+=("$(dir_of "$c")"); done
  (IFS=:; echo "${dirs[*]}")
}

cmd_build() {
  local missing k8s=() c
  mapfile -t missing < <(missing_components)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "control-plane: up to date (kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION, coredns $COREDNS_VERSION) in $BIN"
    return
  fi
  check_go
  check_proxy
  mkdir -p "$BIN" "$WORK"
  trap 'rm -rf "$WORK"/out.$$.* "$BIN"/*.tmp.$$' EXIT
  for c in "${missing[@]}"; do
    case $c in etcd | helm | coredns) ;; *) k8s+=("$c") ;; esac
  done
  [[ " ${missing[*]} " == *" etcd "* ]] && build_etcd
  [[ " ${missing[*]} " == *" helm "* ]] && build_helm
  [[ " ${missing[*]} " == *" coredns "* ]] && build_coredns
  [ ${#k8s[@]} -gt 0 ] && build_k8s "${k8s[@]}"
  echo "control-plane: built ${missing[*]} in $BIN"
}

case ${1:-build} in
  build) cmd_build ;;
  path) cmd_path ;;
  *) die "usage: $0 [build|path]" ;;
esac
