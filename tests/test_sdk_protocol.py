"""The pure layers, without a network: request building and response parsing
(``vzcloud.api.protocol``) and the call flows (``vzcloud.sdk.flows``/``transfer``), driven
here by hand with scripted outcomes, as a client's driver would drive them."""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import pytest

from vzcloud.api import errors as E
from vzcloud.api.models import CloudFile, FullviewResult, Token
from vzcloud.api.protocol import (
    HttpResponse,
    build_request,
    content_url,
    parse_response,
    parse_retry_after,
)
from vzcloud.sdk.flows import (
    CONNECT_FAILED,
    Blocking,
    Copy,
    Notify,
    Refresh,
    RetryPolicy,
    Send,
    Session,
    Sleep,
    TransportFailure,
    call_flow,
    refresh_flow,
)
from vzcloud.sdk.transfer import LocalSink, download_flow

BASE = "https://cloud.example"


# Building requests ----------------------------------------------------------------------------


def test_cloud_paths_keep_slashes_and_quote_everything_else() -> None:
    req = build_request("metadata", {"path": "/VZMOBILE/a b+c%/é?.txt"}, BASE, "tok")
    assert req.method == "GET"
    assert req.url == BASE + "/cloud/1/metadata/VZMOBILE/a%20b%2Bc%25/%C3%A9%3F.txt"
    assert req.headers["Authorization"] == "Bearer tok"
    assert build_request("metadata", {}, BASE).url == BASE + "/cloud/1/metadata/"


def test_segments_quote_slashes() -> None:
    req = build_request("playlist", {"uid": "a/b c"}, BASE, "t")
    assert req.url == BASE + "/cloud/1/playlists/a%2Fb%20c"


def test_query_encoding_sort_booleans_lists_and_none() -> None:
    req = build_request("trash", {"virtualfolder": "VZMOBILE", "sort": "name+desc",
                                  "deep": True, "page": 2, "filter": None}, BASE, "t")
    assert req.url.endswith("/trash?virtualfolder=VZMOBILE&sort=name%2Bdesc&page=2&deep=true")
    req = build_request("unfavorite", {"uri": ["dv-file://u:V/a b", "x&y"],
                                       "createVersion": False}, BASE, "t")
    assert req.url.endswith("?uri=dv-file%3A%2F%2Fu%3AV%2Fa%20b&uri=x%26y&createVersion=false")
    req = build_request("delete", {"path": "/VZMOBILE/a"}, BASE, "t")
    assert req.url.endswith("/fops/delete?path=%2FVZMOBILE%2Fa")


def test_json_form_header_and_bytes_bodies() -> None:
    req = build_request("copy", {"src": "/V/a", "target": "/V/b", "safe": True}, BASE, "t")
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.content) == {"src": "/V/a", "target": "/V/b", "safe": True}  # type: ignore[arg-type]
    req = build_request("create_contact", {"contact": {"firstname": "A"}}, BASE, "t")
    assert json.loads(req.content) == {"firstname": "A"}  # type: ignore[arg-type]
    req = build_request("token", {"grant_type": "refresh_token", "refresh_token": "r+/=",
                                  "client_id": "c", "client_secret": "s"}, BASE, "ignored")
    assert req.content == b"grant_type=refresh_token&refresh_token=r%2B%2F%3D&client_id=c&client_secret=s"
    assert "Authorization" not in req.headers  # client auth travels in the form
    req = build_request("fullview", {"X-Header-ETag": "e-1"}, BASE, "t")
    assert req.headers["X-Header-ETag"] == "e-1" and req.url.endswith("/fullview")


def test_server_given_urls_keep_their_query() -> None:
    url = "http://h:1/cloud/1/upload/abc?chunk=true"
    req = build_request("upload", {"checksum": "ff", "chunk": True, "offset": 3}, BASE, "t",
                        url=url, content=b"12345")
    assert req.url == url + "&checksum=ff&offset=3"
    assert req.headers["Content-Length"] == "5" and req.content == b"12345"


def test_bad_calls() -> None:
    with pytest.raises(TypeError):
        build_request("account", {"nope": 1}, BASE)
    with pytest.raises(E.BadRequestError):
        build_request("metadata", {"path": "VZMOBILE"}, BASE)
    with pytest.raises(E.BadRequestError):
        build_request("playlist", {"uid": ""}, BASE)


def test_content_url() -> None:
    url = content_url("download", {"path": "/V/a b.txt"}, BASE, "t+k")
    assert url == BASE + "/cloud/1/files/V/a%20b.txt?access-token=t%2Bk"
    with pytest.raises(ValueError):
        content_url("account", {}, BASE, "t")


# Parsing responses ---------------------------------------------------------------------------


def resp(status: int, body: Any = None, **headers: str) -> HttpResponse:
    content = json.dumps(body).encode() if body is not None else b""
    return HttpResponse(status, {k.lower().replace("_", "-"): v for k, v in headers.items()},
                        content)


def test_errors_through_the_one_table() -> None:
    with pytest.raises(E.NotFoundError) as info:
        parse_response("metadata", resp(404, {"error": "not_found",
                                              "error_description": "no /V/x"}))
    assert info.value.description == "no /V/x" and info.value.status == 404
    with pytest.raises(E.RateLimitedError) as rate:
        parse_response("account", resp(429, {"error": "slow down"}, Retry_After="7"))
    assert rate.value.retry_after == 7
    with pytest.raises(E.ServerError) as bad:
        parse_response("account", HttpResponse(500, {}, b"<html>oops</html>"))
    assert bad.value.description == "HTTP 500"
    with pytest.raises(E.OutOfSyncError):
        parse_response("fullview", resp(205), {"X-Header-ETag": "old"})
    with pytest.raises(E.CloudError) as shape:
        parse_response("upload_intent", resp(200, ["not", "an", "object"]))
    assert shape.value.error == "bad_response"


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = formatdate(1_000_060, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(60)
    assert parse_retry_after("-5") == 0.0


def test_fullview_results() -> None:
    body = {"data": {"file": [{"name": "a", "parentPath": "/V"}], "folder": [],
                     "deleted": {"path": ["/V/old"]}}}
    result = parse_response("fullview", resp(200, body, X_Header_ETag="e-2"))
    assert isinstance(result, FullviewResult)
    assert result.etag == "e-2" and result.deleted == ["/V/old"] and result.files[0].path == "/V/a"
    same = parse_response("fullview", resp(412), {"X-Header-ETag": "e-2"})
    assert same == FullviewResult(etag="e-2", changed=False)


# Call flows, driven by hand ---------------------------------------------------------------------


def session(**kwargs: Any) -> Session:
    s = Session("id", "secret", "http://cb", "old-access", "old-refresh", base_url=BASE,
                rng=random.Random(1), **kwargs)
    s.retry = RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=8.0, max_total=60.0)
    return s


def drive(flow: Any, answer: Callable[[Any], Any]) -> tuple[Any, list[Any]]:
    """Run ``flow``, answering each instruction with ``answer(instr)``; returns the
    result and the instructions seen. An exception from ``answer`` is thrown in."""
    seen: list[Any] = []
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            instr = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value, seen
        seen.append(instr)
        value, error = None, None
        try:
            value = answer(instr)
        except Exception as exc:
            error = exc


def scripted(*responses: Any) -> Callable[[Any], Any]:
    queue = list(responses)

    def answer(instr: Any) -> Any:
        if isinstance(instr, Send):
            return queue.pop(0)
        if isinstance(instr, Blocking):
            return instr.fn()
        return None

    return answer


ACCOUNT = {"id": "u", "usage": {"quota": 10, "quotaUsed": 1}}
UNSENT = TransportFailure(E.NetworkError("refused", error=CONNECT_FAILED), reached_server=False)
LOST = TransportFailure(E.NetworkError("reset"), reached_server=True)


def test_backoff_is_jittered_exponential_and_honours_retry_after() -> None:
    result, seen = drive(call_flow(session(), "account", {}),
                         scripted(resp(503), resp(502), resp(429, Retry_After="5"),
                                  resp(200, ACCOUNT)))
    assert result.id == "u"
    sleeps = [i.seconds for i in seen if isinstance(i, Sleep)]
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0 and sleeps[2] == 5.0


def test_attempts_are_bounded() -> None:
    sent: list[Any] = []
    answer = scripted(*[resp(503)] * 10)
    with pytest.raises(E.ServiceUnavailableError):
        drive(call_flow(session(), "account", {}), lambda i: (sent.append(i), answer(i))[1])
    assert sum(isinstance(i, Send) for i in sent) == 4


def test_total_time_is_bounded_on_the_session_clock() -> None:
    now = [0.0]
    s = session(clock=lambda: now[0])

    def answer(instr: Any) -> Any:
        if isinstance(instr, Sleep):
            now[0] += instr.seconds
            return None
        now[0] += 40  # every request takes 40 s
        return resp(504)

    sent: list[Any] = []
    with pytest.raises(E.GatewayTimeoutError):
        drive(call_flow(s, "account", {}), lambda i: (sent.append(i), answer(i))[1])
    assert sum(isinstance(i, Send) for i in sent) == 2  # no new try starts after 60 s


def test_transport_failures_and_idempotence() -> None:
    # Idempotent: a lost response is retried.
    result, _ = drive(call_flow(session(), "account", {}), scripted(LOST, resp(200, ACCOUNT)))
    assert result.id == "u"
    # Not idempotent: retried only when the request never left.
    args = {"src": "/V/a", "target": "/V/b"}
    with pytest.raises(E.NetworkError):
        drive(call_flow(session(), "copy", args), scripted(LOST, resp(200, {"file": {}})))
    result, seen = drive(call_flow(session(), "copy", args),
                         scripted(UNSENT, UNSENT, resp(200, {"file": {"name": "b"}})))
    assert isinstance(result, CloudFile) and sum(isinstance(i, Send) for i in seen) == 3
    with pytest.raises(E.ServiceUnavailableError):
        drive(call_flow(session(), "copy", args), scripted(resp(503), resp(200, {})))


def test_401_refreshes_once_and_retries_with_the_new_token() -> None:
    s = session()

    def answer(instr: Any) -> Any:
        if isinstance(instr, Refresh):
            assert instr.stale == "old-access"
            s.access_token = "new-access"
            return Token(access_token="new-access")
        if instr.request.headers["Authorization"] == "Bearer new-access":
            return resp(200, ACCOUNT)
        return resp(401)

    result, seen = drive(call_flow(s, "account", {}), answer)
    assert result.id == "u" and sum(isinstance(i, Refresh) for i in seen) == 1
    with pytest.raises(E.UnauthorizedError):
        drive(call_flow(session(), "account", {}),
              lambda i: Token(access_token="x") if isinstance(i, Refresh) else resp(401))
    with pytest.raises(E.UnauthorizedError):  # no way to refresh: the 401 itself
        drive(call_flow(session(), "account", {}),
              lambda i: None if isinstance(i, Refresh) else resp(401))


def test_refresh_flow_coalesces_and_never_resends_a_refused_token() -> None:
    s = session()
    s.access_token = "someone-else-refreshed"
    token, seen = drive(refresh_flow(s, stale="old-access"), scripted())
    assert token.access_token == "someone-else-refreshed" and seen == []
    s = session()
    rotated = {"access_token": "a2", "refresh_token": "r2", "expires_in": 9}
    token, seen = drive(refresh_flow(s, stale="old-access"), scripted(resp(200, rotated)))
    assert (s.access_token, s.refresh_token) == ("a2", "r2")
    assert b"refresh_token=old-refresh" in seen[0].request.content
    assert isinstance(seen[-1], Notify) and seen[-1].token == token
    s = session()
    with pytest.raises(E.UnauthorizedError):
        drive(refresh_flow(s, stale="old-access"),
              scripted(resp(400, {"error": "invalid_grant"})))
    with pytest.raises(E.UnauthorizedError):
        drive(refresh_flow(s, stale="old-access"), scripted())  # nothing is sent again


# Downloads, driven by hand -------------------------------------------------------------------------


def test_download_resumes_a_broken_body_and_checks_the_checksum() -> None:
    data = bytes(range(256)) * 40
    meta = {"file": {"name": "f", "parentPath": "/V", "size": len(data),
                     "checksum": hashlib.sha256(data).hexdigest()}}
    out = io.BytesIO()
    ranges: list[str | None] = []
    progress: list[int] = []

    def answer(instr: Any) -> Any:
        if isinstance(instr, Blocking):
            return instr.fn()
        if isinstance(instr, Sleep):
            return None
        if isinstance(instr, Send):
            if instr.request.endpoint == "metadata":
                return resp(200, meta)
            rng = instr.request.headers.get("Range")
            ranges.append(rng)
            start = int(rng[6:-1]) if rng else 0
            headers = {"content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return HttpResponse(206 if rng else 200, headers if rng else {}, stream=start)
        assert isinstance(instr, Copy)
        start = instr.response.stream
        if start == 0:  # the first body breaks off after 1000 bytes
            instr.write(data[:1000])
            instr.progress(1000)  # type: ignore[misc]
            return LOST
        instr.write(data[start:])
        return len(data) - start

    result, _ = drive(download_flow(session(), "/V/f", LocalSink(out, resume=True),
                                    progress=lambda d, t: progress.append(d)), answer)
    assert out.getvalue() == data and result.path == "/V/f"
    assert ranges == [None, "bytes=1000-"]
    assert progress[:2] == [0, 1000]

    bad = {"file": {**meta["file"], "checksum": "0" * 64}}
    with pytest.raises(E.CloudError) as info:
        drive(download_flow(session(), "/V/f", LocalSink(io.BytesIO(), resume=True)),
              lambda i: resp(200, bad) if isinstance(i, Send) and i.request.endpoint == "metadata"
              else answer(i))
    assert info.value.error == "checksum_mismatch"
