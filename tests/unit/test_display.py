from __future__ import annotations

import json
import unicodedata
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epipe.fs.display import escape, json_text, utc_iso, utc_minute

UNSAFE = {"Cc", "Cs", "Zl", "Zp"}


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("plain name.jpg", "plain name.jpg"),
        ("é 日本 👩‍👩‍👧 \u00a0nbsp", "é 日本 👩‍👩‍👧 \u00a0nbsp"),
        ("a\nb", "a\\nb"),
        ("\a\b\t\v\f\r", "\\a\\b\\t\\v\\f\\r"),
        ("\x1b[2J", "\\033[2J"),
        ("\x01\x7f", "\\001\\177"),
        ("\x85\x9b", "\\302\\205\\302\\233"),
        ("\u2028\u2029", "\\342\\200\\250\\342\\200\\251"),
        ("back\\slash", "back\\\\slash"),
        ("/bad\udcff", "/bad\\377"),  # a byte the command line could not decode
        ("\ud800", "\\355\\240\\200"),
    ],
)
def test_escape_writes_controls_as_gnu_ls_escape_style(name: str, shown: str) -> None:
    assert escape(name) == shown


@given(st.text())
def test_escaped_text_holds_no_control_and_tells_names_apart(text: str) -> None:
    shown = escape(text)
    assert not any(unicodedata.category(char) in UNSAFE for char in shown)
    assert escape(text + "\n") != escape(text + "\\n")


@given(
    st.recursive(
        st.none() | st.text(), lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids)
    )
)
def test_json_text_is_exact_and_holds_no_raw_control(value: object) -> None:
    text = json_text(value, indent=2)
    assert json.loads(text) == value
    assert not any(unicodedata.category(char) in UNSAFE for char in text if char != "\n")


def test_times_are_shown_in_utc_whatever_zone_they_come_in() -> None:
    kathmandu = timezone(timedelta(hours=5, minutes=45))
    when = datetime(2026, 1, 1, 5, 50, 7, 250000, tzinfo=kathmandu)
    assert utc_iso(when) == "2026-01-01T00:05:07.250000+00:00"
    assert utc_minute(when) == "2026-01-01T00:05Z"
