#!/usr/bin/env bash
# Builds the images the local node runs, without Docker or a registry, cached by the content of their
# inputs under $PIXCRAWLER_CACHE/images/<name>-<hash>.tar (docker-archive, loadable with `ctr images import`):
#   base      Debian bookworm minbase + python3, venv, ca-certificates (mmdebstrap), the Dockerfiles' FROM
#   pause     the pod sandbox: a static C program (hack/node/pause.c)
#   worker    Dockerfile.worker, built by buildah with PYTHON_IMAGE=<base>
#   operator  Dockerfile.operator, likewise
# Commands:
#   build (default)  build whatever is missing; prints nothing else when everything is cached
#   refs             print NAME_IMAGE=<ref> and NAME_ARCHIVE=<path> lines for the current inputs
# The machine's CA bundle is mounted into RUN steps (pip verifies TLS with it), never copied into an image.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PIXCRAWLER_CACHE:-$HOME/.cache/pixcrawler-operator}
IMAGES=$CACHE/images
STORE=$CACHE/containers
CA_BUNDLE=${PIXCRAWLER_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
BASE_SOURCES=(
  "deb http://deb.debian.org/debian $SUITE main"
  "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main"
)
# bump when the way an image is made changes (its inputs alone would not show it)
RECIPE=1

die() { echo "node-images: $*" >&2; exit 1; }
log() { echo "node-images: $*" >&2; }

buildah_() { buildah --root "$STORE/storage" --runroot "$STORE/run" --storage-driver overlay "$@"; }

short_hash() { sha256sum | cut -c1-16; }

# The files a Dockerfile's build context gives it (what .dockerignore lets through), each with its hash.
context_digest() {
  (cd "$ROOT" && find pyproject.toml README.md chunk_worker operator -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

base_hash() { printf '%s\n' "$RECIPE" "$SUITE" "$BASE_PACKAGES" "${BASE_SOURCES[@]}" | short_hash; }
pause_hash() { { echo "$RECIPE"; cat "$ROOT/hack/node/pause.c"; } | short_hash; }
project_hash() { # dockerfile
  { echo "$RECIPE"; base_ref; cat "$ROOT/$1"; context_digest; } | short_hash
}

base_ref() { echo "localhost/pixcrawler-base:$(base_hash)"; }
pause_ref() { echo "localhost/pixcrawler-pause:$(pause_hash)"; }
worker_ref() { echo "localhost/pixcrawler-worker:$(project_hash Dockerfile.worker)"; }
operator_ref() { echo "localhost/pixcrawler-operator:$(project_hash Dockerfile.operator)"; }

archive_of() { # ref -> cached archive path
  local ref=$1 name
  name=${ref#localhost/}
  echo "$IMAGES/${name/:/-}.tar"
}

# save REF: write buildah's image REF to its cached archive with one rename (no half-written archive).
save() {
  local ref=$1 final tmp
  final=$(archive_of "$ref")
  tmp=$final.tmp.$$
  rm -f "$tmp"
  buildah_ push --quiet "$ref" "docker-archive:$tmp:$ref" >/dev/null
  mv "$tmp" "$final"
  # keep the three newest archives of this image (other work trees may use an older one)
  local repo=${ref#localhost/}
  find "$IMAGES" -maxdepth 1 -name "${repo%%:*}-*.tar" -printf '%T@ %p\n' | sort -rn | tail -n +4 \
    | cut -d' ' -f2- | xargs -r rm -f
}

# ensure_in_store REF: the base must be in buildah's storage for FROM; reload it from its archive if not.
ensure_in_store() {
  local ref=$1
  buildah_ inspect --type image "$ref" >/dev/null 2>&1 && return
  buildah_ pull --quiet "docker-archive:$(archive_of "$ref")" >/dev/null
  buildah_ tag "$(buildah_ images --quiet --filter "reference=$ref" | head -1)" "$ref" 2>/dev/null || true
}

build_base() {
  local ref=$1 work ctr
  work=$(mktemp -d "$IMAGES/base.$$.XXXXXX")
  log "building $ref (mmdebstrap $SUITE minbase + $BASE_PACKAGES; about a minute)"
  mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" --format=tar \
    --aptopt='Acquire::Retries "3"' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$SUITE" "$work/rootfs.tar" "${BASE_SOURCES[@]}"
  ctr=$(buildah_ from scratch)
  buildah_ add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 --label org.opencontainers.image.title=pixcrawler-base "$ctr"
  buildah_ commit --quiet --rm "$ctr" "$ref" >/dev/null
  rm -rf "$work"
  save "$ref"
}

build_pause() {
  local ref=$1 work ctr
  work=$(mktemp -d "$IMAGES/pause.$$.XXXXXX")
  log "building $ref"
  gcc -static -Os -s -o "$work/pause" "$ROOT/hack/node/pause.c"
  ctr=$(buildah_ from scratch)
  buildah_ copy --quiet "$ctr" "$work/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  buildah_ commit --quiet --rm "$ctr" "$ref" >/dev/null
  rm -rf "$work"
  save "$ref"
}

build_project() { # dockerfile ref
  local dockerfile=$1 ref=$2 pipconf
  ensure_in_store "$(base_ref)"
  pipconf=$(mktemp)
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$pipconf"
  log "building $ref from $dockerfile"
  # chroot isolation: no CNI network of buildah's own; the CA bundle and a pip.conf naming it are
  # mounted into RUN steps only
  buildah_ bud --quiet --isolation chroot --layers=false --pull=never -f "$ROOT/$dockerfile" \
    --build-arg "PYTHON_IMAGE=$(base_ref)" \
    --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" --volume "$pipconf:/etc/pip.conf:ro" \
    -t "$ref" "$ROOT" >/dev/null
  rm -f "$pipconf"
  save "$ref"
  # the archive is what the node loads; keep only the base in buildah's storage
  buildah_ rmi "$ref" >/dev/null 2>&1 || true
}

check_tools() {
  local t
  for t in buildah mmdebstrap gcc sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "$t is not installed: run \`make node-deps\` (hack/install-node.sh)"
  done
  [ -r "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set PIXCRAWLER_CA_BUNDLE)"
}

cmd_refs() {
  local n ref
  for n in base pause worker operator; do
    ref=$("${n}_ref")
    echo "${n^^}_IMAGE=$ref"
    echo "${n^^}_ARCHIVE=$(archive_of "$ref")"
  done
}

cmd_build() {
  local n ref built=()
  for n in base pause worker operator; do
    ref=$("${n}_ref")
    [ -s "$(archive_of "$ref")" ] && continue
    [ ${#built[@]} -eq 0 ] && { check_tools; mkdir -p "$IMAGES" "$STORE"; trap 'rm -rf "$IMAGES"/*.$$.* "$IMAGES"/*.tmp.$$' EXIT; }
    case $n in
      base) build_base "$ref" ;;
      pause) build_pause "$ref" ;;
      worker) build_project Dockerfile.worker "$ref" ;;
      operator) build_project Dockerfile.operator "$ref" ;;
    esac
    built+=("$ref")
  done
  if [ ${#built[@]} -eq 0 ]; then
    echo "node-images: up to date in $IMAGES"
  else
    echo "node-images: built ${built[*]}"
  fi
}

case ${1:-build} in
  build) cmd_build ;;
  refs) cmd_refs ;;
  *) die "usage: $0 [build|refs]" ;;
esac
