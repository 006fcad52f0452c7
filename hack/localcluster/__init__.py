"""A real local Kubernetes cluster built by hack/control-plane.sh: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, and one node (containerd, kubelet, kube-proxy, bridge CNI)
running the images hack/node-images.sh builds from the project's Dockerfiles."""

from .binaries import BinariesMissing, binary
from .cluster import KubectlFailed, LocalCluster, default_state_dir
from .controlplane import ControlPlane, StartupFailed
from .identity import restricted_kubeconfig
from .network import NetworkBusy
from .node import NodeFailed

__all__ = [
    "BinariesMissing",
    "ControlPlane",
    "KubectlFailed",
    "LocalCluster",
    "NetworkBusy",
    "NodeFailed",
    "StartupFailed",
    "binary",
    "default_state_dir",
    "restricted_kubeconfig",
]
