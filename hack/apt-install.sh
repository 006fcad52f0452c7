# shellcheck shell=bash
# Sourced by the install scripts: apt_install WHO PACKAGE... installs what is missing, as root only.
apt_install() {
  local who=$1
  shift
  [ $# -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$who: missing $*; run as root or: sudo apt-get install -y $*" >&2
    exit 1
  fi
  echo "$who: installing $*" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
