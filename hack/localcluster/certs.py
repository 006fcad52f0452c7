"""Certificates for the local control plane, generated fresh for every cluster (nothing secret is kept)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FRONT_PROXY_CLIENT = "front-proxy-client"
VALIDITY = datetime.timedelta(days=365)
SERVING_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key, as PEM files on disk."""

    cert: Path
    key: Path

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class ClusterPKI:
    """Every file the control plane's flags and kubeconfigs point at."""

    server_ca: KeyPair
    client_ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    scheduler: KeyPair
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair
    kubelet: KeyPair
    kubelet_serving: KeyPair
    kube_proxy: KeyPair
    apiserver_kubelet_client: KeyPair
    service_account_key: Path
    service_account_pub: Path


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _save(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    return KeyPair(
        cert=_write(directory / f"{stem}.crt", cert.public_bytes(serialization.Encoding.PEM)),
        key=_write(directory / f"{stem}.key", _key_pem(key), private=True),
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def make_ca(directory: Path, stem: str, cn: str) -> tuple[KeyPair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(_name(cn), _name(cn), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _save(directory, stem, cert, key), cert, key


def issue(
    directory: Path,
    stem: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    orgs: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> KeyPair:
    """A leaf certificate: a serving cert when it has SANs, else a client cert (CN = user, O = groups)."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if dns or ips else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(cn, orgs), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=False, key_cert_sign=False, crl_sign=False,
                content_commitment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if dns or ips:
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _save(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


def generate(directory: Path, service_ip: str, node_host: str, node_name: str) -> ClusterPKI:
    """All certificates and keys of one cluster (control plane and its one node), written under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    server_ca, *server = make_ca(directory, "server-ca", "pixcrawler-local-server-ca")
    client_ca, *client = make_ca(directory, "client-ca", "pixcrawler-local-client-ca")
    # the aggregation layer's CA: without it every component logs a missing requestheader CA bundle
    front_proxy_ca, *front_proxy = make_ca(directory, "front-proxy-ca", "pixcrawler-local-front-proxy-ca")
    sa_key = ec.generate_private_key(ec.SECP256R1())
    sa_pub = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ClusterPKI(
        server_ca=server_ca,
        client_ca=client_ca,
        apiserver=issue(
            directory, "apiserver", tuple(server), "kube-apiserver", dns=SERVING_DNS, ips=("127.0.0.1", node_host, service_ip)
        ),
        admin=issue(directory, "admin", tuple(client), "pixcrawler-admin", orgs=("system:masters",)),
        controller_manager=issue(directory, "controller-manager", tuple(client), "system:kube-controller-manager"),
        scheduler=issue(directory, "scheduler", tuple(client), "system:kube-scheduler"),
        front_proxy_ca=front_proxy_ca,
        front_proxy_client=issue(directory, "front-proxy-client", tuple(front_proxy), FRONT_PROXY_CLIENT),
        # the Node authorizer knows a kubelet by CN system:node:<name> in group system:nodes
        kubelet=issue(directory, "kubelet", tuple(client), f"system:node:{node_name}", orgs=("system:nodes",)),
        kubelet_serving=issue(directory, "kubelet-serving", tuple(server), node_name, dns=(node_name,),
                              ips=(node_host,)),
        kube_proxy=issue(directory, "kube-proxy", tuple(client), "system:kube-proxy"),
        # logs, exec and port-forward: the apiserver's identity at the kubelet
        apiserver_kubelet_client=issue(directory, "apiserver-kubelet-client", tuple(client),
                                       "kube-apiserver-kubelet-client", orgs=("system:masters",)),
        service_account_key=_write(directory / "sa.key", _key_pem(sa_key), private=True),
        service_account_pub=_write(directory / "sa.pub", sa_pub),
    )
