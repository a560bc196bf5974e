"""Credential profiles: location, atomic private files, names, token updates, redaction."""

from __future__ import annotations

import json
import multiprocessing
import stat
import time
from pathlib import Path

import pytest

from vzcloud import profiles
from vzcloud.api.models import Token
from vzcloud.profiles import Profile, ProfileError, ProfileNotFoundError


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "config"
    monkeypatch.setenv("VZCLOUD_CONFIG_DIR", str(d))
    monkeypatch.delenv("VZCLOUD_PROFILE", raising=False)
    return d


def sample(name: str = "work") -> Profile:
    return Profile(name=name, server="http://127.0.0.1:8976", client_id="cid",
                   client_secret="s3cret", redirect_uri="http://127.0.0.1:8977/callback",
                   access_token="acc-123", refresh_token="ref-456", expires_at=1e9)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VZCLOUD_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert profiles.config_dir() == tmp_path / "xdg" / "vzcloud"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the XDG spec: ignore it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert profiles.config_dir() == tmp_path / "home" / ".config" / "vzcloud"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert profiles.config_dir() == tmp_path / "home" / ".config" / "vzcloud"


def test_save_and_load_round_trip_with_private_modes(config_dir: Path) -> None:
    path = profiles.save(sample())
    assert path == config_dir / "profiles" / "work.json"
    assert mode(path) == 0o600
    assert mode(config_dir) == 0o700 and mode(config_dir / "profiles") == 0o700
    assert profiles.load("work") == sample()
    on_disk = json.loads(path.read_text())
    assert on_disk["server"] == "http://127.0.0.1:8976" and "name" not in on_disk
    # No temporary files are left behind.
    assert [p.name for p in (config_dir / "profiles").iterdir()] == ["work.json"]


def test_save_tightens_an_existing_loose_directory(config_dir: Path) -> None:
    (config_dir / "profiles").mkdir(parents=True)
    (config_dir / "profiles").chmod(0o755)
    profiles.save(sample())
    assert mode(config_dir / "profiles") == 0o700


def test_overwrite_keeps_mode_and_replaces_content() -> None:
    profiles.save(sample())
    p = sample()
    p.server = "http://127.0.0.1:9999"
    path = profiles.save(p)
    assert mode(path) == 0o600
    assert profiles.load("work").server == "http://127.0.0.1:9999"


def test_list_delete_and_missing() -> None:
    assert profiles.list_profiles() == []
    profiles.save(sample("b"))
    profiles.save(sample("a"))
    assert profiles.list_profiles() == ["a", "b"]
    profiles.delete("a")
    assert profiles.list_profiles() == ["b"]
    with pytest.raises(ProfileNotFoundError, match="no profile 'a'"):
        profiles.load("a")
    with pytest.raises(ProfileNotFoundError):
        profiles.delete("a")


def test_default_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert profiles.default_name() == "local"
    profiles.set_default("work")
    assert profiles.default_name() == "work"
    profiles.save(sample("work"))
    assert profiles.load().name == "work"
    monkeypatch.setenv("VZCLOUD_PROFILE", "other")
    assert profiles.default_name() == "other"


@pytest.mark.parametrize("bad", ["", "a/b", "../x", ".hidden", "-x", "a b", "x" * 65, "a\x00"])
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ProfileError, match="invalid profile name"):
        profiles.load(bad)
    with pytest.raises(ProfileError):
        profiles.save(sample(bad))


def test_malformed_files_give_a_clear_error(config_dir: Path) -> None:
    (config_dir / "profiles").mkdir(parents=True)
    (config_dir / "profiles" / "x.json").write_text("{not json")
    with pytest.raises(ProfileError, match="not valid JSON"):
        profiles.load("x")
    (config_dir / "profiles" / "x.json").write_text(json.dumps({"server": "u"}))
    with pytest.raises(ProfileError, match="lacks client_id, client_secret, redirect_uri"):
        profiles.load("x")
    (config_dir / "profiles" / "x.json").write_text(json.dumps(
        {"server": 1, "client_id": "c", "client_secret": "s", "redirect_uri": "r"}))
    with pytest.raises(ProfileError, match="server has the wrong type"):
        profiles.load("x")


def test_repr_redacts_secrets() -> None:
    text = repr(sample()) + str(sample())
    for secret in ("s3cret", "acc-123", "ref-456"):
        assert secret not in text
    assert "client_id='cid'" in text and "***" in text


def test_update_tokens_and_on_refreshed() -> None:
    profiles.save(sample())
    before = time.time()
    p = profiles.update_tokens("work", Token(access_token="a2", refresh_token="r2", expires_in=60))
    assert (p.access_token, p.refresh_token) == ("a2", "r2")
    assert p.expires_at is not None and before + 60 <= p.expires_at <= time.time() + 60
    profiles.on_refreshed("work")(Token(access_token="a3", refresh_token=None, expires_in=None))
    p = profiles.load("work")
    assert (p.access_token, p.refresh_token, p.expires_at) == ("a3", "r2", None)
    assert mode(profiles.config_dir() / "profiles" / "work.json") == 0o600
    with pytest.raises(ProfileNotFoundError):
        profiles.update_tokens("nobody", Token(access_token="x"))


def _hammer(config: str, worker: int) -> None:
    import os

    os.environ["VZCLOUD_CONFIG_DIR"] = config
    for i in range(20):
        profiles.update_tokens("work", Token(access_token=f"a{worker}-{i}",
                                             refresh_token=f"r{worker}-{i}", expires_in=10))


def test_concurrent_updates_from_processes_never_tear_the_file(config_dir: Path) -> None:
    profiles.save(sample())
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(config_dir), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    final = profiles.load("work")
    assert final.access_token and final.access_token.endswith("-19")
    assert final.refresh_token == "r" + final.access_token[1:]
