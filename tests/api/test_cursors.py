"""Signed search cursors and their secret (pure, and the secret file)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from epipe.errors import ConfigError
from epipe.search.query import QueryError
from epipe.settings import Settings
from search_api.cursors import SECRET_FILE, CursorSigner, load_secret


def test_the_secret_is_made_once_private_and_then_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = load_secret(settings)
    path = tmp_path / "home" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_secret(settings) == first
    assert [p.name for p in path.parent.iterdir()] == [SECRET_FILE]  # no temporary left


def test_a_configured_secret_wins_and_must_be_long(tmp_path: Path) -> None:
    long = "s" * 32
    assert load_secret(Settings(home=tmp_path, cursor_secret=SecretStr(long))) == long.encode()
    assert not (tmp_path / SECRET_FILE).exists()
    with pytest.raises(ConfigError, match="EPIPE_CURSOR_SECRET"):
        load_secret(Settings(home=tmp_path, cursor_secret=SecretStr("short")))


def test_a_cursor_decodes_only_with_its_secret_query_and_sort() -> None:
    signer = CursorSigner(b"k" * 32)
    cursor = signer.encode("f1", "b.jpg", 7)
    assert signer.decode(cursor, "f1", "name") == ("b.jpg", 7)
    assert signer.decode(cursor, "f1", "-path") == ("b.jpg", 7)
    for wrong, message in [
        (CursorSigner(b"x" * 32).decode, "gave out"),
        (lambda c, f, s: signer.decode(c, "f2", s), "another query"),
        (lambda c, f, s: signer.decode(c, f, "size"), "sorted by size"),
        (lambda c, f, s: signer.decode(c[:-1] + "A", f, s), "gave out"),
        (lambda c, f, s: signer.decode(c.split(".")[0], f, s), "gave out"),
    ]:
        with pytest.raises(QueryError, match=message) as caught:
            wrong(cursor, "f1", "name")
        assert caught.value.part == "cursor"


@pytest.mark.parametrize(
    ("key", "inode_id", "sort"),
    [(1.5, 1, "size"), (True, 1, "mtime"), ("1", 1, "size"), ("x", 1, "score"), (1, -1, "size")],
)
def test_a_signed_cursor_must_still_fit_the_sort(key: object, inode_id: int, sort: str) -> None:
    signer = CursorSigner(b"k" * 32)
    with pytest.raises(QueryError, match="does not fit"):
        signer.decode(signer.encode("f", key, inode_id), "f", sort)
