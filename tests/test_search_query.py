"""The search query language, parser and matcher, without a server."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vzcloud.server.search_query import (
    And,
    Not,
    Or,
    QueryError,
    Range,
    Record,
    Term,
    Value,
    matches,
    parse,
)


def t(field: str, text: str, wildcards: tuple[int, ...] = ()) -> Term:
    return Term(field, Value(text, frozenset(wildcards)))


PHOTO = Record(name="Holiday_Photos-2015.JPG", is_folder=False, size=2048,
               mime_type="image/jpeg", extension="jpg", tags=("Beach", "family trip"),
               favorite=True, attrs={"mimeType": "image/jpeg", "width": 1024,
                                     "artist": "Ann Lee", "captureDate": "2015-07-01T10:00:00Z"})
FOLDER = Record(name="Holiday", is_folder=True)
SONG = Record(name="song.mp3", is_folder=False, size=5, mime_type="audio/mpeg",
              extension="mp3", attrs={"artist": "Bob"})


@pytest.mark.parametrize(("query", "tree"), [
    ("foobar", t("name", "foobar")),
    ("file:true AND name:foobar", And((t("file", "true"), t("name", "foobar")))),
    ("a b OR c", Or((And((t("name", "a"), t("name", "b"))), t("name", "c")))),
    ("a OR b AND c", Or((t("name", "a"), And((t("name", "b"), t("name", "c")))))),
    ("(a OR b) && c", And((Or((t("name", "a"), t("name", "b"))), t("name", "c")))),
    ("a || b", Or((t("name", "a"), t("name", "b")))),
    ("NOT a", Not(t("name", "a"))),
    ("-a +b !c", And((Not(t("name", "a")), t("name", "b"), Not(t("name", "c"))))),
    ("tags:(x OR y)", Or((t("tags", "x"), t("tags", "y")))),
    ("CONTENTTYPE:image/*", t("contentType", "image/*", (6,))),
    ("name:foo\\ bar", t("name", "foo bar")),
    ("name:a\\:b", t("name", "a:b")),
    ("name:\\*", t("name", "*")),
    ('name:"x y*"', t("name", "x y*")),
    ("\\AND", t("name", "AND")),
    ("and", t("name", "and")),
    ("name:my-file+1", t("name", "my-file+1")),
    ("size:[10 TO 100]", Range("size", "10", "100")),
    ("size:{10 TO *]", Range("size", "10", None, include_low=False)),
    ("width:[* TO 2000}", Range("width", None, "2000", include_high=False)),
    ("captureDate:[2015 TO 2016]", Range("captureDate", "2015", "2016")),
])
def test_parse(query: str, tree: object) -> None:
    assert parse(query) == tree


@pytest.mark.parametrize(("query", "position", "message"), [
    ("", 1, "empty"),
    ("   ", 1, "empty"),
    ("a AND", 3, "AND must be followed by a term"),
    ("a OR", 3, "OR must be followed"),
    ("NOT", 1, "NOT must be followed"),
    ("AND a", 1, "AND needs a term before it"),
    ("(a", 1, "never closed"),
    ("a)", 2, "without a matching '('"),
    ("()", 1, "empty parentheses"),
    ("a]", 2, "outside a range"),
    ("name:", 6, "has no value"),
    ("name:foo:bar", 6, "has no value"),
    (":x", 1, "without a field name"),
    ("a^b", 2, "special character '^'"),
    ("a~", 2, "special character '~'"),
    ('ab"c"', 3, "special character '\"'"),
    ('"abc', 1, "unterminated"),
    ("a\\", 2, "backslash at the end"),
    ("file:yes", 6, "true or false"),
    ("favorite:[a TO b]", 10, "no ranges"),
    ("size:big", 6, "whole number"),
    ("size:[a TO 2]", 6, "whole numbers"),
    ("x:[1 2]", 6, "'TO' is missing"),
    ("x:[1 TO 2", 10, "must end with"),
    ("[1 TO 2]", 1, "needs a field"),
    ("na*e:x", 1, "wildcards"),
    ("(" * 40 + "a" + ")" * 40, 33, "nested more than 32"),
    ("NOT " * 40 + "a", 129, "nested more than 32"),
    ("a " * 101, 201, "at most 100 terms"),
])
def test_malformed_queries_say_where(query: str, position: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse(query)
    assert info.value.status == 400
    assert info.value.position + 1 == position
    assert message in info.value.description
    assert f"at character {position}:" in info.value.description


@pytest.mark.parametrize(("query", "photo", "folder", "song"), [
    ("holiday", True, True, False),
    ("HOL", True, True, False),
    ("oliday", False, False, False),  # a prefix of a word, not a substring
    ('"holiday pho"', True, False, False),  # consecutive words, the last a prefix
    ('"photos holiday"', False, False, False),
    ("name:2015 AND name:jpg", True, False, False),
    ("name:ph*s", True, False, False),
    ("name:hol*s", False, False, False),  # a wildcard stays inside one word
    ("name:h?liday", True, True, False),
    ("name:-", True, False, False),  # no letters or digits: a substring test
    ("file:true", True, False, True),
    ("file:false", False, True, False),
    ("folder:TRUE", False, True, False),
    ("extension:JPG", True, False, False),
    ("extension:.jpg", True, False, False),
    ("extension:mp*", False, False, True),
    ("contentType:image/*", True, False, False),
    ("contentType:image", True, False, False),
    ("contentType:audio/mpeg", False, False, True),
    ("tags:beach", True, False, False),
    ("tags:trip", True, False, False),
    ('tags:"beach family"', False, False, False),  # never across two tags
    ("favorite:true", True, False, False),
    ("favorite:false", False, True, True),
    ("size:2048", True, False, False),
    ("size:[5 TO 2048]", True, False, True),
    ("size:{5 TO 2048}", False, False, False),
    ("size:[* TO 100]", False, False, True),
    ("width:1024", True, False, False),
    ("width:[1000 TO *]", True, False, False),
    ("artist:lee", True, False, False),
    ("ARTIST:bob", False, False, True),
    ("mimeType:jpeg", True, False, False),
    ("captureDate:[2015-01 TO 2016]", True, False, False),
    ("nosuchfield:x", False, False, False),
    ("holiday AND NOT file:false", True, False, False),
    ("song OR (holiday AND folder:true)", False, True, True),
    ("-holiday", False, False, True),
])
def test_matches(query: str, photo: bool, folder: bool, song: bool) -> None:
    node = parse(query)
    assert (matches(node, PHOTO), matches(node, FOLDER), matches(node, SONG)) == (
        photo, folder, song)


@given(pattern=st.text("ab*?", min_size=1, max_size=8), text=st.text("ab", max_size=10))
def test_wildcards_match_like_fnmatch(pattern: str, text: str) -> None:
    # extension: matches the whole extension, so it exercises the wildcard matcher alone.
    item = Record(name="x", is_folder=False, extension=text)
    assert matches(parse(f"extension:{pattern}"), item) == fnmatch.fnmatchcase(text, pattern)


def test_hostile_wildcards_are_fast() -> None:
    item = Record(name="a" * 250, is_folder=False, extension="a" * 250)
    assert not matches(parse("extension:" + "a*" * 40 + "b"), item)
    assert not matches(parse("name:" + "a*" * 40 + "b"), item)
