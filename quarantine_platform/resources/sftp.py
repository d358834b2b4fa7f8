"""SFTP access for `sftp://` locations: password or key, host keys checked against a known_hosts file."""

from __future__ import annotations

import dagster as dg

from quarantine_platform.sources.sftp import SftpAccess


class SftpResource(dg.ConfigurableResource):
    password: str = ""
    key_file: str = ""
    known_hosts: str = ""
    timeout_seconds: float = 30.0

    def access(self) -> SftpAccess:
        return SftpAccess(self.password, self.key_file, self.known_hosts, self.timeout_seconds)
