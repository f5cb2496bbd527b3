"""File names as the OS gives them, written where a format needs text, without loss.

Inside clipseek a path is a `str` as Python's `os` functions return it: bytes of a name that are not
valid UTF-8 arrive as lone surrogates U+DC80..U+DCFF (PEP 383, "surrogateescape"), and
`os.fsencode(path)` gives the exact bytes back. Where a path leaves the program:

- JSON (`json_text`): the path as a JSON string whose surrogates are written as `\\udcXX` escapes,
  so the document is valid UTF-8; `os.fsencode(json.loads(doc)[...])` gives the exact name back.
- Lines of text (`--format paths`, CSV cells, tables, messages): `quote_path`. A name of printable
  characters is written as it is; any other name (a control character such as a newline or a tab,
  bytes that are not UTF-8, a leading double quote) is written in double quotes with C escapes:
  `\\n`, `\\t`, `\\r`, `\\\\`, `\\"`, and `\\xHH` for any other byte of the name. `unquote_path` reverses it.
  `--print0` writes the raw bytes of each name, NUL-terminated, instead.
- SQLite (`db_value`/`from_db`): a UTF-8 name as TEXT (as databases always held), any other name as a
  BLOB of its exact bytes.
- Parquet: a `path` string column (the name, or U+FFFD for bytes that are not UTF-8) and a
  `path_bytes` binary column with the exact bytes (`embed.shards`).
"""

from __future__ import annotations

import json
import os
import re

_SURROGATE = re.compile("[\ud800-\udfff]")
_SIMPLE_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", '"': '\\"'}
_UNESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"'}


def _plain(ch: str) -> bool:
    return ch.isprintable() and not ("\ud800" <= ch <= "\udfff")


def needs_quoting(path: str) -> bool:
    return path.startswith('"') or not all(map(_plain, path))


def quote_path(path: str) -> str:
    """`path` as one line of printable text that `unquote_path` turns back into the same name."""
    if not needs_quoting(path):
        return path
    out = []
    for ch in path:
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif _plain(ch):
            out.append(ch)
        else:  # its bytes in the name: one for a surrogate escape or ASCII control, more for others
            out.append("".join(f"\\x{b:02x}" for b in os.fsencode(ch)))
    return '"' + "".join(out) + '"'


def unquote_path(text: str) -> str:
    """The name that `quote_path` wrote as `text`."""
    if not text.startswith('"'):
        return text
    if len(text) < 2 or not text.endswith('"'):
        raise ValueError(f"unterminated quoted path: {text!r}")
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
        elif body[i + 1:i + 2] == "x":
            out.append(int(body[i + 2:i + 4], 16))
            i += 4
        else:
            out += _UNESCAPES[body[i + 1]]
            i += 2
    return os.fsdecode(bytes(out))


def json_text(obj, indent: int | None = None) -> str:
    """`json.dumps` with non-ASCII text kept readable and lone surrogates (name bytes that are not
    UTF-8) written as `\\udcXX` escapes: always valid UTF-8, and Python's `json` reads the same str."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def db_value(path: str) -> str | bytes:
    """How a path is stored in SQLite: TEXT when it is valid UTF-8, else a BLOB of its exact bytes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path)


def from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, (bytes, memoryview)) else value


def prefix_ranges(folder: str) -> list[str | bytes]:
    """Bounds [lo, hi, lo, hi] of the paths under `folder` as stored by `db_value`: a range over the
    TEXT paths, then one over the BLOB paths (each uses the path index: 'a/b/' <= p < 'a/b0')."""
    prefix = folder.rstrip(os.sep) + os.sep
    raw = os.fsencode(prefix)
    text = db_value(prefix)
    text_hi = text[:-1] + (chr(ord(os.sep) + 1) if isinstance(text, str) else bytes([raw[-1] + 1]))
    return [text, text_hi, raw, raw[:-1] + bytes([raw[-1] + 1])]


def as_bytes(path: str) -> bytes:
    return os.fsencode(path)


def text_or_replacement(path: str) -> str:
    """A valid UTF-8 string for a display-only column: bytes that are not UTF-8 become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")
