"""HTTPS access for `https://` locations: a bearer token (Microsoft Graph for SharePoint files).

Server certificates are checked against the system's CA store (or the bundle named by SSL_CERT_FILE).
"""

from __future__ import annotations

import dagster as dg


class HttpsResource(dg.ConfigurableResource):
    bearer_token: str = ""
    timeout_seconds: float = 60.0
