"""A throwaway certificate authority and a broker certificate, for a local broker with TLS (tests, `make kafka-up`).

Made with the `openssl` command (OpenSSL 1.1.1 or newer), so that no extra Python package is needed. The keys are
unencrypted PKCS#8 PEM, which Kafka reads with `ssl.keystore.type=PEM` and no key password; the CA's key is deleted
once the broker's certificate is signed: nothing more can be signed with it. Not for production: a real deployment
brings certificates from its own CA.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backflush_shared.errors import BackflushError

DAYS = 30


class LocalTlsError(BackflushError):
    """The local CA or a certificate could not be made (no `openssl`, or it failed); the message says why."""


@dataclass(frozen=True)
class BrokerTls:
    """The PEM files of one local broker: the CA clients trust, and the broker's key with its certificate."""

    ca_file: Path
    keystore: Path  # the broker's private key followed by its certificate: Kafka's PEM keystore

    def server_properties(self) -> dict[str, str]:
        """The broker settings that serve TLS with these files."""
        return {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
        }


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LocalTlsError("`openssl` is needed to make the local broker's certificates but is not on PATH "
                            "(Debian: apt-get install openssl)")
    done = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise LocalTlsError(f"`openssl {' '.join(args)}` failed (exit {done.returncode}): {done.stderr.strip()}")


def make_broker_tls(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> BrokerTls:
    """A new CA and a broker certificate naming `hosts` (clients check the name they connect to), in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ",".join(f"IP:{host}" if _is_ip(host) else f"DNS:{host}" for host in hosts)
    (folder / "broker.ext").write_text(
        f"subjectAltName={names}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        encoding="utf-8",
    )
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", str(DAYS), "-subj", "/CN=backflush local CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
             "-subj", f"/CN={hosts[0]}", cwd=folder)
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "broker.pem", "-days", str(DAYS), "-extfile", "broker.ext", cwd=folder)
    keystore = folder / "broker-keystore.pem"
    keystore.write_text((folder / "broker.key").read_text() + (folder / "broker.pem").read_text(), encoding="utf-8")
    keystore.chmod(0o600)
    for leftover in ("ca.key", "ca.srl", "broker.csr", "broker.ext", "broker.key"):
        (folder / leftover).unlink(missing_ok=True)
    return BrokerTls(ca_file=folder / "ca.pem", keystore=keystore)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
