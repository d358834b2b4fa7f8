"""Real servers on loopback for the quarantine sources: OpenSSH sshd (SFTP), moto (S3), HTTPS (Graph-like).

Each server is started once per test session on a free 127.0.0.1 port and stopped by its PID / handle.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest

from quarantine_platform_tests.conftest import free_port

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"


def _wait_for_port(port: int, proc: subprocess.Popen | None = None, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


# ---------------------------------------------------------------------------------------------------------
# SFTP: OpenSSH sshd with a throwaway host key and user key (recipes.md section 2)


@dataclass(frozen=True)
class SshServer:
    port: int
    known_hosts: Path  # holds this server's real host key, in the [127.0.0.1]:PORT form
    user_key: Path
    other_host_key_line: str  # a valid known_hosts line for this address with a DIFFERENT key
    files: Path  # a directory to put served files in

    def uri(self, path: Path, user: str = "root") -> str:
        return f"sftp://{user}@127.0.0.1:{self.port}{path}"


def _keygen(path: Path) -> str:
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().split()[:2]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    base = tmp_path_factory.mktemp("sshd")
    host_type, host_key = _keygen(base / "host_ed25519")
    other_type, other_key = _keygen(base / "other_host_ed25519")
    _keygen(base / "user_ed25519")
    (base / "authorized_keys").write_text((base / "user_ed25519.pub").read_text())
    port = free_port()
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {base / 'host_ed25519'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {base / 'authorized_keys'}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication yes",  # root's password is locked; `sftp_password_user` has one
                "KbdInteractiveAuthentication no",
                "PermitRootLogin yes",
                f"AllowUsers root {PASSWORD_USER_PREFIX}*",
                "UsePAM no",
                "StrictModes no",  # authorized_keys lives under /tmp (1777)
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True)
    log = (base / "sshd.log").open("wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        _wait_for_port(port, proc)
        known_hosts = base / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_type} {host_key}\n")
        files = base / "files"
        files.mkdir()
        yield SshServer(
            port=port,
            known_hosts=known_hosts,
            user_key=base / "user_ed25519",
            other_host_key_line=f"[127.0.0.1]:{port} {other_type} {other_key}\n",
            files=files,
        )
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


PASSWORD_USER_PREFIX = "qpsftp"


@dataclass(frozen=True)
class PasswordUser:
    name: str
    password: str
    files: Path  # a directory this user can read


@pytest.fixture(scope="session")
def sftp_password_user() -> Iterator[PasswordUser]:
    """A throwaway system user with a password (sshd checks it against /etc/shadow: UsePAM no), removed at
    the end. Creating it needs root, which is how CI runs the suite."""
    if os.geteuid() != 0:
        pytest.skip("a password login needs a system user with a password, and creating one needs root")
    name = f"{PASSWORD_USER_PREFIX}{os.getpid()}"
    password = uuid.uuid4().hex
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    files = Path(tempfile.mkdtemp(prefix="qp-sftp-password-"))
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        files.chmod(0o755)  # the user reads the served files: pytest's own tmp folders are root's only
        yield PasswordUser(name, password, files)
    finally:
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(files, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# S3: moto in server mode (recipes.md section 3)


S3_ACCESS_KEY = "moto-access-key"
S3_SECRET = "moto-secret-9f8e7d6c5b4a"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Bucket:
    endpoint: str
    name: str
    client: Any

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def delta_options(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket on the moto server; the QP_S3_* variables point at it."""
    import boto3

    for name, value in {
        "QP_S3_ENDPOINT_URL": moto_endpoint,
        "QP_S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "QP_S3_SECRET_ACCESS_KEY": S3_SECRET,
        "QP_S3_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    name = f"qp-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return S3Bucket(moto_endpoint, name, client)


# ---------------------------------------------------------------------------------------------------------
# HTTPS: a Graph-like file server (bearer token, redirect to a pre-authenticated download host)


BEARER_TOKEN = "graph-token-5b2f0c1e7a"


@dataclass
class HttpsServers:
    """`graph`: `/sites/NAME` answers the file itself, `/drive/NAME/content` redirects to `download`;
    both only with `Authorization: Bearer BEARER_TOKEN`. `download`: `/dl/NAME?tempauth=...` answers the
    file with no token needed (Graph's pre-authenticated URL) and records every Authorization it gets."""

    graph: str
    download: str
    ca_file: Path
    files: dict[str, bytes] = field(default_factory=dict)
    last_modified: str = "Wed, 22 May 2024 10:00:00 GMT"
    authorization_seen_by_download: list[str] = field(default_factory=list)

    def site_url(self, name: str) -> str:
        return f"{self.graph}/sites/{name}"

    def content_url(self, name: str) -> str:
        return f"{self.graph}/drive/{name}/content"


_TEMPAUTH = "signed-download-7c1d"


def _handler(servers: HttpsServers, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            segments = parts.path.strip("/").split("/")
            authorization = self.headers.get("Authorization")
            if role == "download":
                if authorization:
                    servers.authorization_seen_by_download.append(authorization)
                token = parse_qs(parts.query).get("tempauth", [""])[0]
                name = segments[-1]
                if segments[0] != "dl" or token != _TEMPAUTH or name not in servers.files:
                    return self._send(404 if token == _TEMPAUTH else 401)
                return self._send(200, servers.files[name], {"Last-Modified": servers.last_modified})
            if authorization != f"Bearer {BEARER_TOKEN}":
                return self._send(
                    401, b'{"error": "InvalidAuthenticationToken"}', {"WWW-Authenticate": "Bearer"}
                )
            if segments[0] == "sites" and len(segments) == 2 and segments[1] in servers.files:
                return self._send(200, servers.files[segments[1]], {"Last-Modified": servers.last_modified})
            if segments[0] == "drive" and len(segments) == 3 and segments[2] == "content":
                target = f"{servers.download}/dl/{segments[1]}?tempauth={_TEMPAUTH}"
                return self._send(302, headers={"Location": target})
            return self._send(404)

    return Handler


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="session")
def https_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServers]:
    cert_file, key_file = _self_signed_certificate(tmp_path_factory.mktemp("https"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    graph_port, download_port = free_port(), free_port()
    servers = HttpsServers(
        graph=f"https://127.0.0.1:{graph_port}",
        download=f"https://127.0.0.1:{download_port}",
        ca_file=cert_file,
    )
    running = []
    for port, role in ((graph_port, "graph"), (download_port, "download")):
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(servers, role))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
    try:
        yield servers
    finally:
        for server, thread in running:
            server.shutdown()
            server.server_close()
            thread.join(5)


@pytest.fixture
def https(https_servers: HttpsServers, monkeypatch: pytest.MonkeyPatch) -> HttpsServers:
    """The HTTPS servers, their certificate trusted (SSL_CERT_FILE), the token in QP_CRM_BEARER_TOKEN."""
    monkeypatch.setenv("SSL_CERT_FILE", str(https_servers.ca_file))
    monkeypatch.setenv("QP_CRM_BEARER_TOKEN", BEARER_TOKEN)
    https_servers.files.clear()
    https_servers.authorization_seen_by_download.clear()
    return https_servers


# ---------------------------------------------------------------------------------------------------------
# Dagster: materialize one source asset with the resources built from the environment


def source_resources() -> dict[str, dg.ConfigurableResource]:
    from quarantine_platform import settings
    from quarantine_platform.resources.https import HttpsResource
    from quarantine_platform.resources.lake import LakeResource
    from quarantine_platform.resources.s3 import S3Resource
    from quarantine_platform.resources.sftp import SftpResource

    return {
        "lake": LakeResource(root=settings.get("QP_LAKE_DIR")),
        "https": HttpsResource(bearer_token=os.environ.get("QP_CRM_BEARER_TOKEN", ""), timeout_seconds=10),
        "sftp": SftpResource(
            password=os.environ.get("QP_SFTP_PASSWORD", ""),
            key_file=os.environ.get("QP_SFTP_KEY_FILE", ""),
            known_hosts=settings.get("QP_SFTP_KNOWN_HOSTS"),
            timeout_seconds=10,
        ),
        "s3": S3Resource(
            endpoint_url=os.environ.get("QP_S3_ENDPOINT_URL", ""),
            access_key_id=os.environ.get("QP_S3_ACCESS_KEY_ID", ""),
            secret_access_key=os.environ.get("QP_S3_SECRET_ACCESS_KEY", ""),
            region=settings.get("QP_S3_REGION"),
        ),
    }


def materialize_source(asset: str) -> dg.ExecuteInProcessResult:
    from quarantine_platform.assets.quarantine_sources import quarantine_source_assets

    selected = [a for a in quarantine_source_assets if a.key == dg.AssetKey(asset)]
    assert selected, f"no source asset {asset}"
    return dg.materialize(
        selected, resources=source_resources(), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The description of the run's one step failure."""
    assert not result.success
    (failure,) = result.get_step_failure_events()
    data = failure.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message
