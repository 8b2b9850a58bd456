"""A reader opening the current generation while a writer commits may find a file renamed
away under it (tantivy writes through temporary files): it opens again, a bounded number
of times; writers and other errors are not retried."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from epipe.index.engine import EngineError
from epipe.index.tantivy import store as tantivy_store
from epipe.index.tantivy.index import TantivyIndex
from epipe.index.tantivy.store import OPEN_ATTEMPTS, TantivyStore

VANISHED = (
    "cannot open the tantivy index at {path}: An IO error occurred: 'No such file or "
    'directory (os error 2) at path "{path}/.tmplFQ2dM"\''
)


def _failing(monkeypatch: pytest.MonkeyPatch, failures: int, message: str) -> list[bool]:
    """The first `failures` opens raise `message`; the writable flag of every open."""
    calls: list[bool] = []

    def open_index(path: Path, schema: Any, *, writable: bool, generation: str = "") -> Any:
        calls.append(writable)
        if len(calls) <= failures:
            raise EngineError(message.format(path=path))
        return TantivyIndex(path, schema, writable=writable, generation=generation)

    monkeypatch.setattr(tantivy_store, "TantivyIndex", open_index)
    return calls


@pytest.fixture
def store(tmp_path: Path) -> TantivyStore:
    store = TantivyStore(tmp_path / "index")
    store.current(writable=True).close()
    return store


def test_a_reader_opens_again_when_a_file_vanished_under_it(
    store: TantivyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _failing(monkeypatch, OPEN_ATTEMPTS - 1, VANISHED)
    index = store.reader()
    assert index.count() == 0 and index.generation == store.current_generation()
    assert calls == [False] * OPEN_ATTEMPTS


def test_a_reader_gives_up_after_its_attempts(
    store: TantivyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _failing(monkeypatch, OPEN_ATTEMPTS, VANISHED)
    with pytest.raises(EngineError, match="No such file or directory"):
        store.reader()
    assert len(calls) == OPEN_ATTEMPTS


@pytest.mark.parametrize(
    ("writable", "message"),
    [(True, VANISHED), (False, "cannot open the tantivy index at {path}: checksum mismatch")],
)
def test_a_writer_or_another_error_is_not_retried(
    store: TantivyStore, monkeypatch: pytest.MonkeyPatch, writable: bool, message: str
) -> None:
    calls = _failing(monkeypatch, 1, message)
    with pytest.raises(EngineError):
        store.current(writable=writable)
    assert calls == [writable]


OPENERS = 4


def test_processes_opening_an_empty_store_at_once_share_one_first_generation(
    tmp_path: Path,
) -> None:
    """The index consumer and the API start together on an empty store: each made the first
    generation, and one's activation removed the other's generation under it."""
    for attempt in range(20):
        root = tmp_path / f"index{attempt}"
        start = threading.Barrier(OPENERS)
        opened: list[str] = []
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_open_at, args=(root, n == 0, start, opened, errors))
            for n in range(OPENERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(opened) == OPENERS and len(set(opened)) == 1
        assert sorted(p.name for p in root.glob("g*")) == opened[:1]


def _open_at(
    root: Path,
    writable: bool,
    start: threading.Barrier,
    opened: list[str],
    errors: list[BaseException],
) -> None:
    store = TantivyStore(root)  # each its own, as separate processes hold them
    start.wait()
    try:
        index = store.current(writable=writable)
        opened.append(index.generation)
        index.close()
    except BaseException as exc:  # collected: the assertion names it
        errors.append(exc)
