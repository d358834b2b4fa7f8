"""Each reader against its real server on loopback: what it fetches, and how it fails (clearly, no secret)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from deltalake import write_deltalake
from polars.testing import assert_frame_equal

from quarantine_platform.sources import SourceAccess, SourceUnavailable, fetch_file
from quarantine_platform.sources.delta import read_delta_table
from quarantine_platform.sources.https import fetch_https
from quarantine_platform.sources.sftp import SftpAccess, fetch_sftp
from quarantine_platform_tests.conftest import free_port
from quarantine_platform_tests.quarantine_sources.conftest import BEARER_TOKEN, S3_SECRET

BODY = b"id_cliente;email\n1;a@example.com\n"


# --- HTTPS -------------------------------------------------------------------------------------------------


def test_https_sends_the_bearer_token_and_reads_the_file(https):
    https.files["crm.xlsx"] = BODY
    fetched = fetch_https(https.site_url("crm.xlsx") + "?version=3", BEARER_TOKEN, 5)
    assert fetched.data == BODY
    assert fetched.location == https.site_url("crm.xlsx")  # no query string
    assert fetched.last_modified == dt.datetime(2024, 5, 22, 10, 0, tzinfo=dt.UTC)


def test_https_follows_graphs_redirect_without_sending_the_token_to_the_download_host(https):
    https.files["crm.xlsx"] = BODY
    assert fetch_https(https.content_url("crm.xlsx"), BEARER_TOKEN, 5).data == BODY
    assert https.authorization_seen_by_download == []


def test_https_wrong_token_is_a_clear_error_without_the_token(https):
    https.files["crm.xlsx"] = BODY
    with pytest.raises(SourceUnavailable) as raised:
        fetch_https(https.site_url("crm.xlsx") + "?sig=querysecret", "wrong-token-123", 5)
    message = str(raised.value)
    assert message == (
        f"GET {https.site_url('crm.xlsx')} answered HTTP 401 Unauthorized (check QP_CRM_BEARER_TOKEN)"
    )
    assert "wrong-token-123" not in message and "querysecret" not in message


def test_https_missing_file_names_the_status(https):
    with pytest.raises(SourceUnavailable, match=r"answered HTTP 404 Not Found$"):
        fetch_https(https.site_url("nothing.xlsx"), BEARER_TOKEN, 5)


def test_https_untrusted_certificate_is_refused(https_servers, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    https_servers.files["crm.xlsx"] = BODY
    with pytest.raises(SourceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_https(https_servers.site_url("crm.xlsx"), BEARER_TOKEN, 5)


def test_https_refused_port_is_a_clear_error():
    url = f"https://127.0.0.1:{free_port()}/sites/crm.xlsx"
    with pytest.raises(SourceUnavailable, match=rf"^cannot reach {url}: .*Connection refused"):
        fetch_https(url, BEARER_TOKEN, 5)


def test_plain_http_is_refused_off_loopback_before_any_connection():
    with pytest.raises(SourceUnavailable, match=r"only https:// is allowed \(http:// on loopback only\)"):
        fetch_https("http://example.invalid/crm.xlsx", BEARER_TOKEN, 5)


# --- SFTP --------------------------------------------------------------------------------------------------


def key_access(sshd, **changes) -> SftpAccess:
    values = {"key_file": str(sshd.user_key), "known_hosts": str(sshd.known_hosts), "timeout_seconds": 5.0}
    return SftpAccess(**{**values, **changes})


def test_sftp_with_a_key_reads_the_file_and_its_time(sshd):
    remote = sshd.files / "marketing_reader.csv"
    remote.write_bytes(BODY)
    fetched = fetch_sftp(sshd.uri(remote), key_access(sshd))
    assert fetched.data == BODY
    assert fetched.location == sshd.uri(remote)
    assert fetched.last_modified == dt.datetime.fromtimestamp(int(remote.stat().st_mtime), dt.UTC)


def test_sftp_unknown_host_key_is_refused(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(SourceUnavailable, match=r"is not in known_hosts .*refused \(never auto-accepted\)"):
        fetch_sftp(sshd.uri(sshd.files / "x.csv"), key_access(sshd, known_hosts=str(empty)))


def test_sftp_changed_host_key_is_refused(sshd, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(sshd.other_host_key_line)
    with pytest.raises(SourceUnavailable, match=rf"host key of 127.0.0.1:{sshd.port} does not match"):
        fetch_sftp(sshd.uri(sshd.files / "x.csv"), key_access(sshd, known_hosts=str(other)))


def test_sftp_missing_known_hosts_file_is_refused(sshd, tmp_path):
    with pytest.raises(SourceUnavailable, match="does not exist; host keys are never accepted unseen"):
        fetch_sftp(sshd.uri(sshd.files / "x.csv"), key_access(sshd, known_hosts=str(tmp_path / "none")))


def test_sftp_with_a_password_reads_the_file(sshd, sftp_password_user):
    remote = sftp_password_user.files / "marketing_password.csv"
    remote.write_bytes(BODY)
    remote.chmod(0o644)
    access = SftpAccess(
        password=sftp_password_user.password, known_hosts=str(sshd.known_hosts), timeout_seconds=5
    )
    fetched = fetch_sftp(sshd.uri(remote, user=sftp_password_user.name), access)
    assert fetched.data == BODY
    assert sftp_password_user.password not in fetched.location


def test_sftp_wrong_password_fails_authentication_without_the_password(sshd):
    access = SftpAccess(password="not-the-password-42", known_hosts=str(sshd.known_hosts), timeout_seconds=5)
    with pytest.raises(SourceUnavailable) as raised:
        fetch_sftp(sshd.uri(sshd.files / "x.csv"), access)
    assert str(raised.value) == f"{sshd.uri(sshd.files / 'x.csv')}: authentication as root failed"


def test_sftp_password_in_the_uri_is_never_shown(sshd):
    uri = f"sftp://root:uri-secret-77@127.0.0.1:{sshd.port}{sshd.files / 'absent.csv'}"
    with pytest.raises(SourceUnavailable) as raised:
        fetch_sftp(uri, key_access(sshd))
    assert str(raised.value) == f"{sshd.uri(sshd.files / 'absent.csv')}: no such file on the server"


def test_sftp_refused_port_is_a_clear_error(sshd):
    port = free_port()
    with pytest.raises(
        SourceUnavailable, match=rf"cannot connect to 127.0.0.1:{port} \(Connection refused\)"
    ):
        fetch_sftp(f"sftp://root@127.0.0.1:{port}/data/marketing.csv", key_access(sshd))


# --- S3 and Delta ------------------------------------------------------------------------------------------


def test_s3_object_is_fetched_with_its_time(s3_bucket):
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="in/restritos.json", Body=BODY)
    access = SourceAccess(s3_client=lambda: s3_bucket.client)
    fetched = fetch_file(s3_bucket.uri("in/restritos.json"), access)
    assert fetched.data == BODY
    assert fetched.last_modified is not None
    assert abs(fetched.last_modified - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_s3_missing_key_is_a_clear_error(s3_bucket):
    access = SourceAccess(s3_client=lambda: s3_bucket.client)
    with pytest.raises(SourceUnavailable, match=r"in/none.json: S3 answered NoSuchKey \(HTTP 404\)"):
        fetch_file(s3_bucket.uri("in/none.json"), access)


def test_delta_table_on_s3_is_read_typed(s3_bucket):
    frame = pl.DataFrame({"id_cliente": [3, 4], "data_envio": [dt.date(2024, 5, 18), dt.date(2024, 5, 19)]})
    write_deltalake(
        s3_bucket.uri("recomendacao"), frame.to_arrow(), storage_options=s3_bucket.delta_options()
    )
    snapshot = read_delta_table(s3_bucket.uri("recomendacao"), s3_bucket.delta_options())
    assert_frame_equal(snapshot.frame, frame)
    assert snapshot.version == 0 and snapshot.last_modified is not None


def test_delta_table_missing_or_unreachable_is_a_clear_error(s3_bucket, tmp_path):
    with pytest.raises(SourceUnavailable, match=r"/ofertas: no Delta table there$"):
        read_delta_table(str(tmp_path / "ofertas"), None)
    unreachable = {**s3_bucket.delta_options(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(SourceUnavailable) as raised:
        read_delta_table(s3_bucket.uri("ofertas"), unreachable)
    assert str(raised.value).startswith(f"{s3_bucket.uri('ofertas')}: cannot read the Delta table (")
    assert "Connection refused" in str(raised.value) and S3_SECRET not in str(raised.value)


def test_local_path_missing_is_a_clear_error(tmp_path):
    with pytest.raises(SourceUnavailable, match=r"fraude.parquet: no such file$"):
        fetch_file(str(tmp_path / "fraude.parquet"), SourceAccess())
