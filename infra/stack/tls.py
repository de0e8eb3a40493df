"""The cluster profile's certificates, made with openssl at its first start and kept in the ignored
stack folder: a CA, one certificate the Kafka nodes share (server *and* client: the nodes talk to
each other over mutual TLS), one for PostgreSQL, and a second CA that signs nothing we run (tests
prove a client that trusts only it is refused).

Leaf certificates name ``localhost`` and ``127.0.0.1`` so clients verify the host they dial. Private
keys are PKCS#8 PEM, mode 0600; Kafka reads the PEM key store directly (``ssl.keystore.type=PEM``),
so no key store password exists to be kept anywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from personas.errors import StackError

__all__ = ["Certificates", "ensure_certificates"]

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_WITHIN_S = 7 * 86400  # a leaf certificate expiring within a week is made again


@dataclass(frozen=True)
class Certificates:
    folder: Path

    @property
    def ca(self) -> Path:
        """The CA certificate every client trusts (PEM)."""
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def broker_cert(self) -> Path:
        """The Kafka nodes' certificate (CN=broker: principal ``User:broker`` on mTLS listeners)."""
        return self.folder / "broker.crt"

    @property
    def broker_key(self) -> Path:
        return self.folder / "broker.key"

    @property
    def broker_keystore(self) -> Path:
        """Key, certificate and CA in one PEM file: Kafka's ``ssl.keystore.type=PEM``."""
        return self.folder / "broker-keystore.pem"

    @property
    def postgres_cert(self) -> Path:
        return self.folder / "postgres.crt"

    @property
    def postgres_key(self) -> Path:
        return self.folder / "postgres.key"

    @property
    def untrusted_ca(self) -> Path:
        """A CA that signed nothing of ours: trusting only it must fail the handshake."""
        return self.folder / "untrusted-ca.pem"


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError(
            "openssl is not installed: it makes the cluster's certificates "
            "(apt-get install -y openssl)"
        )
    result = subprocess.run([openssl, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")


def _valid(cert: Path, ca: Path) -> bool:
    """Exists, was signed by this CA, and does not expire soon."""
    if not cert.exists():
        return False
    openssl = shutil.which("openssl") or "openssl"
    checks = (
        [openssl, "x509", "-in", str(cert), "-noout", "-checkend", str(RENEW_WITHIN_S)],
        [openssl, "verify", "-CAfile", str(ca), str(cert)],
    )
    return all(subprocess.run(c, capture_output=True, check=False).returncode == 0 for c in checks)


def _new_key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    os.chmod(path, 0o600)


def _new_ca(cert: Path, key: Path, name: str) -> None:
    _new_key(key)
    _openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(cert), "-days", str(CA_DAYS),
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip


def _new_leaf(certs: Certificates, cert: Path, key: Path, cn: str, usage: str) -> None:
    _new_key(key)
    csr = cert.with_suffix(".csr")
    ext = cert.with_suffix(".ext")
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage={usage}\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    try:
        _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(certs.ca), "-CAkey", str(certs.ca_key),
            "-CAcreateserial", "-days", str(LEAF_DAYS), "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)


def ensure_certificates(folder: Path) -> Certificates:
    """Make what is missing (or expiring, or signed by another CA); keep what is valid."""
    certs = Certificates(folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if not (certs.ca.exists() and certs.ca_key.exists()):
        _new_ca(certs.ca, certs.ca_key, "Persona Stream cluster CA")
    if not _valid(certs.broker_cert, certs.ca) or not certs.broker_keystore.exists():
        _new_leaf(certs, certs.broker_cert, certs.broker_key, "broker", "serverAuth,clientAuth")
        certs.broker_keystore.write_bytes(
            certs.broker_key.read_bytes() + certs.broker_cert.read_bytes() + certs.ca.read_bytes()
        )
        os.chmod(certs.broker_keystore, 0o600)
    if not _valid(certs.postgres_cert, certs.ca):
        _new_leaf(certs, certs.postgres_cert, certs.postgres_key, "localhost", "serverAuth")
    if not certs.untrusted_ca.exists():
        key = folder / "untrusted-ca.key"
        _new_ca(certs.untrusted_ca, key, "Untrusted test CA")
        key.unlink()  # it must never sign anything
    return certs
