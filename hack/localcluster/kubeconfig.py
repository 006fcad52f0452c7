"""Self-contained kubeconfig files (credentials embedded, so a file is all a client needs)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: Path, server: str, ca_pem: bytes, user: dict, name: str = "pixcrawler-local") -> Path:
    """Write a kubeconfig with one cluster, one user and one current context, all called `name`."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def cert_user(cert_pem: bytes, key_pem: bytes) -> dict:
    return {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}


def token_user(token: str) -> dict:
    return {"token": token}
