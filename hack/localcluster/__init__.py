"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)
built by hack/control-plane.sh, plus a node runner that runs pods as local processes."""

from .binaries import BinariesMissing, binary
from .cluster import KubectlFailed, LocalCluster, default_state_dir
from .controlplane import ControlPlane, StartupFailed
from .identity import restricted_kubeconfig

__all__ = [
    "BinariesMissing",
    "ControlPlane",
    "KubectlFailed",
    "LocalCluster",
    "StartupFailed",
    "binary",
    "default_state_dir",
    "restricted_kubeconfig",
]
