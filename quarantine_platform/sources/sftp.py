"""Files over SFTP with paramiko: `sftp://user@host:port/path`, password or key.

The server's host key must already be in the known_hosts file (QP_SFTP_KNOWN_HOSTS): an unknown or
changed key is refused (RejectPolicy), never accepted on first use. The path is absolute on the server;
`/~/path` is relative to the user's home.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paramiko

from quarantine_platform.sources.base import FetchedFile, SourceUnavailable, safe_location


@dataclass(frozen=True)
class SftpAccess:
    password: str = ""
    key_file: str = ""
    known_hosts: str = ""
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class SftpTarget:
    user: str
    host: str
    port: int
    path: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_sftp_uri(uri: str) -> SftpTarget:
    parts = urlsplit(uri)
    location = safe_location(uri)
    try:
        port = parts.port or 22
    except ValueError:
        raise SourceUnavailable(f"{location}: the port is not a number") from None
    if parts.scheme.lower() != "sftp" or not parts.hostname or not parts.username:
        raise SourceUnavailable(f"{location}: expected sftp://user@host:port/path")
    path = unquote(parts.path)
    if path.startswith("/~/"):
        path = path[3:]
    if not path or path.endswith("/"):
        raise SourceUnavailable(f"{location}: no file name in the path")
    return SftpTarget(unquote(parts.username), parts.hostname, port, path)


def fetch_sftp(uri: str, access: SftpAccess) -> FetchedFile:
    location = safe_location(uri)
    target = parse_sftp_uri(uri)
    if not access.password and not access.key_file:
        raise SourceUnavailable(f"{location}: no SFTP credentials (set QP_SFTP_KEY_FILE or QP_SFTP_PASSWORD)")
    if access.key_file and not Path(access.key_file).is_file():
        raise SourceUnavailable(f"{location}: SFTP key file {access.key_file} does not exist")
    known_hosts = Path(access.known_hosts) if access.known_hosts else None
    if known_hosts is None or not known_hosts.is_file():
        raise SourceUnavailable(
            f"{location}: known_hosts file {access.known_hosts or '(unset)'} does not exist; "
            "host keys are never accepted unseen (QP_SFTP_KNOWN_HOSTS)"
        )
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        timeout = access.timeout_seconds
        try:
            client.connect(
                target.host,
                port=target.port,
                username=target.user,
                password=access.password or None,
                key_filename=access.key_file or None,
                allow_agent=False,
                look_for_keys=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
            )
        except paramiko.BadHostKeyException:
            raise SourceUnavailable(
                f"{location}: the host key of {target.address} does not match "
                f"known_hosts {known_hosts}; refused"
            ) from None
        except paramiko.AuthenticationException:
            raise SourceUnavailable(f"{location}: authentication as {target.user} failed") from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise SourceUnavailable(
                    f"{location}: the host key of {target.address} is not in known_hosts {known_hosts}; "
                    "refused (never auto-accepted)"
                ) from None
            raise SourceUnavailable(f"{location}: SSH error: {exc}") from None
        except TimeoutError:
            raise SourceUnavailable(f"{location}: connecting to {target.address} timed out") from None
        except paramiko.ssh_exception.NoValidConnectionsError as exc:
            causes = sorted({error.strerror or str(error) for error in exc.errors.values()})
            raise SourceUnavailable(
                f"{location}: cannot connect to {target.address} ({', '.join(causes)})"
            ) from None
        except OSError as exc:
            raise SourceUnavailable(
                f"{location}: cannot connect to {target.address} ({exc.strerror or exc})"
            ) from None
        return _download(client, target, location, timeout)
    finally:
        client.close()


def _download(client: paramiko.SSHClient, target: SftpTarget, location: str, timeout: float) -> FetchedFile:
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(timeout)
        with sftp:
            stat = sftp.stat(target.path)
            with sftp.open(target.path, "rb") as remote:
                remote.prefetch(stat.st_size)
                data = remote.read()
    except FileNotFoundError:
        raise SourceUnavailable(f"{location}: no such file on the server") from None
    except PermissionError:
        raise SourceUnavailable(f"{location}: permission denied on the server") from None
    except TimeoutError:
        raise SourceUnavailable(f"{location}: the transfer timed out") from None
    except (OSError, paramiko.SSHException) as exc:
        raise SourceUnavailable(f"{location}: SFTP transfer failed ({exc})") from None
    modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC) if stat.st_mtime is not None else None
    return FetchedFile(data, location, modified)
