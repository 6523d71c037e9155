"""The JSON re-serializations a sender may have signed instead of the bytes it sent.

The platform's own sample verifier HMACs ``JSON.stringify(req.body)``; Python senders sign
``json.dumps(payload)``, PHP ones ``json_encode(json_decode($body, true))``, and so on, then
send other bytes. Each library is a ``Style`` (layout, escapes, key order, number format);
``rewrites`` yields the body as each would print it, lazily and most common first, merging
libraries that give the same bytes. Used by the doctor only, never on the verification path
(which stays over the raw bytes).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import NoReturn

from inspector.jsontypes import JSONValue
from inspector.signatures.mistake import REWRITE, Mistake, Variant

MAX_JSON_BODY = 1024 * 1024  # parsing and re-encoding cost several times the body size
RAW_BODY = "sign and verify the raw body"

# Strings first, so that digits inside them are never taken for numbers.
_STRINGS = re.compile(r'("(?:[^"\\]|\\.)*")')
_NUMBERS = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_BYTE_TOKENS = re.compile(rb'("(?:[^"\\]|\\.)*")|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')
_LONG_DIGITS = re.compile(rb"\d{16}")  # an integer JavaScript or PHP cannot hold exactly


@dataclass(frozen=True)
class Style:
    """How one library prints a parsed JSON value."""

    name: str
    indent: int | None = None
    spaced: bool = False  # ", " and ": " (Python's defaults) instead of "," and ":"
    ascii: bool = False  # non-ASCII as \\uXXXX
    keys: str = "kept"  # "kept" | "sorted" | "javascript" (integer-like keys first)
    numbers: str = "python"  # "python" | "javascript" (also Go) | "ruby" | "php"
    slashes: bool = False  # "/" as "\\/" (PHP)
    html: bool = False  # < > & U+2028 U+2029 as \\u003c... (Go)
    php_arrays: bool = False  # json_decode(..., true): {} and {"0":..,"1":..} come back as lists

    def separators(self) -> tuple[str, str]:
        if self.indent is not None:
            return (",", ": ")  # every library's pretty printer
        return (", ", ": ") if self.spaced else (",", ":")

    def layout(self) -> str:
        if self.indent is not None:
            return f"indented by {self.indent}"
        return "with ', ' and ': ' separators" if self.spaced else "compact"


JAVASCRIPT = Style("JSON.stringify(req.body)", keys="javascript", numbers="javascript")
PYTHON = Style("Python's json.dumps()", spaced=True, ascii=True)
PHP = Style("PHP json_encode()", ascii=True, slashes=True, numbers="php", php_arrays=True)
GO = Style(
    "Go encoding/json (json.Marshal of a map)", keys="sorted", numbers="javascript", html=True
)
RUBY = Style("Ruby to_json", numbers="ruby")


def _python_styles() -> list[Style]:
    styles = []
    for sort_keys in (False, True):
        for ensure_ascii in (True, False):
            for layout in ("spaced", "compact", 2, 4):
                args = []
                if layout == "compact":
                    args.append('separators=(",", ":")')
                elif isinstance(layout, int):
                    args.append(f"indent={layout}")
                if not ensure_ascii:
                    args.append("ensure_ascii=False")
                if sort_keys:
                    args.append("sort_keys=True")
                name = f"Python json.dumps(o, {', '.join(args)})" if args else PYTHON.name
                styles.append(
                    Style(
                        name,
                        indent=layout if isinstance(layout, int) else None,
                        spaced=layout == "spaced",
                        ascii=ensure_ascii,
                        keys="sorted" if sort_keys else "kept",
                    )
                )
    return styles


def _styles() -> tuple[Style, ...]:
    """Every style once, the most common senders first (the search tries them in order)."""
    python = _python_styles()
    first = [
        JAVASCRIPT,
        python[0],  # json.dumps(o)
        python[1],  # json.dumps(o, separators=(",", ":"))
        replace(JAVASCRIPT, name="JSON.stringify(body, null, 2)", indent=2),
        PHP,
        GO,
        RUBY,
    ]
    rest = [
        *python[2:],
        replace(PHP, name="PHP json_encode($o, JSON_UNESCAPED_SLASHES)", slashes=False),
        replace(PHP, name="PHP json_encode($o, JSON_UNESCAPED_UNICODE)", ascii=False),
        replace(
            PHP,
            name="PHP json_encode($o, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)",
            slashes=False,
            ascii=False,
        ),
        replace(PHP, name="PHP json_encode($o, JSON_PRETTY_PRINT)", indent=4),
        replace(GO, name="Go json.Marshal with SetEscapeHTML(false)", html=False),
        replace(GO, name='Go json.MarshalIndent(v, "", "  ")', indent=2),
        replace(RUBY, name="Ruby JSON.pretty_generate", indent=2),
    ]
    return tuple(first + rest)


STYLES = _styles()


class Rewrite(Variant[bytes]):
    """The body as one or more libraries re-serialize it. Phrased only once it matched, by
    which time every library giving the same bytes has been added to ``names``."""

    __slots__ = ("describe", "fix", "names")

    def __init__(self, value: bytes, name: str, describe: Callable[[], str], fix: str) -> None:
        super().__init__(value)
        self.count = 1
        self.names = [name]
        self.describe = describe
        self.fix = fix

    def mistakes(self) -> tuple[Mistake, ...]:
        detail = self.describe()
        says = f"the sender signed the body re-serialized by {self.names[0]}"
        if detail:
            says += f" ({detail})"
        says += " instead of the bytes it sent"
        # One name per other language: three PHP flag sets giving the same bytes is noise.
        languages = {_language(self.names[0])}
        others = []
        for name in self.names[1:]:
            if _language(name) not in languages:
                languages.add(_language(name))
                others.append(name)
        if others:
            verb = "gives" if len(others) == 1 else "give"
            says += f"; {', '.join(others)} {verb} the same bytes"
        return (Mistake(REWRITE, says, self.fix),)


def _language(name: str) -> str:
    return "JavaScript" if name.startswith("JSON.") else name.split()[0].removesuffix("'s")


class _Document:
    """A parsed JSON body and what its styles share (orderings computed once)."""

    def __init__(self, body: bytes, value: JSONValue, numbers: set[int | float]) -> None:
        self.body = body
        self.value = value
        self.numbers = numbers  # floats and long integers: those a library may print otherwise
        self._shaped: dict[tuple[str, bool], JSONValue] = {}
        self._layouts: dict[tuple[str, bool, int | None, bool, bool], str] = {}
        self._texts: dict[tuple[tuple[str, bool, int | None, bool, bool], str], str] = {}
        self._tables: dict[str, dict[str, str]] = {}

    def shaped(self, style: Style) -> JSONValue:
        key = (style.keys, style.php_arrays)
        if key not in self._shaped:
            value = _js_order(self.value) if style.keys == "javascript" else self.value
            self._shaped[key] = _php_arrays(value) if style.php_arrays else value
        return self._shaped[key]

    def text(self, style: Style) -> str:
        """The body in the style's structure (key order, arrays, whitespace, ASCII escapes)
        and numbers, shared by the styles that differ only in slashes or HTML escapes.
        Python's indenting encoder is pure Python, ten times slower than the compact one,
        so sharing matters."""
        layout = (style.keys, style.php_arrays, style.indent, style.spaced, style.ascii)
        key = (layout, style.numbers)
        if key not in self._texts:
            if layout not in self._layouts:
                self._layouts[layout] = json.dumps(
                    self.shaped(style),
                    ensure_ascii=style.ascii,
                    sort_keys=style.keys == "sorted",
                    indent=style.indent,
                    separators=style.separators(),
                )
            text = self._layouts[layout]
            table = self.table(style.numbers)
            self._texts[key] = _renumbered(text, table) if table else text
        return self._texts[key]

    def table(self, numbers: str) -> dict[str, str]:
        """Python's repr -> this number style's, for the body's numbers that differ."""
        if numbers not in self._tables:
            self._tables[numbers] = {
                python: printed
                for value in self.numbers
                if (python := repr(value)) != (printed := number(value, numbers))
            }
        return self._tables[numbers]

    def render(self, style: Style) -> bytes | None:
        try:
            text = self.text(style)
            if style.slashes:
                text = text.replace("/", "\\/")  # "/" only ever occurs inside strings
            if style.html:
                for char, escape in _HTML.items():
                    text = text.replace(char, escape)
            return text.encode("utf-8")
        except (ValueError, RecursionError):  # UnicodeEncodeError: a lone surrogate
            return None

    def describe(self, style: Style) -> str:
        """What this style changed, for the diagnosis: layout, key order, escapes, numbers."""
        parts = [style.layout()]
        try:
            if style.keys == "sorted" and _reordered(self.value, sorted):
                parts.append("keys sorted")
            elif style.keys == "javascript" and _reordered(self.value, _js_keys):
                parts.append("integer-like keys moved first, as JavaScript orders them")
            if style.php_arrays and _php_arrays(self.value) != self.value:
                parts.append('{} or {"0": ...} objects turned into arrays')
        except RecursionError:
            pass
        if style.ascii and not self.body.isascii():
            parts.append("non-ASCII characters escaped as \\uXXXX")
        if style.slashes and b"/" in self.body:
            parts.append("'/' escaped as '\\/'")
        if style.html and any(c in self.body for c in (b"<", b">", b"&")):
            parts.append("<, > and & escaped as \\u003c, \\u003e, \\u0026")
        changed = self._first_number_change(style)
        if changed:
            parts.append(changed)
        return ", ".join(parts)

    def _first_number_change(self, style: Style) -> str | None:
        for m in _BYTE_TOKENS.finditer(self.body):
            if m.group(1):
                continue
            text = m.group().decode("ascii")
            try:
                new = number(_python_number(text), style.numbers)
            except ValueError:  # more digits than int() converts
                continue
            if new != text:
                return f"the number {_short(text)} became {_short(new)}"
        return None


def rewrites(body: bytes) -> Iterator[Rewrite]:
    """The body as each library re-serializes it, most common first; nothing if it is not a
    JSON object or array, or too big. Libraries giving identical bytes share one Rewrite
    (its ``names`` grow as the generator runs); bytes equal to the body are skipped."""
    document = parse(body)
    if document is None:
        return
    seen: dict[bytes, Rewrite] = {}
    for style in STYLES:
        data = document.render(style)
        if data is None or data == body:
            continue
        if data in seen:
            seen[data].names.append(style.name)
            continue
        rewrite = Rewrite(data, style.name, partial(document.describe, style), RAW_BODY)
        seen[data] = rewrite
        yield rewrite


def parse(body: bytes) -> _Document | None:
    """The body parsed as JSON (an object or array), or None."""
    if len(body) > MAX_JSON_BODY or body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] not in (b"{", b"["):
        return None
    numbers: set[int | float] = set()

    def on_float(text: str) -> float:
        value = float(text)
        numbers.add(value)
        return value

    def on_int(text: str) -> int:
        value = int(text)
        if len(text) >= 16:
            numbers.add(value)
        return value

    try:
        value = json.loads(
            body,
            parse_float=on_float,
            parse_int=on_int if _LONG_DIGITS.search(body) else None,
            parse_constant=_refuse,
        )
    except (ValueError, RecursionError):  # JSON.parse refuses NaN too
        return None
    return _Document(body, value, numbers)


def number(value: int | float, style: str) -> str:
    """``value`` as the style's library prints it (Python ints and reprs as the baseline)."""
    if isinstance(value, int):
        limit = {"javascript": 2**53, "php": 2**63}.get(style)
        if limit is None or abs(value) < limit:
            return str(value)
        try:
            value = float(value)  # JavaScript, Go and PHP hold it as a double
        except OverflowError:
            return "null"
    if style == "python":
        return repr(value)
    if math.isinf(value) or math.isnan(value):
        return "null"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:  # JavaScript prints -0 as 0; Ruby and PHP keep the sign
        return "0" if style == "javascript" else f"{sign}0.0" if style == "ruby" else f"{sign}0"
    digits, n = _shortest(value)
    k = len(digits)
    if style == "ruby":
        if 0 < n <= 16:
            fixed = digits + "0" * (n - k) + ".0" if k <= n else f"{digits[:n]}.{digits[n:]}"
            return sign + fixed
        if -4 < n <= 0:
            return f"{sign}0.{'0' * -n}{digits}"
        return f"{sign}{digits[0]}.{digits[1:] or '0'}e{n - 1:+03d}"
    if style == "php" and (n < -3 or n > 17):
        return f"{sign}{digits[0]}.{digits[1:] or '0'}e{n - 1:+d}"
    if style == "javascript" and not -6 < n <= 21:
        mantissa = digits[0] + (f".{digits[1:]}" if k > 1 else "")
        return f"{sign}{mantissa}e{n - 1:+d}"
    if k <= n:
        return sign + digits + "0" * (n - k)
    if n > 0:
        return f"{sign}{digits[:n]}.{digits[n:]}"
    return f"{sign}0.{'0' * -n}{digits}"


_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _shortest(value: float) -> tuple[str, int]:
    """The shortest round-trip digits of abs(value) and n, with abs(value) = 0.DIGITS × 10**n
    (the decomposition ECMAScript's Number::toString is specified in)."""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    significant = digits.lstrip("0")
    n = len(whole) + int(exponent or 0) - (len(digits) - len(significant))
    return significant.rstrip("0"), n


def _renumbered(text: str, table: dict[str, str]) -> str:
    """Python's output with the numbers in ``table`` printed another way. Only the parts
    outside strings are searched, joined by NUL (which JSON output only has escaped), so
    the callback runs once per number rather than once per token."""
    parts = _STRINGS.split(text)  # even indexes: outside strings; odd: the strings
    outside = "\0".join(parts[0::2])
    outside = _NUMBERS.sub(lambda m: table.get(m.group(), m.group()), outside)
    parts[0::2] = outside.split("\0")
    return "".join(parts)


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:24] + "..."


def _python_number(text: str) -> int | float:
    if "." in text or "e" in text or "E" in text:
        return float(text)
    return int(text)


def _refuse(name: str) -> NoReturn:
    raise ValueError(name)


def _is_index(key: str) -> bool:
    if not (key.isascii() and key.isdigit() and len(key) <= 10):
        return False
    return (key == "0" or key[0] != "0") and int(key) < 2**32 - 1


def _js_keys(keys: list[str]) -> list[str]:
    indexes = sorted((k for k in keys if _is_index(k)), key=int)
    return indexes + [k for k in keys if not _is_index(k)]


def _js_order(value: JSONValue) -> JSONValue:
    """JavaScript property order: integer-like keys first, ascending, then insertion order."""
    if isinstance(value, list):
        return [_js_order(v) for v in value]
    if isinstance(value, dict):
        return {k: _js_order(value[k]) for k in _js_keys(list(value))}
    return value


def _php_arrays(value: JSONValue) -> JSONValue:
    """What json_decode($body, true) turns objects into: an empty object and one keyed
    "0".."n-1" are PHP lists, so json_encode prints them as arrays."""
    if isinstance(value, list):
        return [_php_arrays(v) for v in value]
    if isinstance(value, dict):
        if list(value) == [str(i) for i in range(len(value))]:
            return [_php_arrays(v) for v in value.values()]
        return {k: _php_arrays(v) for k, v in value.items()}
    return value


def _reordered(value: JSONValue, order: Callable[[list[str]], list[str]]) -> bool:
    """Whether any object's keys are not already in ``order``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keys = list(item)
            if keys != order(keys):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
