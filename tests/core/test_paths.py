"""Every name the OS can give survives each text form clipseek writes it in."""

import json
import os
import random

import pytest

from clipseek.core.paths import db_value, from_db, json_text, quote_path, unquote_path

NAMES = [b"plain.png", b"bad\xff\xfe.png", b"new\nline.png", b"tab\t.png", b'"quoted.png', b'mid"q.png',
         b"back\\slash.png", "café ☕.png".encode(), b"\x1b[31mred.png", "nel\u0085.png".encode(),
         "rtl\u202e.png".encode(), b"\\x41.png", b"/abs/dir/\x80.jpg", b"cr\r.png"]


def random_names(n=500):
    rng = random.Random(0)
    alphabet = list(range(1, 256))
    alphabet.remove(ord("/"))
    return [bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def test_random_names_round_trip():
    for raw in random_names():
        test_round_trips(raw)


@pytest.mark.parametrize("raw", NAMES)
def test_round_trips(raw):
    name = os.fsdecode(raw)
    quoted = quote_path(name)
    assert os.fsencode(unquote_path(quoted)) == raw
    assert quoted.isprintable() and "\n" not in quoted
    assert quoted == name or quoted.startswith('"')
    doc = json_text({"path": name})
    assert os.fsencode(json.loads(doc.encode("utf-8").decode("utf-8"))["path"]) == raw
    assert os.fsencode(from_db(db_value(name))) == raw


def test_plain_names_are_written_as_they_are():
    for name in ("photo.jpg", "café ☕.png", "a b/c d.png", "back\\slash", 'mid"quote'):
        assert quote_path(name) == name
    assert quote_path("new\nline") == '"new\\nline"'
    assert quote_path(os.fsdecode(b"bad\xff")) == '"bad\\xff"'
    assert quote_path('"q') == '"\\"q"'
    assert db_value("café") == "café" and db_value(os.fsdecode(b"\xff")) == b"\xff"
