"""The search query language of GET /search: a pure parser and matcher (no I/O).

Grammar (a Lucene subset; operators in capitals, as in Lucene)::

    query   := or
    or      := and (("OR" | "||") and)*
    and     := unary (["AND" | "&&"] unary)*       -- adjacent terms are ANDed
    unary   := ("NOT" | "!" | "-") unary | "+" unary | primary
    primary := "(" or ")" | FIELD ":" fvalue | value  -- a bare value means name:value
    fvalue  := "(" or ")" | range | value             -- name:(a OR b) applies the field inside
    range   := ("[" | "{") bound "TO" bound ("]" | "}")   -- [ ] inclusive, { } exclusive
    value   := WORD | '"' quoted text '"'

AND binds tighter than OR. Adjacent terms are ANDed (Lucene's default is OR, but a
search box user typing ``holiday beach`` means both). A backslash makes the next
character literal (``name:foo\\ bar``, ``name:a\\:b``, ``\\AND``); unescaped ``*`` and
``?`` in a value are wildcards (any run / one character). Unescaped ``^ ~ [ ] { } "``
inside a word are errors; ``/``, ``-``, ``+``, ``!``, ``&``, ``|`` inside a word are
plain characters (``contentType:image/*``, ``name:my-file``).

Fields (names of built-in fields are case-insensitive):

- ``name``: every word of the value is a prefix of consecutive words of the item's name,
  case-insensitively; words are runs of letters and digits, so ``name:hol pho`` (quoted
  or escaped) matches ``Holiday_Photos.jpg``. A value without letters or digits matches
  as a substring.
- ``file`` / ``folder``: ``true`` keeps only files / folders (``false`` the others).
- ``extension``: the extension equals the value (a leading dot is ignored).
- ``contentType``: the MIME type equals the value; ``image`` alone means ``image/*``.
- ``tags``: one of the item's tags matches the value as ``name`` does.
- ``favorite``: true or false.
- ``size``: bytes, exactly, or a range ``size:[1000 TO *]``.
- anything else is a key of ``systemAttributes`` (exact, else case-insensitive):
  numbers compare as numbers (ranges too), text matches as ``name`` does, and ranges on
  text compare case-insensitively (ISO dates: ``captureDate:[2015-01 TO 2016]``). An
  item without the key never matches; an unknown field is not an error, because any
  key may exist on some file.

A malformed query raises ``QueryError`` (a 400) naming the character where it went wrong;
so does one of more than ``MAX_TERMS`` values or nested deeper than ``MAX_DEPTH``
(bounds on the work one request can ask for). Wildcards match in linear-ish time
(``_glob_match``), never through a backtracking regex.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vzcloud.api.errors import BadRequestError


class QueryError(BadRequestError):
    """A malformed query; ``position`` is the 0-based offset of the offending character."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"invalid search query at character {position + 1}: {message}")
        self.position = position


# The syntax tree ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A value as typed, unescaped; ``wildcards`` are the offsets of unescaped * and ?."""

    text: str
    wildcards: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Term:
    field: str  # a built-in field's canonical name, or a systemAttributes key
    value: Value


@dataclass(frozen=True)
class Range:
    field: str
    low: str | None  # None = open (``*``)
    high: str | None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Term | Range | And | Or | Not

MAX_TERMS = 100
MAX_DEPTH = 32
FIELDS = ("name", "file", "folder", "extension", "contentType", "tags", "favorite", "size")
_CANONICAL = {f.casefold(): f for f in FIELDS}
_BOOLEAN_FIELDS = ("file", "folder", "favorite")


# Tokens -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # "word", "quoted", "field", "(", ")", "[", "]", "and", "or", "not", "plus", "end"
    pos: int
    value: Value = field(default_factory=lambda: Value(""))
    bracket: str = ""  # the bracket character for "[" and "]" tokens


_STOP = set(" \t\r\n\f\v():")
_CLOSE = set("]}")
_FORBIDDEN = set('^~[{"')


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(_Token(c, i))
            i += 1
        elif c in "[{":
            tokens.append(_Token("[", i, bracket=c))
            i += 1
        elif c in "]}":
            tokens.append(_Token("]", i, bracket=c))
            i += 1
        elif text.startswith("&&", i) or text.startswith("||", i):
            tokens.append(_Token("and" if c == "&" else "or", i))
            i += 2
        elif c in "!-+" and i + 1 < n and not text[i + 1].isspace():
            tokens.append(_Token("plus" if c == "+" else "not", i))
            i += 1
        elif c == '"':
            start = i
            value, i = _quoted(text, i)
            tokens.append(_Token("quoted", start, value))
        elif c == ":":
            raise QueryError("':' without a field name before it (escape it as \\:)", i)
        else:
            start = i
            value, i = _word(text, i)
            if i < n and text[i] == ":":
                if value.wildcards:
                    raise QueryError("a field name cannot contain wildcards", start)
                tokens.append(_Token("field", start, value))
                i += 1
            elif value.text in ("AND", "OR", "NOT", "TO") and i - start == len(value.text):
                # Only an unescaped keyword is an operator; \AND is the word AND.
                kind = {"AND": "and", "OR": "or", "NOT": "not", "TO": "word"}[value.text]
                tokens.append(_Token(kind, start, value))
            else:
                tokens.append(_Token("word", start, value))
    tokens.append(_Token("end", n))
    return tokens


def _word(text: str, i: int) -> tuple[Value, int]:
    """Read an unquoted word from ``text[i]``; returns it and the offset after it."""
    chars: list[str] = []
    wild: set[int] = set()
    n = len(text)
    while i < n and text[i] not in _STOP and text[i] not in _CLOSE:
        c = text[i]
        if c == "\\":
            if i + 1 == n:
                raise QueryError("a backslash at the end escapes nothing", i)
            chars.append(text[i + 1])
            i += 2
            continue
        if c in _FORBIDDEN:
            raise QueryError(
                f"unescaped special character {c!r} in a value; escape it as \\{c}", i
            )
        if c in "*?":
            wild.add(len(chars))
        chars.append(c)
        i += 1
    return Value("".join(chars), frozenset(wild)), i


def _quoted(text: str, start: int) -> tuple[Value, int]:
    """Read ``"..."`` from ``text[start]``; wildcards are literal inside quotes."""
    chars: list[str] = []
    i, n = start + 1, len(text)
    while i < n and text[i] != '"':
        if text[i] == "\\" and i + 1 < n:
            i += 1
        chars.append(text[i])
        i += 1
    if i >= n:
        raise QueryError("unterminated quoted value (a '\"' is missing)", start)
    return Value("".join(chars)), i + 1


# The parser ------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0  # open parentheses and prefix operators around the current term
        values = [t for t in self.tokens if t.kind in ("word", "quoted")]
        if len(values) > MAX_TERMS:
            raise QueryError(f"a query has at most {MAX_TERMS} terms", values[MAX_TERMS].pos)

    def nest(self, token: _Token) -> None:
        """Enter a group or prefix operator; bounded so matching cannot overflow the stack."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"nested more than {MAX_DEPTH} levels deep", token.pos)

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise QueryError("the query is empty", 0)
        node = self.or_(default="name")
        if self.peek().kind != "end":
            self.stray(self.peek())
        return node

    @staticmethod
    def stray(token: _Token) -> None:
        """Raise for a closing bracket where no term may end (the only tokens that stop
        a term list without being an operator)."""
        if token.kind == ")":
            raise QueryError("')' without a matching '('", token.pos)
        raise QueryError(f"{token.bracket!r} outside a range (escape it as \\{token.bracket})",
                         token.pos)

    def or_(self, default: str) -> Node:
        parts = [self.and_(default)]
        while self.peek().kind == "or":
            op = self.take()
            parts.append(self.and_(default, after=op))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self, default: str, after: _Token | None = None) -> Node:
        parts = [self.unary(default, after)]
        while True:
            token = self.peek()
            if token.kind == "and":
                self.take()
                parts.append(self.unary(default, after=token))
            elif token.kind in ("word", "quoted", "field", "(", "not", "plus", "["):
                parts.append(self.unary(default, after=None))
            else:
                break
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self, default: str, after: _Token | None) -> Node:
        token = self.peek()
        if token.kind in ("not", "plus"):
            self.take()
            self.nest(token)
            inner = self.unary(default, after=token)
            self.depth -= 1
            return Not(inner) if token.kind == "not" else inner
        return self.primary(default, after)

    def primary(self, default: str, after: _Token | None) -> Node:
        token = self.take()
        if token.kind == "(":
            return self.group(default, token)
        if token.kind == "field":
            name = _canonical(token.value.text, token.pos)
            value = self.peek()
            if value.kind == "(":
                return self.group(name, self.take())
            if value.kind == "[":
                return self.range_(name, self.take())
            if value.kind in ("word", "quoted"):
                return _term(name, self.take())
            raise QueryError(f"the field {token.value.text!r} has no value", value.pos)
        if token.kind in ("word", "quoted"):
            return _term(default, token)
        if token.kind == "[":
            raise QueryError("a range needs a field before it, as in size:[1 TO 10]", token.pos)
        if after is not None:
            what = {"and": "AND", "or": "OR", "not": "NOT", "plus": "+"}.get(after.kind, "it")
            raise QueryError(f"{what} must be followed by a term", after.pos)
        if token.kind in ("and", "or"):
            raise QueryError(f"{token.kind.upper()} needs a term before it", token.pos)
        if token.kind == "end":  # pragma: no cover - parse() refuses an empty query first
            raise QueryError("a term was expected here", token.pos)
        self.stray(token)
        raise AssertionError("unreachable")  # pragma: no cover

    def group(self, default: str, opening: _Token) -> Node:
        if self.peek().kind == ")":
            raise QueryError("empty parentheses", opening.pos)
        self.nest(opening)
        node = self.or_(default)
        self.depth -= 1
        if self.peek().kind == "]":
            self.stray(self.peek())
        if self.peek().kind != ")":
            raise QueryError("'(' is never closed", opening.pos)
        self.take()
        return node

    def range_(self, name: str, opening: _Token) -> Node:
        if name in _BOOLEAN_FIELDS:
            raise QueryError(f"the field {name!r} is true or false; it has no ranges", opening.pos)
        low = self._bound(opening)
        to = self.take()
        if to.kind != "word" or to.value.text != "TO":
            raise QueryError("a range is written [LOW TO HIGH]; 'TO' is missing", to.pos)
        high = self._bound(opening)
        closing = self.take()
        if closing.kind != "]":
            raise QueryError("a range must end with ']' or '}'", closing.pos)
        if name == "size":
            for bound, token in ((low, opening), (high, closing)):
                if bound is not None and not bound.isdigit():
                    raise QueryError(f"size bounds are whole numbers of bytes or *, not {bound!r}",
                                     token.pos)
        return Range(name, low, high, opening.bracket == "[", closing.bracket == "]")

    def _bound(self, opening: _Token) -> str | None:
        token = self.take()
        if token.kind not in ("word", "quoted") or token.kind == "word" and token.value.text == "TO":
            raise QueryError("a range is written [LOW TO HIGH]", token.pos)
        if token.kind == "word" and token.value.text == "*" and token.value.wildcards:
            return None
        return token.value.text


def _canonical(name: str, pos: int) -> str:
    if not name:
        raise QueryError("empty field name", pos)
    return _CANONICAL.get(name.casefold(), name)


def _term(name: str, token: _Token) -> Term:
    value = token.value
    if name in _BOOLEAN_FIELDS and value.text.lower() not in ("true", "false"):
        raise QueryError(f"the field {name!r} takes true or false, not {value.text!r}", token.pos)
    if name == "size" and not (value.text.isdigit() or value.text == "*" and value.wildcards):
        raise QueryError(f"the field 'size' takes a whole number of bytes, not {value.text!r}",
                         token.pos)
    return Term(name, value)


def parse(query: str) -> Node:
    """The syntax tree of ``query``; raises QueryError (400) when it is malformed."""
    return _Parser(query).parse()


# The matcher -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What the matcher sees of one item."""

    name: str
    is_folder: bool
    size: int = 0
    mime_type: str = ""
    extension: str = ""
    tags: tuple[str, ...] = ()
    favorite: bool = False
    attrs: Mapping[str, Any] = field(default_factory=dict)


_WORDS = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


# A pattern with wildcards is a tuple of atoms: one case-folded character each, or a
# wildcard (a two-character string, so it never equals a one-character literal atom).
# A pattern without wildcards is its case-folded text, matched with plain str methods.
_STAR = "**"
_ONE = "??"
Pattern = str | tuple[str, ...]


def _pattern(value: Value, start: int, end: int) -> tuple[Pattern, bool]:
    """The pattern of ``value.text[start:end]`` and whether it only needs to match a
    prefix: trailing ``*`` are dropped for that, so ``image/*`` becomes the prefix
    ``image/`` and is tested with ``str.startswith``."""
    atoms: list[str] = []
    for i in range(start, end):
        c = value.text[i]
        if i in value.wildcards:
            atoms.append(_STAR if c == "*" else _ONE)
        else:
            atoms.extend(c.casefold())  # may be several characters: "ß" -> "ss"
    prefix = False
    while atoms and atoms[-1] == _STAR:
        atoms.pop()
        prefix = True
    if _STAR in atoms or _ONE in atoms:
        return tuple(atoms), prefix
    return "".join(atoms), prefix


def _glob_match(pattern: Pattern, text: str, prefix: bool = False) -> bool:
    """Whether case-folded ``text`` matches ``pattern`` whole (``prefix``: starts with a
    match). Greedy with one backtrack point, O(len(pattern) * len(text)) at worst: a
    regex translation could backtrack exponentially on hostile ``a*a*a*b`` queries."""
    if isinstance(pattern, str):
        return text.startswith(pattern) if prefix else text == pattern
    if prefix:
        pattern = (*pattern, _STAR)
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] in (_ONE, text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == _STAR:
            star, mark, p = p, t, p + 1
        elif star >= 0:
            mark += 1
            p, t = star + 1, mark
        else:
            return False
    return all(atom == _STAR for atom in pattern[p:])


@functools.lru_cache(maxsize=256)
def _word_patterns(value: Value) -> tuple[Pattern, ...]:
    """One pattern per word of the value (runs of letters, digits and wildcards); cached,
    as a query's few values are matched against every item."""
    patterns: list[Pattern] = []
    start: int | None = None
    for i, c in enumerate([*value.text, " "]):
        in_word = i < len(value.text) and (i in value.wildcards or (c.isalnum() and c != "_"))
        if in_word and start is None:
            start = i
        elif not in_word and start is not None:
            patterns.append(_pattern(value, start, i)[0])  # matched as prefixes anyway
            start = None
    return tuple(patterns)


def _words_match(value: Value, text: str) -> bool:
    """Each word of the value is a prefix of consecutive words of ``text``."""
    patterns = _word_patterns(value)
    if not patterns:
        return value.text.casefold() in text.casefold()
    words = _words(text)
    if len(patterns) == 1:  # the common case, without the sliding window
        return any(_glob_match(patterns[0], w, prefix=True) for w in words)
    return any(
        all(_glob_match(p, w, prefix=True)
            for p, w in zip(patterns, words[i:i + len(patterns)], strict=True))
        for i in range(len(words) - len(patterns) + 1)
    )


def _full_match(value: Value, text: str) -> bool:
    pattern, prefix = _whole_pattern(value)
    return _glob_match(pattern, text.casefold(), prefix)


@functools.lru_cache(maxsize=256)
def _whole_pattern(value: Value) -> tuple[Pattern, bool]:
    return _pattern(value, 0, len(value.text))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _attr(attrs: Mapping[str, Any], key: str) -> Any:
    if key in attrs:
        return attrs[key]
    folded = key.casefold()
    for k, v in attrs.items():
        if k.casefold() == folded:
            return v
    return None


def _in_range(node: Range, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    numeric = isinstance(value, int | float)
    bounds: list[Any] = []
    for bound in (node.low, node.high):
        if bound is None:
            bounds.append(None)
        elif numeric:
            number = _number(bound)
            if number is None:
                return False
            bounds.append(number)
        else:
            bounds.append(bound.casefold())
    subject = value if numeric else str(value).casefold()
    low, high = bounds
    if low is not None and (subject < low or subject == low and not node.include_low):
        return False
    return not (high is not None
                and (subject > high or subject == high and not node.include_high))


def _value_matches(value: Value, subject: Any) -> bool:
    """A systemAttributes value against a term value."""
    if subject is None:
        return False
    if isinstance(subject, list):
        return any(_value_matches(value, s) for s in subject)
    if isinstance(subject, bool):
        return value.text.lower() == str(subject).lower()
    if isinstance(subject, int | float):
        number = _number(value.text)
        return number == subject if number is not None else _full_match(value, str(subject))
    return _words_match(value, str(subject))


def _is_true(value: Value) -> bool:
    return value.text.lower() == "true"


def _term_matches(term: Term, item: Record) -> bool:
    v = term.value
    match term.field:
        case "name":
            return _words_match(v, item.name)
        case "file":
            return (not item.is_folder) == _is_true(v)
        case "folder":
            return item.is_folder == _is_true(v)
        case "favorite":
            return item.favorite == _is_true(v)
        case "extension":
            ext = Value(v.text[1:], frozenset(i - 1 for i in v.wildcards)) if v.text.startswith(
                ".") else v
            return not item.is_folder and _full_match(ext, item.extension)
        case "contentType":
            if "/" not in v.text:
                v = Value(v.text + "/*", v.wildcards | {len(v.text) + 1})
            return not item.is_folder and _full_match(v, item.mime_type)
        case "tags":
            return any(_words_match(v, tag) for tag in item.tags)
        case "size":
            return not item.is_folder and (bool(v.wildcards) or int(v.text) == item.size)
        case _:
            return _value_matches(v, _attr(item.attrs, term.field))


def _scalar(field_name: str, item: Record) -> Any:
    """The value a range compares for ``field_name``."""
    match field_name:
        case "name":
            return item.name
        case "extension":
            return None if item.is_folder else item.extension
        case "contentType":
            return None if item.is_folder else item.mime_type
        case "size":
            return None if item.is_folder else item.size
        case "tags":
            return ",".join(item.tags) or None
        case _:
            return _attr(item.attrs, field_name)


def matches(node: Node, item: Record) -> bool:
    """Whether ``item`` satisfies the query tree ``node``."""
    match node:
        case And(parts):
            return all(matches(p, item) for p in parts)
        case Or(parts):
            return any(matches(p, item) for p in parts)
        case Not(part):
            return not matches(part, item)
        case Range():
            return _in_range(node, _scalar(node.field, item))
        case Term():
            return _term_matches(node, item)
    raise TypeError(f"not a query node: {node!r}")  # pragma: no cover
