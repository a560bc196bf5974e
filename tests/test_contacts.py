"""The address book over real HTTP: create, list (query, sort, paging), update, delete."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import User


def _create(user: User, **fields: Any) -> dict[str, Any]:
    r = user.http.post("/contacts", json=fields)
    assert r.status_code == 201, r.text
    return r.json()


def _book(user: User, **params: Any) -> dict[str, Any]:
    r = user.http.get("/contacts", params=params)
    assert r.status_code == 200, r.text
    account = r.json()["contactsResponse"]["account"]
    assert account["userid"] == user.user_id
    return account["addrbook"]


def _names(user: User, **params: Any) -> list[str | None]:
    return [c.get("firstname") for c in _book(user, **params)["contacts"]["contact"]]


def test_create_returns_id_and_version_1_and_ignores_server_fields(user: User) -> None:
    c = _create(
        user, firstname="Ada", lastname="Lovelace", favorite=True,
        id="mine", version=7, created="2000-01-01T00:00:00.000Z",
        tel=[{"type": "mobile", "indx": 0, "number": "+44 20 7946 0000", "preference": True}],
        email=[{"type": "work", "indx": 0, "address": "ada@example.org"}],
        nickname="not a documented field",
    )
    assert c["id"] != "mine" and len(c["id"]) == 32
    assert c["version"] == 1
    assert c["created"] != "2000-01-01T00:00:00.000Z" and c["created"].endswith("Z")
    assert c["modified"] == c["created"]
    assert c["firstname"] == "Ada" and c["favorite"] is True
    assert c["tel"][0]["number"] == "+44 20 7946 0000"
    assert c["email"][0]["address"] == "ada@example.org"
    assert c["address"] == [] and c["im"] == []
    assert "nickname" not in c
    book = _book(user)
    assert book["contacts"]["itemcount"] == 1
    assert book["contacts"]["contact"] == [c]
    assert book["updated"] == c["modified"]


@pytest.mark.parametrize(
    "body",
    [
        {"firstname": 3},
        {"lastname": ["x"]},
        {"favorite": "yes"},
        {"tel": {"number": "1"}},
        {"tel": ["555"]},
        {"email": [{"address": {"nested": 1}}]},
        {"address": [{"street": ["a"]}]},
        {"im": "x"},
    ],
)
def test_create_refuses_wrong_types(user: User, body: dict[str, Any]) -> None:
    r = user.http.post("/contacts", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert _book(user)["contacts"]["itemcount"] == 0


def test_create_refuses_a_body_that_is_not_an_object(user: User) -> None:
    assert user.http.post("/contacts", json=["x"]).status_code == 400
    assert user.http.post("/contacts", content=b"{not json").status_code == 400
    assert user.http.post("/contacts").status_code == 400


def test_update_needs_the_current_version(user: User) -> None:
    c = _create(user, firstname="Bob", orgname="Acme")
    url = f"/contacts/{c['id']}"
    r = user.http.put(url, json={"firstname": "Robert"})
    assert r.status_code == 400 and "version" in r.json()["error_description"]
    r = user.http.put(url, json={"firstname": "Robert", "version": "one"})
    assert r.status_code == 400
    r = user.http.put(url, json={"firstname": "Robert", "version": 1})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["version"] == 2 and updated["id"] == c["id"]
    assert updated["firstname"] == "Robert"
    assert "orgname" not in updated  # PUT replaces the whole contact
    assert updated["created"] == c["created"]
    # A second writer still holding version 1 gets a conflict and changes nothing.
    r = user.http.put(url, json={"firstname": "Bobby", "version": 1})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert _names(user) == ["Robert"]
    r = user.http.put(url, json={"firstname": "Bobby", "version": 2, "id": c["id"]})
    assert r.status_code == 200 and r.json()["version"] == 3


def test_update_refuses_a_mismatched_id_and_unknown_contacts(user: User) -> None:
    c = _create(user, firstname="Eve")
    r = user.http.put(f"/contacts/{c['id']}", json={"id": "other", "version": 1})
    assert r.status_code == 400
    r = user.http.put("/contacts/nope", json={"firstname": "x", "version": 1})
    assert r.status_code == 404
    r = user.http.put(f"/contacts/{c['id']}", json={"tel": "5551234", "version": 1})
    assert r.status_code == 400


def test_delete(user: User) -> None:
    c = _create(user, firstname="Gone")
    before = _book(user)["updated"]
    assert user.http.delete(f"/contacts/{c['id']}").status_code == 200
    book = _book(user)
    assert book["contacts"] == {"itemcount": 0, "contact": []}
    assert book["updated"] >= before
    assert user.http.delete(f"/contacts/{c['id']}").status_code == 404
    assert user.http.put(f"/contacts/{c['id']}", json={"version": 1}).status_code == 404


def test_paging_and_sorting(user: User) -> None:
    for first, last in [("Cy", "Young"), ("al", "Zed"), ("Bea", None), (None, "Abel")]:
        fields = {k: v for k, v in (("firstname", first), ("lastname", last)) if v}
        _create(user, **fields)
    assert _names(user) == ["Cy", "al", "Bea", None]  # creation order by default
    assert _names(user, sort="firstname+asc") == ["al", "Bea", "Cy", None]
    assert _names(user, sort="firstname+desc") == ["Cy", "Bea", "al", None]
    lasts = [c.get("lastname") for c in
             _book(user, sort="lastname+asc")["contacts"]["contact"]]
    assert lasts == ["Abel", "Young", "Zed", None]
    assert _names(user, sort="created+desc") == [None, "Bea", "al", "Cy"]
    assert _names(user, sort="firstname+asc", page=2, count=2) == ["Cy", None]
    assert _names(user, sort="firstname asc", start=2, count=3) == [None]
    book = _book(user, page=3, count=2)
    assert book["contacts"]["itemcount"] == 4 and book["contacts"]["contact"] == []
    # Old clients send empty strings for parameters they do not set.
    assert _names(user, page="", count="", query="", sort="") == ["Cy", "al", "Bea", None]
    for bad in ({"sort": "phone+asc"}, {"count": 201}, {"count": 0}, {"page": "x"}):
        assert user.http.get("/contacts", params=bad).status_code == 400, bad


def test_query(user: User) -> None:
    _create(user, firstname="Grace", lastname="Hopper", orgname="US Navy",
            email=[{"address": "grace@navy.example"}])
    _create(user, firstname="Alan", lastname="Turing",
            tel=[{"type": "home", "number": "+44 (161) 555-1234"}])
    _create(user, firstname="Ada", lastname="Lovelace", jobtitle="Analyst")

    def found(query: str) -> list[str]:
        book = _book(user, query=query)
        names = [c["firstname"] for c in book["contacts"]["contact"]]
        assert book["contacts"]["itemcount"] == len(names)
        return names

    assert found("hop") == ["Grace"]
    assert found("GRACE hopper") == ["Grace"]
    assert found("navy") == ["Grace"]  # organisation and e-mail
    assert found("5551234") == ["Alan"]  # digits alone match a formatted number
    assert found("555-1234") == ["Alan"]
    assert found("analyst") == ["Ada"]
    assert found("a*") == ["Grace", "Alan", "Ada"]
    assert found('"turing" AND alan') == ["Alan"]
    assert found("lastname:TURING") == ["Alan"]
    assert found("grace turing") == []


def test_contacts_are_per_account(user: User, other_user: User) -> None:
    c = _create(user, firstname="Private")
    assert _book(other_user)["contacts"]["itemcount"] == 0
    assert other_user.http.put(f"/contacts/{c['id']}", json={"version": 1}).status_code == 404
    assert other_user.http.delete(f"/contacts/{c['id']}").status_code == 404
    assert _names(user) == ["Private"]
