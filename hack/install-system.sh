#!/usr/bin/env bash
# Debian packages the tests and the demo run for real: redis-server.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# shellcheck source=hack/apt-install.sh
. "$(dirname "$0")/apt-install.sh"
apt_install install-system "${need[@]}"
