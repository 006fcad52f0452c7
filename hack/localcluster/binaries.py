"""Where hack/control-plane.sh caches the pinned binaries, and a clear error when they are not there."""

from __future__ import annotations

import os
from pathlib import Path

from pinned import cache_dir, versions

KUBERNETES_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy")


class BinariesMissing(RuntimeError):
    """A control-plane binary is not built yet."""


def version_of(component: str, pinned: dict[str, str]) -> str:
    if component in KUBERNETES_COMPONENTS:
        return pinned["KUBERNETES_VERSION"]
    return pinned[f"{component.upper()}_VERSION"]


def binary(component: str) -> Path:
    """The cached binary for `component` at its pinned version."""
    version = version_of(component, versions())
    path = cache_dir() / "bin" / f"{component}-{version}" / component
    if not os.access(path, os.X_OK):
        raise BinariesMissing(f"{path} is missing: run `make control-plane` (hack/control-plane.sh build) first")
    return path
