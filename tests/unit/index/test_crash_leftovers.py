"""A writer killed between writing a segment's deletes and committing leaves a `.del` file
that no commit names; the next writer reaches the same operation number and must still be
able to commit (tantivy refuses to create a file that exists)."""

from __future__ import annotations

import shutil
from pathlib import Path

from epipe.index.tantivy import TantivyStore
from tests.unit.index.test_score_groups import document


def test_a_delete_file_left_by_a_killed_writer_does_not_stop_the_next_commit(
    tmp_path: Path,
) -> None:
    store = TantivyStore(tmp_path / "index")
    index = store.current(writable=True)
    index.upsert([document(i, ["kiwi"], [], []) for i in (1, 2, 3)])
    index.commit()
    index.close()
    generation = index.path
    before = tmp_path / "before"
    shutil.copytree(generation, before)

    index = store.current(writable=True)
    index.delete([2])
    index.commit()
    index.close()
    written = sorted(p.name for p in generation.glob("*.del"))
    assert written, "the delete wrote no .del file: the test needs another way to leave one"

    # the state a kill -9 leaves: the old commit, the new .del file, the managed-files list
    crashed = tmp_path / "crashed"
    shutil.copytree(before, crashed)
    for name in [*written, ".managed.json"]:
        shutil.copy(generation / name, crashed / name)
    shutil.rmtree(generation)
    shutil.move(crashed, generation)

    index = store.current(writable=True)
    assert index.count() == 3
    index.delete([2])  # the same operation again, as a replay does
    index.commit()
    index.close()
    assert store.current(writable=False).count() == 2
