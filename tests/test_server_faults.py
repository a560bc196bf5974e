"""Fault injection in the embedded cloud (``vzcloud.server.faults``): each fault works,
leaves the server consistent, and the SDK recovers where it should (idempotent calls are
retried, broken downloads resumed) and reports cleanly where it must not retry.

Faults are armed per server through ``cloud.server.cloud.faults``; they are off unless a
test arms one.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vzcloud import Cloud
from vzcloud.api import errors as E
from vzcloud.server.faults import Faults

from . import sdk_fixtures
from .conftest import Cloud as CloudFixture
from .conftest import User
from .helpers import intent, sha256, upload, with_query

sdk = sdk_fixtures.sdk  # the fixture, used by name

MiB = 1 << 20


def faults_of(cloud: CloudFixture) -> Faults:
    return cloud.server.cloud.faults


INJECTED: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def count_injected(cloud: CloudFixture) -> Iterator[None]:
    """Adds up the faults every test injected; the total is printed at the end (-s)."""
    yield
    INJECTED.update(faults_of(cloud).injected)


@pytest.fixture(scope="module", autouse=True)
def report_injected() -> Iterator[None]:
    yield
    print(f"\nfaults injected: {sum(INJECTED.values())} ({dict(sorted(INJECTED.items()))})")


def data_files(cloud: CloudFixture) -> dict[str, list[str]]:
    """What lies in the data directory's blob, temporary and upload areas."""
    root = cloud.server.cloud.config.data_dir
    return {
        "blobs": sorted(p.name for p in (root / "blobs").rglob("*") if p.is_file()),
        "tmp": sorted(p.name for p in (root / "tmp").iterdir()),
        "uploads": sorted(str(p.relative_to(root / "uploads"))
                          for p in (root / "uploads").rglob("*") if p.is_file()),
    }


def file_names(user: User, folder: str = "/VZMOBILE") -> list[str]:
    return sorted(f["name"] for f in user.http.get(f"/metadata{folder}").json()["folder"]["file"])


# Off by default ---------------------------------------------------------------------------


def test_faults_are_off_by_default(cloud: CloudFixture, user: User) -> None:
    faults = faults_of(cloud)
    assert user.http.get("/account").status_code == 200
    assert faults.total_injected == 0 and faults.disk_free is None
    assert not faults.queued and not faults.rates and faults.latency == 0


# Error statuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [
    (500, "server_error"), (503, "service_unavailable"), (429, "rate_limited")])
def test_an_injected_status_is_a_json_error_with_retry_after(
        cloud: CloudFixture, user: User, status: int, error: str) -> None:
    faults_of(cloud).fail("account", status, retry_after=7)
    r = user.http.get("/account")
    assert r.status_code == status and r.json()["error"] == error
    assert r.json()["error_description"] == "injected fault"
    assert r.headers["Retry-After"] == "7"
    assert user.http.get("/account").status_code == 200  # only the next call
    assert faults_of(cloud).injected[f"status_{status}"] == 1


def test_an_injected_status_runs_no_handler(cloud: CloudFixture, user: User) -> None:
    faults_of(cloud).fail("create_folder", 503)
    r = user.http.post("/fops/createfolder", json={"path": "/VZMOBILE", "name": "x"})
    assert r.status_code == 503
    assert user.http.get("/metadata/VZMOBILE/x").status_code == 404


def test_error_rate_per_endpoint(cloud: CloudFixture, user: User) -> None:
    faults = faults_of(cloud)
    faults.seed(7)
    faults.fail_rate("metadata", 0.5, 503, retry_after=0)
    statuses = [user.http.get("/metadata/VZMOBILE").status_code for _ in range(60)]
    failed = statuses.count(503)
    assert set(statuses) == {200, 503} and 15 <= failed <= 45, failed
    assert all(user.http.get("/account").status_code == 200 for _ in range(20))
    faults.fail_rate("metadata", 0)
    assert user.http.get("/metadata/VZMOBILE").status_code == 200
    faults.fail_rate("*", 1.0, 429, retry_after=1)
    r = user.http.get("/account")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"


def test_the_sdk_rides_out_an_error_rate_on_idempotent_calls(
        cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    faults = faults_of(cloud)
    upload(user, "/VZMOBILE/a.txt", b"abc")
    faults.seed(1)
    faults.fail_rate("*", 0.3, 503, retry_after=0)
    for _ in range(15):
        assert sdk.account().id == user.user_id
        assert [f.name for f in sdk.metadata("/VZMOBILE").files] == ["a.txt"]
    assert faults.injected["status_503"] >= 5


def test_non_idempotent_calls_are_reported_not_retried(
        cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    faults_of(cloud).fail("create_folder", 503, retry_after=0)
    with pytest.raises(E.ServiceUnavailableError):
        sdk.create_folder("/VZMOBILE/once")
    assert not faults_of(cloud).queued["create_folder"]  # one request, not retried
    assert sdk.create_folder("/VZMOBILE/once").name == "once"


# Latency ----------------------------------------------------------------------------------


def test_latency_per_endpoint_and_everywhere(cloud: CloudFixture, user: User) -> None:
    faults = faults_of(cloud)
    faults.slow("account", 0.4)

    def timed(url: str) -> float:
        started = time.monotonic()
        assert user.http.get(url).status_code == 200
        return time.monotonic() - started

    assert timed("/account") >= 0.4
    assert timed("/metadata/VZMOBILE") < 0.3
    faults.slow("account", 0)
    faults.latency = 0.2
    assert timed("/metadata/VZMOBILE") >= 0.2
    faults.clear()
    assert timed("/account") < 0.3


# Connections dropped mid-body -------------------------------------------------------------


def test_a_response_dropped_mid_body_breaks_the_client_read(
        cloud: CloudFixture, user: User) -> None:
    data = os.urandom(MiB)
    upload(user, "/VZMOBILE/big.bin", data)
    faults_of(cloud).drop_response("download", after_bytes=100_000)
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), user.http.stream(
            "GET", "/files/VZMOBILE/big.bin") as r:
        assert r.status_code == 200
        for piece in r.iter_bytes():
            received += piece
    assert bytes(received) == data[:100_000]
    assert user.http.get("/files/VZMOBILE/big.bin").content == data  # next call is whole


def test_the_sdk_resumes_a_download_dropped_mid_body(
        cloud: CloudFixture, user: User, sdk: Cloud, tmp_path: Path) -> None:
    data = os.urandom(2 * MiB)
    upload(user, "/VZMOBILE/big.bin", data)
    faults_of(cloud).drop_response("download", after_bytes=300_000, times=2)
    sdk.download("/VZMOBILE/big.bin", tmp_path / "big.bin")
    assert (tmp_path / "big.bin").read_bytes() == data
    assert faults_of(cloud).injected["drop_response"] == 2


def test_a_lost_response_of_an_idempotent_call_is_retried(
        cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    faults_of(cloud).drop_response("account", after_bytes=0, times=2)
    assert sdk.account().id == user.user_id
    assert faults_of(cloud).injected["drop_response"] == 2


def test_a_lost_response_of_a_non_idempotent_call_is_reported_once(
        cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    """The folder was made but the answer was lost: the SDK must not send the request
    again (it cannot know it was done) and raises a NetworkError."""
    faults_of(cloud).drop_response("create_folder", after_bytes=10)
    with pytest.raises(E.NetworkError) as info:
        sdk.create_folder("/VZMOBILE/made")
    assert info.value.status is None
    folders = user.http.get("/metadata/VZMOBILE").json()["folder"]["folder"]
    assert [f["name"] for f in folders] == ["made"]  # done once, not twice


def test_a_request_body_dropped_mid_upload_leaves_nothing(
        cloud: CloudFixture, user: User) -> None:
    data = os.urandom(MiB)
    digest = sha256(data)
    url = intent(user, "/VZMOBILE/up.bin", len(data), digest).json()["uploadurls"]["uploadurl"]
    faults_of(cloud).drop_request("upload", after_bytes=200_000)
    with pytest.raises(httpx.TransportError):
        user.http.post(with_query(url, checksum=digest), content=data)
    assert data_files(cloud) == {"blobs": [], "tmp": [], "uploads": []}
    assert file_names(user) == []
    # The session is still open: sending the body again completes the upload.
    r = user.http.post(with_query(url, checksum=digest), content=data)
    assert r.status_code == 201 and r.json()["file"]["checksum"] == digest
    assert data_files(cloud)["blobs"] == [digest]


def test_a_chunk_dropped_mid_body_leaves_no_partial_chunk(
        cloud: CloudFixture, user: User) -> None:
    data = os.urandom(300_000)
    digest = sha256(data)
    urls = intent(user, "/VZMOBILE/c.bin", len(data), digest, chunk=True).json()["uploadurls"]
    post = lambda n, piece: user.http.post(  # noqa: E731
        with_query(urls["uploadurl"], checksum=digest, offset=n), content=piece)
    assert post(1, data[:200_000]).status_code == 201
    faults_of(cloud).drop_request("upload", after_bytes=50_000)
    with pytest.raises(httpx.TransportError):
        post(2, data[200_000:])
    upload_id = urls["commiturl"].rsplit("/", 1)[1]
    assert data_files(cloud)["uploads"] == [f"{upload_id}/1"]  # no half chunk 2
    assert post(2, data[200_000:]).status_code == 201
    r = user.http.post(urls["commiturl"])
    assert r.status_code == 201 and r.json()["file"]["checksum"] == digest


def test_the_sdk_retries_an_upload_whose_body_was_dropped(
        cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    data = os.urandom(100_000)  # unchunked (the SDK fixture chunks from 256 KiB)
    faults_of(cloud).drop_request("upload", after_bytes=30_000)
    file = sdk.upload(io.BytesIO(data), "/VZMOBILE", name="r.bin")
    assert file.checksum == sha256(data)
    assert user.http.get("/files/VZMOBILE/r.bin").content == data
    assert faults_of(cloud).injected["drop_request"] == 1


def test_a_json_body_dropped_changes_nothing_and_is_not_retried(
        cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    faults_of(cloud).drop_request("create_folder", after_bytes=5)
    with pytest.raises(E.NetworkError):
        sdk.create_folder("/VZMOBILE/never")
    assert user.http.get("/metadata/VZMOBILE/never").status_code == 404
    assert faults_of(cloud).injected["drop_request"] == 1


# Token expiry -----------------------------------------------------------------------------


def test_tokens_expire_on_demand_and_the_sdk_refreshes(
        cloud: CloudFixture, user: User, sdk: Cloud) -> None:
    assert sdk.account().id == user.user_id
    faults_of(cloud).expire_tokens()
    r = user.http.get("/account")
    assert r.status_code == 401 and r.json()["error_description"] == "access token expired"
    assert sdk.account().id == user.user_id  # 401 -> one refresh -> retried
    assert sdk._session.refreshes == 1
    assert faults_of(cloud).injected["token_expiry"] == 1


def test_expiring_one_account_leaves_the_others(cloud: CloudFixture, user: User,
                                                other_user: User) -> None:
    account = cloud.server.cloud.store.account_by_username(user.username)
    assert account is not None
    faults_of(cloud).expire_tokens(account.id)
    assert user.http.get("/account").status_code == 401
    assert other_user.http.get("/account").status_code == 200


# A full disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("free", [0, 100_000])
def test_a_full_disk_refuses_an_upload_with_507_and_stores_nothing(
        cloud: CloudFixture, user: User, sdk: Cloud, free: int) -> None:
    faults = faults_of(cloud)
    faults.fill_disk(free)
    data = os.urandom(200_000)
    with pytest.raises(E.ServerError) as info:
        sdk.upload(io.BytesIO(data), "/VZMOBILE", name="full.bin")
    assert info.value.status == 507 and info.value.error == "insufficient_storage"
    assert "storage is full" in info.value.description
    assert faults.injected["disk_full"] == 1  # 507 is not retried
    assert data_files(cloud)["blobs"] == [] and data_files(cloud)["tmp"] == []
    assert file_names(user) == []
    assert user.http.get("/account").json()["usage"]["quotaUsed"] == 0
    faults.free_disk()
    assert sdk.upload(io.BytesIO(data), "/VZMOBILE", name="full.bin").size == len(data)
    assert data_files(cloud)["blobs"] == [sha256(data)]


def test_a_full_disk_mid_chunked_upload_keeps_the_session(
        cloud: CloudFixture, user: User) -> None:
    faults = faults_of(cloud)
    data = os.urandom(300_000)
    digest = sha256(data)
    urls = intent(user, "/VZMOBILE/c.bin", len(data), digest, chunk=True).json()["uploadurls"]
    post = lambda n, piece: user.http.post(  # noqa: E731
        with_query(urls["uploadurl"], checksum=digest, offset=n), content=piece)
    faults.fill_disk(250_000)
    assert post(1, data[:150_000]).status_code == 201
    r = post(2, data[150_000:])
    assert r.status_code == 507 and r.json()["error"] == "insufficient_storage", r.text
    upload_id = urls["commiturl"].rsplit("/", 1)[1]
    assert data_files(cloud)["uploads"] == [f"{upload_id}/1"]
    faults.free_disk()
    assert post(2, data[150_000:]).status_code == 201
    # The disk fills again while the commit assembles the blob: 507, chunks kept.
    faults.fill_disk(100_000)
    r = user.http.post(urls["commiturl"])
    assert r.status_code == 507 and r.json()["error"] == "insufficient_storage"
    assert data_files(cloud) == {"blobs": [], "tmp": [],
                                 "uploads": [f"{upload_id}/1", f"{upload_id}/2"]}
    assert file_names(user) == []
    faults.free_disk()
    r = user.http.post(urls["commiturl"])
    assert r.status_code == 201 and r.json()["file"]["checksum"] == digest
    assert data_files(cloud) == {"blobs": [digest], "tmp": [], "uploads": []}
