"""fullview as a stream: the answer parsed piece by piece and handed over in batches.

A whole fullview of a 100,000-file account is a ~50 MB JSON document; read whole, then
decoded (``json.loads``) and turned into models, it costs the client over 200 MB at its
peak. ``fullview(etag, sink=...)`` instead streams the body (``flows.Copy``) through
``FullviewParser``, which decodes one item at a time (the C scanner of the standard
``json`` module, ``JSONDecoder.raw_decode``, on a small window of the text) and hands
each batch of models to the caller's ``FullviewSink``: memory follows one piece of the
body (``Copy.block``), not the account. No dependency is added: only the outer shape of
the document (``{"data": {"file": [...], "folder": [...], "deleted": {"path": [...]}}}``,
in any key order, a lone item in place of a one-item list, unknown keys skipped) is
walked by hand.

Threads: ``feed`` runs where ``Copy`` writes (a worker thread in AsyncCloud), ``flush``
where ``Copy`` reports progress (the caller's thread or event loop): the sink is only
ever called from there, so it may touch state of the caller's thread (a mount's SQLite
connection).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from typing import Any, Protocol

from vzcloud.api import errors as E
from vzcloud.api.models import CloudFile, CloudFolder, FullviewResult
from vzcloud.api.protocol import ETAG_HEADER, HttpResponse
from vzcloud.sdk.flows import Copy, Flow, Session, TransportFailure, call_flow

# Where the items are: lists (or a lone item) whose elements are handed over, and the
# objects walked to reach them. The answer may lack the ``data`` wrapper.
_ITEM_LISTS = {
    ("data", "file"): "file", ("file",): "file",
    ("data", "folder"): "folder", ("folder",): "folder",
    ("data", "deleted", "path"): "deleted", ("deleted", "path"): "deleted",
}
_WALKED = {(), ("data",), ("data", "deleted"), ("deleted",)} | set(_ITEM_LISTS)
_WHITESPACE = " \t\n\r"
# Unparsed text the parser keeps at most: far more than any one item needs. More means
# the answer is not what we expect (it would otherwise be held whole).
MAX_PENDING = 16 << 20


class FullviewSink(Protocol):
    """Receives a streamed fullview (on the caller's thread or event loop)."""

    def add(self, files: list[CloudFile], folders: list[CloudFolder],
            deleted: list[str]) -> None:
        """The next items of the answer, in document order within each kind."""
        ...

    def restart(self) -> None:
        """The answer broke off and is asked for again from the start: forget every
        item added so far."""
        ...


def _bad(why: str) -> E.CloudError:
    return E.CloudError(f"fullview: unexpected response body ({why})", status=None,
                        error="bad_response")


class _Frame:
    __slots__ = ("is_object", "path", "expect", "key")

    def __init__(self, is_object: bool, path: tuple[str, ...]) -> None:
        self.is_object = is_object
        self.path = path
        # object: "key_or_end", "key", "colon", "value", "comma_or_end";
        # array: "value_or_end", "value", "comma_or_end".
        self.expect = "key_or_end" if is_object else "value_or_end"
        self.key = ""


class FullviewParser:
    """Incremental parser of a fullview body: ``feed`` bytes as they come, ``take`` the
    items parsed so far, ``close`` at the end (raises CloudError("bad_response") when
    the document is incomplete or malformed)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self._text = ""
        self._pos = 0
        self._stack: list[_Frame] = []
        self._started = False
        self._final = False
        self.files: list[CloudFile] = []
        self.folders: list[CloudFolder] = []
        self.deleted: list[str] = []

    def feed(self, data: bytes) -> None:
        try:
            text = self._decoder.decode(data, final=self._final)
        except UnicodeDecodeError as exc:
            raise _bad(str(exc)) from None
        self._text = self._text[self._pos:] + text
        self._pos = 0
        self._run()
        if len(self._text) - self._pos > MAX_PENDING:
            raise _bad(f"no item ends within {MAX_PENDING} characters")

    def close(self) -> None:
        self._final = True
        self.feed(b"")
        rest = self._text[self._pos:].strip(_WHITESPACE)
        if not self._started or self._stack or rest:
            raise _bad("incomplete or malformed JSON")

    def take(self) -> tuple[list[CloudFile], list[CloudFolder], list[str]]:
        out = (self.files, self.folders, self.deleted)
        self.files, self.folders, self.deleted = [], [], []
        return out

    # The walk ---------------------------------------------------------------------------

    def _skip_ws(self) -> int:
        text, pos = self._text, self._pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        self._pos = pos
        return pos

    def _run(self) -> None:
        while True:
            pos = self._skip_ws()
            if pos >= len(self._text):
                return
            char = self._text[pos]
            if not self._stack:
                if self._started:
                    raise _bad("text after the document")
                if char != "{":
                    raise _bad("not a JSON object")
                self._started = True
                self._stack.append(_Frame(True, ()))
                self._pos += 1
                continue
            frame = self._stack[-1]
            if frame.expect == "comma_or_end":
                if char == ",":
                    frame.expect = "key" if frame.is_object else "value"
                elif char == ("}" if frame.is_object else "]"):
                    self._stack.pop()
                    self._ended_value()
                else:
                    raise _bad(f"unexpected {char!r}")
                self._pos += 1
            elif frame.is_object and frame.expect in ("key_or_end", "key"):
                if char == "}" and frame.expect == "key_or_end":
                    self._stack.pop()
                    self._ended_value()
                    self._pos += 1
                    continue
                if char != '"':
                    raise _bad(f"expected a key, got {char!r}")
                try:
                    key, end = json.decoder.scanstring(self._text, pos + 1)  # type: ignore[attr-defined]
                except json.JSONDecodeError:
                    if self._final:
                        raise _bad("unterminated key") from None
                    return  # the key goes on in the next piece
                frame.key, frame.expect, self._pos = key, "colon", end
            elif frame.is_object and frame.expect == "colon":
                if char != ":":
                    raise _bad(f"expected ':', got {char!r}")
                frame.expect = "value"
                self._pos += 1
            elif not frame.is_object and frame.expect == "value_or_end" and char == "]":
                self._stack.pop()
                self._ended_value()
                self._pos += 1
            elif not self._value(frame, char):
                return

    def _ended_value(self) -> None:
        if self._stack:
            self._stack[-1].expect = "comma_or_end"

    def _value(self, frame: _Frame, char: str) -> bool:
        """Parse the value at ``self._pos``; False when it goes on in the next piece."""
        path = frame.path + (frame.key,) if frame.is_object else frame.path
        kind = _ITEM_LISTS.get(path) if frame.is_object else _ITEM_LISTS.get(frame.path)
        if path in _WALKED and (char == "{" and path not in _ITEM_LISTS
                                or char == "[" and frame.is_object and kind is not None):
            self._stack.append(_Frame(char == "{", path))
            self._pos += 1
            return True
        try:
            value, end = self._json.raw_decode(self._text, self._pos)
        except json.JSONDecodeError as exc:
            if self._final:
                raise _bad(str(exc)) from None
            return False
        if end >= len(self._text) and not self._final:
            return False  # a number at the end may go on ("12" of "123")
        self._pos = end
        frame.expect = "comma_or_end"
        if kind is not None:
            self._item(kind, value)
        return True

    def _item(self, kind: str, value: Any) -> None:
        try:
            if kind == "deleted":
                if value is not None and value != "":
                    self.deleted.append(str(value))
            elif not isinstance(value, Mapping):
                raise TypeError(f"a {kind} is not an object")
            elif kind == "file":
                self.files.append(CloudFile.from_json(value))
            else:
                self.folders.append(CloudFolder.from_json(value))
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(str(exc)) from None


def fullview_flow(session: Session, args: Mapping[str, Any], sink: FullviewSink,
                  ) -> Flow[FullviewResult]:
    """fullview with its items streamed to ``sink`` (see the module docstring); the
    result has the etag, ``changed`` and no items. An answer that breaks off is asked
    for again (fullview is idempotent), after ``sink.restart()``, within the session's
    retry policy; a malformed one raises CloudError("bad_response")."""
    failures = 0
    while True:
        response: FullviewResult | HttpResponse = yield from call_flow(
            session, "fullview", args, stream=True)
        if isinstance(response, FullviewResult):  # 412: nothing changed
            return response
        parser = FullviewParser()

        def hand_over(_: int, parser: FullviewParser = parser) -> None:
            sink.add(*parser.take())

        copied = yield Copy(response, write=parser.feed, progress=hand_over)
        if isinstance(copied, TransportFailure):
            failures += 1
            if failures >= session.retry.max_attempts:
                raise copied.error
            sink.restart()
            continue
        parser.close()
        sink.add(*parser.take())
        return FullviewResult(etag=response.header(ETAG_HEADER), changed=True)
