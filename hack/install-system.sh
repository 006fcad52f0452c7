#!/usr/bin/env bash
# Debian packages the tests and the demo run for real: redis-server, and chromium (the headless browser
# that opens the dataset report in tests/integration/chunk_worker/report/test_browser.py).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# shellcheck source=hack/apt-install.sh
. "$(dirname "$0")/apt-install.sh"
apt_install install-system "${need[@]}"
