"""Files over HTTPS with a bearer token: how Microsoft Graph serves SharePoint files.

Graph answers `GET .../content` with a redirect to a pre-authenticated download URL on another host; the
token is sent to the first host only, never to a different origin (as `requests` does). Plain `http://`
is accepted only for loopback hosts, so a token never crosses a network in clear text.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from quarantine_platform.sources.base import FetchedFile, SourceUnavailable, safe_location

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


def _check_scheme(url: str) -> None:
    scheme, host, _ = _origin(url)
    if scheme == "https" or (scheme == "http" and host in LOOPBACK_HOSTS):
        return
    raise SourceUnavailable(f"{safe_location(url)}: only https:// is allowed (http:// on loopback only)")


class _SameOriginAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects; drop the Authorization header when the redirect leaves the first origin."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        _check_scheme(newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.headers.pop("Authorization", None)
            new.unredirected_hdrs.pop("Authorization", None)
        return new


def fetch_https(url: str, bearer_token: str, timeout_seconds: float) -> FetchedFile:
    location = safe_location(url)
    _check_scheme(url)
    headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
    opener = urllib.request.build_opener(_SameOriginAuthRedirect())
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=timeout_seconds) as response:
            data = response.read()
            last_modified = response.headers.get("Last-Modified")
    except urllib.error.HTTPError as exc:
        final = safe_location(exc.url or url)
        via = f" (redirected to {final})" if final != location else ""
        hint = " (check QP_CRM_BEARER_TOKEN)" if exc.code in (401, 403) else ""
        raise SourceUnavailable(f"GET {location}{via} answered HTTP {exc.code} {exc.reason}{hint}") from None
    except urllib.error.URLError as exc:
        raise SourceUnavailable(f"cannot reach {location}: {exc.reason}") from None
    except TimeoutError:
        raise SourceUnavailable(f"GET {location} timed out after {timeout_seconds:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise SourceUnavailable(f"GET {location} failed: {type(exc).__name__}: {exc}") from None
    return FetchedFile(data, location, _http_date(last_modified))


def _http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return None
