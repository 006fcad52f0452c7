#!/usr/bin/env bash
# Debian packages the local node runs on: containerd (CRI) and runc, the CNI plugins (bridge, host-local,
# loopback, portmap), iptables and conntrack for kube-proxy, mmdebstrap for the base image, buildah to
# build the Dockerfiles without Docker, and a C compiler with static libc for the pause image.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have containerd || need+=(containerd)
have runc || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have iptables || need+=(iptables)
have conntrack || need+=(conntrack)
have mmdebstrap || need+=(mmdebstrap)
have buildah || need+=(buildah)
have gcc || need+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(find /usr/lib -name libc.a -print -quit 2>/dev/null)" ] || need+=(libc6-dev)
# shellcheck source=hack/apt-install.sh
. "$(dirname "$0")/apt-install.sh"
apt_install install-node "${need[@]}"
