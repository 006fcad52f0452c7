"""A restricted identity for RBAC tests: a ServiceAccount bound to a Role, as a token kubeconfig."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from . import kubeconfig


def restricted_kubeconfig(
    api: client.ApiClient,
    namespace: str,
    name: str,
    rules: list[dict],
    path: Path,
    server: str,
    ca_pem: bytes,
    expiration_seconds: int = 3600,
) -> Path:
    """Create ServiceAccount `name` with a Role of `rules` (RBAC PolicyRule dicts) bound to it in
    `namespace`, get it a token from the TokenRequest API, and write a kubeconfig that uses the token."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": expiration_seconds}}
    ).status.token
    return kubeconfig.write(path, server, ca_pem, kubeconfig.token_user(token), name=f"{namespace}-{name}")
