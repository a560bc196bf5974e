"""The everyday commands (account, ls, get, put, mkdir, mv, cp, rm, search, trash, share,
shares, unshare, tags, contacts, playlist), run for real: ``python -m vzcloud.cli.main``
in a subprocess against one embedded cloud per module, each test as a user of its own
with a profile in its own config directory. Each command: its success path, and a bad
input that exits with the documented code and a one-line error, without a traceback.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import pty
import select
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from vzcloud import Cloud, Contact, FolderListing
from vzcloud.cli import EXIT_AUTH, EXIT_FAILED, EXIT_NOT_FOUND, EXIT_USAGE
from vzcloud.cli.main import main

from .cli_helpers import CLI, cli_env, module_cloud, save_profile, vzcloud_command
from .conftest import Cloud as CloudFixture
from .conftest import User

_numbers = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudFixture]:
    with module_cloud(tmp_path_factory) as cloud:
        yield cloud


@dataclass
class World:
    cli: CLI
    sdk: Cloud  # the same user, for setting things up and checking them
    user: User
    server: CloudFixture
    config: Path


@pytest.fixture
def world(server: CloudFixture, tmp_path: Path) -> Iterator[World]:
    user = server.new_user(f"user{next(_numbers)}")
    config = tmp_path / "config"
    save_profile(config, "test", server, user.access_token, user.refresh_token)
    work = tmp_path / "work"
    work.mkdir()
    client = server.client
    with Cloud(client.client_id, client.client_secret, client.redirect_uri, user.access_token,
               user.refresh_token, base_url=server.url) as sdk:
        yield World(CLI(cli_env(config), work), sdk, user, server, config)
    user.http.close()


COMMANDS = ["account", "ls", "get", "put", "mkdir", "mv", "cp", "rm", "search", "trash",
            "trash list", "trash restore", "trash empty", "share", "shares", "unshare", "tags",
            "contacts", "playlist", "playlist list", "playlist show", "playlist create",
            "playlist add", "playlist remove", "playlist delete", "login", "logout",
            "profiles", "profiles list", "profiles default"]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # In this process (a subprocess each would take half a minute); the subprocess runs
    # below show that the installed entry point gets the same parser.
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            main([*command.split(), "--help"])
        assert exited.value.code == 0, command
        text = capsys.readouterr().out
        assert text.startswith(f"usage: vzcloud {command}") and "--debug" in text, command
    top = subprocess.run(vzcloud_command("--help"), env=cli_env(tmp_path), capture_output=True,
                         text=True, timeout=60)
    assert top.returncode == 0
    for command in COMMANDS:
        assert f"    {command.split()[0]} " in top.stdout
    sub = subprocess.run(vzcloud_command("playlist", "create", "--help"), env=cli_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0 and "--type {image,music,video,image-video}" in sub.stdout


def names(listing: FolderListing) -> list[str]:
    return [f.name + "/" for f in listing.folders] + [f.name for f in listing.files]


def test_account(world: World) -> None:
    world.sdk.upload(io.BytesIO(b"x" * 3000), "/VZMOBILE", name="a.bin")
    text, as_json, missing = world.cli.expect_all(
        (0, "account"),
        (0, "account", "--json", "--profile", "test"),
        (EXIT_NOT_FOUND, "account", "--profile", "nobody"))
    assert f"account {world.user.user_id}" in text
    assert "2.9 KiB of 50.0 GiB" in text
    assert json.loads(as_json) == {"id": world.user.user_id, "quota": 50 << 30,
                                   "quota_used": 3000}
    assert "no profile 'nobody'; sign in with 'vzcloud login --profile nobody'" in missing


def test_revoked_credentials_are_exit_3(world: World) -> None:
    for token in (world.user.refresh_token, world.user.access_token):
        httpx.post(world.server.api + "/oauth2/revoke", data={
            "token": token, "client_id": world.server.client.client_id,
            "client_secret": world.server.client.client_secret}).raise_for_status()
    line = world.cli.fails(EXIT_AUTH, "ls")
    assert "refused the credentials of profile 'test'" in line
    assert "sign in again with 'vzcloud login --profile test'" in line
    assert world.user.access_token not in line


def test_ls(world: World) -> None:
    sdk = world.sdk
    sdk.create_folder("/VZMOBILE/docs")
    sdk.upload(io.BytesIO(b"hello"), "/VZMOBILE/docs", name="note.txt")
    sdk.create_folder("/VZMOBILE/docs/sub")
    sdk.tag(sdk.file_metadata("/VZMOBILE/docs/note.txt"), "red,blue")
    top, docs, long, as_json, missing, invalid = world.cli.expect_all(
        (0, "ls"),
        (0, "ls", "VZMOBILE/docs"),
        (0, "ls", "-l", "/VZMOBILE/docs"),
        (0, "ls", "--json", "/VZMOBILE/docs"),
        (EXIT_NOT_FOUND, "ls", "/VZMOBILE/nothing"),
        (EXIT_USAGE, "ls", "/VZMOBILE//x"))
    assert "VZMOBILE/" in top.splitlines()
    assert docs.splitlines() == ["sub/", "note.txt"]
    folder, file = long.splitlines()
    assert folder.startswith("d ") and folder.endswith(" sub/") and "0 items" in folder
    assert file.startswith("- ") and "5 B" in file and file.endswith("note.txt  [red,blue]")
    listing = json.loads(as_json)
    assert [f["name"] for f in listing["folders"]] == ["sub"]
    assert [(f["name"], f["size"]) for f in listing["files"]] == [("note.txt", 5)]
    assert "/VZMOBILE/nothing" in missing and "'vzcloud ls'" in missing
    assert "invalid name" in invalid


def test_put_and_get(world: World) -> None:
    cli, sdk, work = world.cli, world.sdk, world.cli.cwd
    data = os.urandom(300_000)
    (work / "photo.bin").write_bytes(data)
    (work / "tree" / "inner").mkdir(parents=True)
    (work / "tree" / "a.txt").write_text("a")
    (work / "tree" / "inner" / "b.txt").write_text("bb")
    (work / "down").mkdir()
    sdk.create_folder("/VZMOBILE/up")
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(cli, "put", "photo.bin")
        tree = pool.submit(cli.ok, "put", "-r", "tree", "/VZMOBILE/up")
    out = one.result()
    assert out.returncode == 0, out.stderr
    assert out.stdout == "uploaded photo.bin (293.0 KiB) to /VZMOBILE/photo.bin\n"
    # Off a terminal, progress is plain lines on stderr.
    assert "/VZMOBILE/photo.bin: 100% (293.0 KiB of 293.0 KiB)" in out.stderr.splitlines()
    assert "\r" not in out.stderr
    assert tree.result().splitlines()[-1] == "uploaded 2 files (3 B) to /VZMOBILE/up/tree"
    assert names(sdk.metadata("/VZMOBILE/up/tree")) == ["inner/", "a.txt"]
    assert names(sdk.metadata("/VZMOBILE/up/tree/inner")) == ["b.txt"]

    (work / "photo.bin").unlink()
    results = cli.expect_all(
        (0, "get", "/VZMOBILE/photo.bin"),
        (0, "get", "/VZMOBILE/up/tree/inner/b.txt", "down"),
        (0, "get", "/VZMOBILE/up/tree/a.txt", "-"),
        (EXIT_NOT_FOUND, "put", "missing.txt"),
        (EXIT_USAGE, "put", "tree"),
        (EXIT_NOT_FOUND, "put", "tree/a.txt", "/VZMOBILE/nowhere"),
        (EXIT_USAGE, "get", "/VZMOBILE/up"),
        (EXIT_NOT_FOUND, "get", "/VZMOBILE/missing.bin"),
        (EXIT_NOT_FOUND, "get", "/VZMOBILE/up/tree/a.txt", "no/such/dir/x"))
    assert results[0] == f"downloaded /VZMOBILE/photo.bin (293.0 KiB) to {work / 'photo.bin'}\n"
    assert (work / "photo.bin").read_bytes() == data
    assert [p.name for p in (work / "down").iterdir()] == ["b.txt"]  # no partial file left
    assert (work / "down" / "b.txt").read_text() == "bb"
    assert results[2] == "a"
    assert "no such local file or directory missing.txt" in results[3]
    assert "tree is a directory; add -r" in results[4]
    assert "'vzcloud mkdir -p /VZMOBILE/nowhere'" in results[5]
    assert "/VZMOBILE/up is a folder" in results[6]
    assert "check the local path" in results[8]
    assert not (work / "no").exists()


def test_get_shows_a_bar_on_a_terminal(world: World) -> None:
    world.sdk.upload(io.BytesIO(os.urandom(2 << 20)), "/VZMOBILE", name="big.bin")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(vzcloud_command("get", "/VZMOBILE/big.bin"), env=world.cli.env,
                            cwd=world.cli.cwd, stdout=subprocess.PIPE, stderr=secondary,
                            stdin=subprocess.DEVNULL)
    os.close(secondary)
    screen = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 30)
        try:
            chunk = os.read(primary, 65536) if ready else b""
        except OSError:  # EIO: the other side closed
            chunk = b""
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    assert proc.wait(30) == 0
    assert proc.stdout is not None and b"downloaded" in proc.stdout.read()
    proc.stdout.close()
    # The terminal turns "\n" into "\r\n"; frames are separated by a bare "\r".
    frames = screen.decode().replace("\r\n", "\n").split("\r")
    assert "[" + "#" * 10 in frames[-1] and "100%  2.0 MiB/2.0 MiB" in frames[-1]
    assert frames[-1].endswith("\x1b[K\n")
    assert (world.cli.cwd / "big.bin").stat().st_size == 2 << 20


def test_mkdir(world: World) -> None:
    cli = world.cli
    world.sdk.create_folder("/VZMOBILE/a")
    world.sdk.create_folder("/VZMOBILE/a/b")
    created, _, exists, missing, _ = cli.expect_all(
        (0, "mkdir", "/VZMOBILE/new"),
        (0, "mkdir", "-p", "/VZMOBILE/a/b/c/d"),  # a and b exist: fine with -p
        (EXIT_FAILED, "mkdir", "/VZMOBILE/a"),
        (EXIT_NOT_FOUND, "mkdir", "/VZMOBILE/x/y"),
        (EXIT_USAGE, "mkdir", "/NEWTOP"))
    assert created == "created /VZMOBILE/new\n"
    assert names(world.sdk.metadata("/VZMOBILE/a/b/c")) == ["d/"]
    assert exists == ("vzcloud: error: /VZMOBILE/a exists already; 'mkdir -p' accepts an "
                      "existing folder")
    assert "'mkdir -p'" in missing


def test_mv_and_cp(world: World) -> None:
    cli, sdk = world.cli, world.sdk
    sdk.create_folder("/VZMOBILE/dir")
    sdk.upload(io.BytesIO(b"one"), "/VZMOBILE", name="one.txt")
    copied, _, *failed = cli.expect_all(
        (0, "cp", "/VZMOBILE/one.txt", "/VZMOBILE/dir"),
        (0, "cp", "/VZMOBILE/one.txt", "/VZMOBILE/two.txt"),
        (EXIT_NOT_FOUND, "mv", "/VZMOBILE/gone.txt", "/VZMOBILE/dir"),
        (EXIT_NOT_FOUND, "cp", "/VZMOBILE/gone.txt", "/VZMOBILE/x.txt"),
        (EXIT_USAGE, "cp", "/", "/VZMOBILE/x"))
    assert copied == "copied /VZMOBILE/one.txt to /VZMOBILE/dir/one.txt\n"
    assert "/VZMOBILE/gone.txt" in failed[0]
    assert cli.ok("mv", "/VZMOBILE/two.txt", "/VZMOBILE/dir") == \
        "moved /VZMOBILE/two.txt to /VZMOBILE/dir/two.txt\n"
    cli.ok("mv", "/VZMOBILE/dir/two.txt", "/VZMOBILE/dir/three.txt")  # a rename
    assert names(sdk.metadata("/VZMOBILE/dir")) == ["one.txt", "three.txt"]
    assert sdk.fetch_range("/VZMOBILE/dir/three.txt")[0] == b"one"


def test_rm_and_trash(world: World) -> None:
    cli, sdk = world.cli, world.sdk
    for name in ("a.txt", "b.txt", "c.txt"):
        sdk.upload(io.BytesIO(name.encode()), "/VZMOBILE", name=name)
    sdk.create_folder("/VZMOBILE/f")
    trashed, purged, *failed = cli.expect_all(
        (0, "rm", "/VZMOBILE/a.txt", "/VZMOBILE/f"),
        (0, "rm", "--purge", "/VZMOBILE/b.txt"),
        (EXIT_NOT_FOUND, "rm", "/VZMOBILE/none.txt"),
        (EXIT_NOT_FOUND, "trash", "restore", "/VZMOBILE/c.txt"),
        (EXIT_NOT_FOUND, "trash", "--virtualfolder", "NOPE"),
        (EXIT_NOT_FOUND, "trash", "empty", "--virtualfolder", "NOPE"))
    assert trashed == "moved /VZMOBILE/a.txt to the trash\nmoved /VZMOBILE/f to the trash\n"
    assert purged == "deleted /VZMOBILE/b.txt for good\n"
    assert "'vzcloud trash list'" in failed[1]
    assert "no virtual folder named 'NOPE'" in failed[2]
    assert cli.ok("trash", "list", "--virtualfolder", "VZMOBILE").splitlines() == [
        "/VZMOBILE/f/", "/VZMOBILE/a.txt"]
    assert cli.ok("trash", "restore", "/VZMOBILE/a.txt") == "restored /VZMOBILE/a.txt\n"
    assert names(sdk.metadata("/VZMOBILE")) == ["a.txt", "c.txt"]
    assert cli.ok("trash", "empty") == "emptied the trash of VZMOBILE\n"
    r = cli("trash")
    assert r.stdout == "" and r.stderr == "vzcloud: the trash of VZMOBILE is empty\n"


def test_search(world: World) -> None:
    sdk = world.sdk
    sdk.create_folder("/VZMOBILE/reports")
    sdk.upload(io.BytesIO(b"q1"), "/VZMOBILE/reports", name="report-q1.pdf")
    sdk.upload(io.BytesIO(b"zz"), "/VZMOBILE", name="other.txt")
    found, as_json, _, invalid = world.cli.expect_all(
        (0, "search", "name:report"),
        (0, "search", "extension:pdf", "--json", "--virtualfolder", "VZMOBILE"),
        (0, "search", "name:nothinglikethis"),
        (EXIT_USAGE, "search", "name:("))
    assert found.splitlines() == ["/VZMOBILE/reports/", "/VZMOBILE/reports/report-q1.pdf"]
    listing = json.loads(as_json)
    assert [f["name"] for f in listing["files"]] == ["report-q1.pdf"] and listing["folders"] == []
    assert "invalid search query" in invalid


def test_share_shares_unshare(world: World) -> None:
    cli, sdk = world.cli, world.sdk
    sdk.upload(io.BytesIO(b"shared bytes"), "/VZMOBILE", name="s.txt")
    sdk.create_folder("/VZMOBILE/album")
    r = cli("share", "/VZMOBILE/s.txt", "/VZMOBILE/album", "--name", "for Bob", "--expires", "0")
    assert r.returncode == 0, r.stderr
    link = r.stdout.strip()
    assert link.startswith(world.server.api + "/public/shares/")
    assert "2 items, never expires" in r.stderr
    uid = r.stderr.split("share ", 1)[1].split()[0]
    assert httpx.get(link).status_code == 200

    listed, as_json, *failed = cli.expect_all(
        (0, "shares"),
        (0, "shares", "--json"),
        (EXIT_NOT_FOUND, "share", "/VZMOBILE/none.txt"),
        (EXIT_USAGE, "share", "/VZMOBILE/s.txt", "--expires", "-1"),
        (EXIT_NOT_FOUND, "unshare", "0123456789abcdef"))
    assert listed.splitlines() == [f"{uid}  2 items  expires never  {link}  for Bob"]
    assert [(s["uid"], s["totalResourceCount"]) for s in json.loads(as_json)] == [(uid, 2)]
    assert "--expires" in failed[1]
    assert "'vzcloud shares'" in failed[2]
    assert cli.ok("unshare", uid) == f"ended share {uid}\n"
    assert httpx.get(link).status_code == 404


def test_tags(world: World) -> None:
    cli, sdk = world.cli, world.sdk
    sdk.upload(io.BytesIO(b"t"), "/VZMOBILE", name="t.jpg")
    for name in ("u.jpg", "v.jpg"):
        sdk.upload(io.BytesIO(b"u"), "/VZMOBILE", name=name)
        sdk.tag(sdk.file_metadata(f"/VZMOBILE/{name}"), "old,older")
    tagged, shown, cleared, *_ = cli.expect_all(
        (0, "tags", "/VZMOBILE/t.jpg", "--set", "holiday, beach"),
        (0, "tags", "/VZMOBILE/v.jpg"),
        (0, "tags", "/VZMOBILE/u.jpg", "--clear"),
        (EXIT_USAGE, "tags", "/VZMOBILE/t.jpg", "--set", " , "),
        (EXIT_NOT_FOUND, "tags", "/VZMOBILE/none.jpg", "--set", "a"))
    assert tagged == "tagged /VZMOBILE/t.jpg: holiday, beach\n"
    assert sdk.tags("/VZMOBILE/t.jpg") == ["holiday", "beach"]
    assert shown == "old\nolder\n"
    assert cleared == "cleared the tags of /VZMOBILE/u.jpg\n"
    assert sdk.tags("/VZMOBILE/u.jpg") == []


def test_contacts(world: World) -> None:
    sdk = world.sdk
    sdk.create_contact(Contact(firstname="Ada", lastname="Lovelace", orgname="Engines",
                               email=[{"type": "work", "address": "ada@example.org"}]))
    sdk.create_contact(Contact(firstname="Charles", lastname="Babbage",
                               tel=[{"type": "home", "number": "+44 20 1234"}]))
    everyone, ada, as_json, _ = world.cli.expect_all(
        (0, "contacts"),
        (0, "contacts", "--query", "ada"),
        (0, "contacts", "--json"),
        (EXIT_USAGE, "contacts", "--query"))
    assert everyone.splitlines() == [
        "Charles Babbage  +44 20 1234", "Ada Lovelace  Engines  ada@example.org"]
    assert ada.splitlines() == ["Ada Lovelace  Engines  ada@example.org"]
    listed = json.loads(as_json)
    assert [c["firstname"] for c in listed] == ["Charles", "Ada"] and listed[0]["id"]


def test_playlist(world: World) -> None:
    cli, sdk = world.cli, world.sdk
    for name in ("a.jpg", "b.jpg"):
        sdk.upload(io.BytesIO(b"jpeg " + name.encode()), "/VZMOBILE", name=name)
    uid = cli.ok("playlist", "create", "Trip", "--type", "image", "/VZMOBILE/a.jpg").strip()
    listed, added, *failed = cli.expect_all(
        (0, "playlist"),
        (0, "playlist", "add", uid, "/VZMOBILE/b.jpg"),
        (EXIT_NOT_FOUND, "playlist", "show", "0123456789abcdef"),
        (EXIT_USAGE, "playlist", "create", "X", "--type", "music", "/VZMOBILE/a.jpg"),
        (EXIT_NOT_FOUND, "playlist", "add", "0123456789abcdef", "/VZMOBILE/a.jpg"),
        (EXIT_NOT_FOUND, "playlist", "remove", uid, "nope"),
        (EXIT_NOT_FOUND, "playlist", "delete", "0123456789abcdef"))
    assert listed.splitlines() == [f"{uid}  image  Trip"]
    itemuid, path = added.split()
    assert path == "/VZMOBILE/b.jpg"
    assert "'vzcloud playlist list'" in failed[0]
    assert "a music playlist cannot hold" in failed[1]
    shown = cli.ok("playlist", "show", uid).splitlines()
    assert shown[0] == "Trip  (image, 2 items)"
    assert [line.split()[1] for line in shown[1:]] == ["/VZMOBILE/a.jpg", "/VZMOBILE/b.jpg"]
    assert cli.ok("playlist", "remove", uid, itemuid) == \
        f"removed item {itemuid} from playlist {uid}\n"
    assert [i.path for i in sdk.playlist_items(uid)] == ["/VZMOBILE/a.jpg"]
    assert cli.ok("playlist", "delete", uid) == f"deleted playlist {uid}\n"
    assert sdk.file_metadata("/VZMOBILE/b.jpg").name == "b.jpg"  # files stay
