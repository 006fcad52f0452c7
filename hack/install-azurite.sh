#!/usr/bin/env bash
# Installs the Azurite blob emulator the tests use, from npm, into a versioned cache outside the repo.
# The version is pinned in hack/versions.env: 3.35.0 is the newest whose engines allow Node 20.
set -euo pipefail
# shellcheck source=versions.env
source "$(dirname "$0")/versions.env"
CACHE="${PIXCRAWLER_CACHE:-$HOME/.cache/pixcrawler-operator}"
DEST="$CACHE/azurite-$AZURITE_VERSION"
BIN="$DEST/node_modules/.bin/azurite-blob"
[ -x "$BIN" ] && exit 0
command -v npm >/dev/null 2>&1 || { echo "install-azurite: npm not found; install Node.js >= 18 (with npm)" >&2; exit 1; }
echo "install-azurite: installing azurite@$AZURITE_VERSION into $DEST" >&2
TMP="$DEST.tmp.$$"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$TMP"
npm install --prefix "$TMP" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2
rm -rf "$DEST"
mv "$TMP" "$DEST"
trap - EXIT
