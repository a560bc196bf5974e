"""Crash safety of the embedded cloud: ``kill -9`` of ``vzcloud serve`` loses nothing.

``vzcloud serve --data DIR --bind 127.0.0.1:0`` runs as a subprocess. Client threads
drive uploads (unchunked, and chunked with chunks in random order), commits, new
versions, moves and deletes, each keeping a model of what the cloud must hold: a path's
allowed states (a checksum, or absent). An operation the server confirmed (201/200)
fixes the state; one cut short by the kill allows the old and the new state. At a
random moment the server gets SIGKILL; it is restarted on the same data directory and:

- every blob file's SHA-256 equals its name; no temporary file is left;
- every version row (and every file item) names a blob that exists, and every blob is
  named by a version row (startup recovery removed the unreferenced ones);
- every path of the model is in one of its allowed states and every present file's
  content has its checksum: an upload the client saw succeed (201) is there, intact;
- chunked upload sessions interrupted by the kill go on: the chunks the server
  confirmed are still there (a commit names only unconfirmed ones as missing), the rest
  is sent and the commit gives the file with the right checksum.

``VZCLOUD_CRASH_ITERATIONS`` sets the number of kills (CI: 6); ``scripts/crash-server``
runs more. The counts are printed at the end (pytest ``-s``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vzcloud.api.endpoints import BASE_PATH
from vzcloud.server.config import ServerConfig
from vzcloud.server.runner import BackgroundServer

ITERATIONS = int(os.environ.get("VZCLOUD_CRASH_ITERATIONS", "6"))
SEED = int(os.environ.get("VZCLOUD_CRASH_SEED", str(random.randrange(1 << 30))))
WORKERS = 2
CHUNK = 32 * 1024
ABSENT = None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def api_relative(url: str) -> str:
    """An upload or commit URL the server handed out, relative to the API base: the
    restarted server listens on another port."""
    parts = httpx.URL(url)
    path = parts.path.removeprefix(BASE_PATH)
    return path + ("?" + parts.query.decode() if parts.query else "")


class Killed(Exception):
    """The server went away under an operation: its outcome is unknown."""


# The server process -----------------------------------------------------------------------


class ServeProcess:
    """``vzcloud serve`` on a data directory, started and killed at will."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.log_path = root / "serve.log"
        self.env = {**os.environ, "VZCLOUD_CONFIG_DIR": str(root / "config"),
                    "HOME": str(root / "home"), "USER": "crash", "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None
        # Set just before SIGKILL: a request failing after it is expected, before it a bug.
        self.killing = threading.Event()
        self.url = ""
        self.starts = 0

    def start(self) -> str:
        """Start and wait for the ready line (``vzcloud: serving <url> ...``)."""
        self.killing.clear()
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            offset = log.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vzcloud.cli.main", "serve", "--data", str(self.data),
                 "--bind", "127.0.0.1:0", "--log-level", "warning"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
            for line in text.splitlines():
                if line.startswith("vzcloud: serving ") and text.endswith("\n"):
                    self.url = line.split()[2]
                    self.starts += 1
                    return self.url
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"vzcloud serve did not start:\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.killing.set()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def token(self) -> str:
        profile = json.loads((Path(self.env["VZCLOUD_CONFIG_DIR"]) / "profiles" /
                              "local.json").read_text())
        return str(profile["access_token"])

    def log_tail(self) -> str:
        return self.log_path.read_text("utf-8", "replace")[-3000:]


# The client -------------------------------------------------------------------------------


@dataclass
class Session:
    """A chunked upload in progress: what the server confirmed so far."""

    path: str
    data: bytes
    upload_url: str
    commit_url: str
    confirmed: set[int] = field(default_factory=set)

    @property
    def count(self) -> int:
        return max(1, -(-len(self.data) // CHUNK))

    def chunk(self, n: int) -> bytes:
        return self.data[(n - 1) * CHUNK: n * CHUNK]


@dataclass
class Stats:
    operations: Counter[str] = field(default_factory=Counter)
    confirmed: int = 0  # operations the server answered
    unknown: int = 0  # operations the kill cut short (outcome unknown to the client)


class Worker:
    """One client thread with its own folder, its own model and its own random moves."""

    def __init__(self, index: int, seed: int) -> None:
        self.folder = f"/VZMOBILE/w{index}"
        self.rng = random.Random(seed)
        # path -> the states allowed (a checksum, or ABSENT)
        self.model: dict[str, set[str | None]] = {}
        self.sessions: list[Session] = []
        # Moves cut short by a kill: the file must be at exactly one of (src, target).
        self.moves_in_doubt: list[tuple[str, str]] = []
        self.serial = 0
        self.stats = Stats()
        self.http: httpx.Client | None = None

    # Plumbing ---------------------------------------------------------------------------

    def connect(self, url: str, token: str) -> None:
        if self.http is not None:
            self.http.close()
        self.http = httpx.Client(base_url=url + "/cloud/1", timeout=20,
                                 headers={"Authorization": f"Bearer {token}"})

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self.http is not None
        try:
            return self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise Killed(str(exc)) from None

    def new_path(self) -> str:
        self.serial += 1
        return f"{self.folder}/f{self.serial}.bin"

    def known_files(self) -> list[str]:
        """Paths whose state is certain and is a file."""
        return [p for p, states in self.model.items() if len(states) == 1 and
                next(iter(states)) is not ABSENT]

    def payload(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([0, 1, 100, 5000, 40_000, 150_000]))

    # Operations -------------------------------------------------------------------------

    def upload(self, path: str, data: bytes) -> None:
        """Unchunked: intent + POST. The POST's outcome decides the model."""
        old = self.model.get(path, {ABSENT})
        parent, name = path.rsplit("/", 1)
        r = self.call("GET", "/fileupload/intent", params={
            "path": parent, "name": name, "size": len(data), "checksum": sha256(data)})
        assert r.status_code == 200, r.text
        url = api_relative(r.json()["uploadurls"]["uploadurl"])
        self.model[path] = old | {sha256(data)}
        try:
            r = self.call("POST", url, params={"checksum": sha256(data)}, content=data)
        except Killed:
            self.stats.unknown += 1
            raise
        assert r.status_code == 201, r.text
        assert r.json()["file"]["checksum"] == sha256(data)
        self.model[path] = {sha256(data)}
        self.stats.confirmed += 1

    def start_chunked(self, path: str, data: bytes) -> Session:
        parent, name = path.rsplit("/", 1)
        r = self.call("GET", "/fileupload/intent", params={
            "path": parent, "name": name, "size": len(data), "checksum": sha256(data),
            "chunk": "true"})
        assert r.status_code == 200, r.text
        urls = r.json()["uploadurls"]
        session = Session(path, data, api_relative(urls["uploadurl"]),
                          api_relative(urls["commiturl"]))
        self.sessions.append(session)
        self.model.setdefault(path, {ABSENT})
        return session

    def send_chunks(self, session: Session, numbers: list[int]) -> None:
        for n in numbers:
            r = self.call("POST", session.upload_url, content=session.chunk(n),
                          params={"checksum": sha256(session.data), "offset": n})
            assert r.status_code == 201, r.text
            session.confirmed.add(n)

    def commit(self, session: Session) -> None:
        self.model[session.path] = self.model.get(session.path, {ABSENT}) | {
            sha256(session.data)}
        try:
            r = self.call("POST", session.commit_url)
        except Killed:
            self.stats.unknown += 1
            raise
        assert r.status_code == 201, r.text
        assert r.json()["file"]["checksum"] == sha256(session.data)
        self.model[session.path] = {sha256(session.data)}
        self.sessions.remove(session)
        self.stats.confirmed += 1

    def chunked(self, path: str, data: bytes) -> None:
        session = self.start_chunked(path, data)
        order = list(range(1, session.count + 1))
        self.rng.shuffle(order)
        self.send_chunks(session, order)
        self.commit(session)

    def move(self, src: str) -> None:
        target = self.new_path()
        states = self.model[src]
        self.model[target] = states | {ABSENT}
        self.model[src] = states | {ABSENT}
        try:
            r = self.call("POST", "/fops/move", json={"src": src, "target": target})
        except Killed:
            self.stats.unknown += 1
            self.moves_in_doubt.append((src, target))
            raise
        assert r.status_code == 200, r.text
        self.model[target], self.model[src] = states, {ABSENT}
        self.stats.confirmed += 1

    def delete(self, path: str) -> None:
        states = self.model[path]
        self.model[path] = states | {ABSENT}
        try:
            r = self.call("DELETE", "/fops/delete", params={
                "path": path, "purge": self.rng.choice(["true", "false"])})
        except Killed:
            self.stats.unknown += 1
            raise
        assert r.status_code == 200, r.text
        self.model[path] = {ABSENT}
        self.stats.confirmed += 1

    def step(self) -> None:
        files = self.known_files()
        choice = self.rng.choices(
            ["upload", "chunked", "version", "move", "delete", "half"],
            weights=[5, 3, 2, 2, 2, 1])[0]
        if choice in ("version", "move", "delete") and not files:
            choice = "upload"
        self.stats.operations[choice] += 1
        if choice == "upload":
            self.upload(self.new_path(), self.payload())
        elif choice == "chunked":
            self.chunked(self.new_path(), self.rng.randbytes(self.rng.randint(CHUNK + 1,
                                                                              5 * CHUNK)))
        elif choice == "version":
            self.upload(self.rng.choice(files), self.payload())
        elif choice == "move":
            self.move(self.rng.choice(files))
        elif choice == "delete":
            self.delete(self.rng.choice(files))
        else:  # a chunked upload left half done on purpose, continued after the kill
            session = self.start_chunked(self.new_path(), self.rng.randbytes(4 * CHUNK))
            self.send_chunks(session, self.rng.sample(range(1, 5), 2))

    def run_until_killed(self, server: ServeProcess, errors: list[str]) -> None:
        try:
            self.call("POST", "/fops/createfolder", json={
                "path": "/VZMOBILE", "name": self.folder.rsplit("/", 1)[1]})
            while True:
                self.step()
        except Killed as exc:
            if not server.killing.is_set():
                errors.append(f"{self.folder}: a request failed while the server lived: {exc}")
        except BaseException as exc:  # an assertion: report it from the main thread
            if not server.killing.is_set():
                errors.append(f"{self.folder}: {type(exc).__name__}: {exc}")

    # Checks after a restart -------------------------------------------------------------

    def verify(self) -> tuple[int, list[str]]:
        """Resolve every path of the model against the cloud; returns (files verified,
        problems). Each path must be in an allowed state; present files are downloaded
        and hashed. The model keeps the state found."""
        problems: list[str] = []
        verified = 0
        for path, allowed in sorted(self.model.items()):
            r = self.call("GET", "/metadata" + path)
            if r.status_code in (404, 410):
                found: str | None = ABSENT
            else:
                assert r.status_code == 200, r.text
                found = r.json()["file"]["checksum"]
            if found not in allowed:
                problems.append(f"{path}: found {found}, expected one of {allowed}")
                continue
            if found is not ABSENT:
                content = self.call("GET", "/files" + path).content
                if sha256(content) != found:
                    problems.append(f"{path}: content hashes to {sha256(content)}, not {found}")
                verified += 1
            self.model[path] = {found}
        for src, target in self.moves_in_doubt:
            present = [p for p in (src, target) if self.model[p] != {ABSENT}]
            if len(present) != 1:
                problems.append(f"move {src} -> {target} cut short: the file is at {present}")
        self.moves_in_doubt.clear()
        return verified, problems

    def continue_sessions(self, data_dir: Path) -> tuple[int, list[str]]:
        """Finish every chunked upload the kill interrupted: each chunk the server
        confirmed must still be on disk; the rest is sent and the commit must give the
        file with the right checksum (which covers the surviving chunks' content)."""
        problems: list[str] = []
        done = 0
        for session in list(self.sessions):
            folder = data_dir / "uploads" / session.commit_url.rsplit("/", 1)[1]
            if not folder.is_dir():  # the commit in flight at the kill completed
                if self.model[session.path] != {sha256(session.data)}:
                    problems.append(f"{session.path}: session gone, file not committed")
                self.sessions.remove(session)
                continue
            present = {int(p.name) for p in folder.iterdir() if p.name.isdigit()}
            if not session.confirmed <= present:
                problems.append(f"{session.path}: confirmed chunks lost: "
                                f"{sorted(session.confirmed - present)}")
            self.send_chunks(session, sorted(set(range(1, session.count + 1)) -
                                             session.confirmed))
            r = self.call("POST", session.commit_url)
            if r.status_code != 201 or r.json()["file"]["checksum"] != sha256(session.data):
                problems.append(f"{session.path}: commit after restart: {r.status_code} "
                                f"{r.text[:200]}")
                continue
            self.model[session.path] = {sha256(session.data)}
            self.sessions.remove(session)
            done += 1
        return done, problems


def check_data_dir(data: Path) -> tuple[int, list[str]]:
    """Blob files against their names and against the database; returns (blobs, problems)."""
    problems: list[str] = []
    blobs = {p.name: p for p in (data / "blobs").rglob("*") if p.is_file()}
    for name, p in blobs.items():
        if sha256(p.read_bytes()) != name:
            problems.append(f"blob {name} has other content (partial?)")
    leftovers = list((data / "tmp").iterdir())
    if leftovers:
        problems.append(f"temporary files after recovery: {leftovers}")
    db = sqlite3.connect(f"file:{data / 'cloud.db'}?mode=ro", uri=True)
    try:
        versions = {r[0] for r in db.execute("SELECT DISTINCT checksum FROM versions")}
        items = {r[0] for r in db.execute(
            "SELECT DISTINCT checksum FROM items WHERE is_folder=0 AND checksum IS NOT NULL")}
    finally:
        db.close()
    for checksum in sorted((versions | items) - blobs.keys()):
        problems.append(f"a version or file names the missing blob {checksum}")
    for checksum in sorted(items - versions):
        problems.append(f"a file's checksum {checksum} has no version row")
    for checksum in sorted(blobs.keys() - versions):
        problems.append(f"blob {checksum} is named by no version")
    return len(blobs), problems


@dataclass
class Report:
    iterations: int = 0
    kills: int = 0
    files_verified: int = 0
    blobs_checked: int = 0
    sessions_continued: int = 0
    confirmed_operations: int = 0
    interrupted_operations: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"crash: seed {SEED}, {self.iterations} iterations, {self.kills} kills, "
                f"{self.confirmed_operations} confirmed and {self.interrupted_operations} "
                f"interrupted operations, {self.files_verified} files verified, "
                f"{self.blobs_checked} blobs checked, {self.sessions_continued} chunked "
                f"sessions continued, {len(self.problems)} lost or inconsistent")


def crash_loop(root: Path, iterations: int, seed: int) -> Report:
    rng = random.Random(seed)
    server = ServeProcess(root)
    workers = [Worker(i, rng.randrange(1 << 30)) for i in range(WORKERS)]
    report = Report()
    server.start()
    try:
        for _ in range(iterations):
            token = server.token()
            for w in workers:
                w.connect(server.url, token)
            errors: list[str] = []
            threads = [threading.Thread(target=w.run_until_killed, args=(server, errors))
                       for w in workers]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.05, 0.8))
            server.kill()
            report.kills += 1
            for t in threads:
                t.join(timeout=60)
            report.problems += errors

            server.start()
            for w in workers:
                w.connect(server.url, server.token())
            blobs, problems = check_data_dir(server.data)
            report.blobs_checked += blobs
            report.problems += problems
            for w in workers:
                verified, problems = w.verify()
                report.files_verified += verified
                report.problems += problems
                continued, problems = w.continue_sessions(server.data)
                report.sessions_continued += continued
                report.problems += problems
            report.iterations += 1
            assert not report.problems, "\n".join(report.problems) + "\n" + server.log_tail()
    finally:
        for w in workers:
            report.confirmed_operations += w.stats.confirmed
            report.interrupted_operations += w.stats.unknown
            if w.http is not None:
                w.http.close()
        server.stop()
    return report


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    report = crash_loop(tmp_path, ITERATIONS, SEED)
    print("\n" + report.line())
    assert report.kills == ITERATIONS and not report.problems
    assert report.files_verified > 0


# Upload sessions across restarts, in-process ---------------------------------------------


def test_an_expired_upload_session_is_gone_after_restart(tmp_path: Path) -> None:
    """A session's chunks survive a restart until it expires; then recovery removes them."""
    config = ServerConfig(data_dir=tmp_path / "cloud")
    from vzcloud.server.admin import create_client, create_user, tokens_for

    def serve() -> Iterator[tuple[BackgroundServer, httpx.Client]]:
        server = BackgroundServer(config).start()
        client = create_client(server.cloud, redirect_uri="http://127.0.0.1:9/cb")
        if server.cloud.store.account_by_username("u") is None:
            create_user(server.cloud, "u")
        token = tokens_for(server.cloud, "u", client.client_id).access_token
        with httpx.Client(base_url=server.url + "/cloud/1",
                          headers={"Authorization": f"Bearer {token}"}) as http:
            yield server, http
        server.stop()

    data = os.urandom(3 * CHUNK)
    with contextlib.contextmanager(serve)() as (server, http):
        urls = http.get("/fileupload/intent", params={
            "path": "/VZMOBILE", "name": "s.bin", "size": len(data), "checksum": sha256(data),
            "chunk": "true"}).json()["uploadurls"]
        urls = {k: api_relative(v) for k, v in urls.items()}
        for n in (1, 3):
            r = http.post(urls["uploadurl"], params={"checksum": sha256(data), "offset": n},
                          content=data[(n - 1) * CHUNK: n * CHUNK])
            assert r.status_code == 201
        # A crash leaves a half-written chunk file behind.
        upload_id = urls["commiturl"].rsplit("/", 1)[1]
        (config.data_dir / "uploads" / upload_id / "2.deadbeef.part").write_bytes(b"half")
    with contextlib.contextmanager(serve)() as (server, http):
        assert sorted(p.name for p in (config.data_dir / "uploads" / upload_id).iterdir()) == [
            "1", "3"]  # the chunks survived; the half-written part did not
        r = http.post(urls["commiturl"])
        assert r.status_code == 400 and r.json()["error_description"] == "missing chunks: 2"
        with server.cloud.store.tx() as db:  # let the session expire
            db.execute("UPDATE uploads SET expires=?", (time.time() - 1,))
    with contextlib.contextmanager(serve)() as (server, http):
        assert not (config.data_dir / "uploads" / upload_id).exists()
        r = http.post(urls["commiturl"])
        assert r.status_code == 404 and "no upload session" in r.json()["error_description"]
