"""The search-index contract: writes, deletes, generations and query semantics, for both
engines (tantivy here; Elasticsearch where Docker runs)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from epipe.index.document import Document, build
from epipe.index.engine import IndexStore, SearchIndex
from epipe.search.query import QueryError, SearchQuery, parse_predicate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture(params=["tantivy", "elasticsearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexStore]:
    if request.param == "tantivy":
        from epipe.index.tantivy import TantivyStore

        yield TantivyStore(tmp_path / "index")
        return
    url = request.getfixturevalue("elasticsearch_url")
    from epipe.index.elasticsearch import ElasticsearchStore

    es = ElasticsearchStore(url)
    for name in es._generations():
        es.client.indices.delete(index=name)
    yield es


def node(
    inode_id: int,
    path: str,
    ancestors: list[int],
    kind: str = "file",
    size: int = 0,
    xattrs: dict[str, Any] | None = None,
    owner: str = "alice",
    days: int = 0,
    version: int = 1,
) -> Document:
    names = path.split("/") if path != "/" else [""]
    row = {
        "id": inode_id,
        "parent_id": ancestors[-1] if ancestors else None,
        "name": names[-1],
        "kind": kind,
        "size": size,
        "mode": 0o644,
        "owner": owner,
        "group": "g",
        "mtime": T0 + timedelta(days=days),
        "ctime": T0,
    }
    return build(row, names, ancestors, xattrs, version)[0]


CORPUS = [
    node(1, "/", [], "dir"),
    node(2, "/Projects", [1], "dir"),
    node(3, "/Projects/cars", [1, 2], "dir"),
    node(4, "/Projects/cars/img", [1, 2, 3], "dir"),
    node(
        5,
        "/Projects/cars/img/a.jpg",
        [1, 2, 3, 4],
        size=100,
        days=1,
        xattrs={
            "labels": {
                "objects": {"bicycle": 4, "car": 1},
                "camera": "front",
                "weather": "heavy rain",
                "reviewed": True,
                "tags": ["x", "y"],
            }
        },
    ),
    node(
        6,
        "/Projects/cars/img/b.png",
        [1, 2, 3, 4],
        size=300,
        days=2,
        xattrs={"labels": {"objects": {"bicycle": 2.5}, "camera": "rear"}},
    ),
    node(
        7,
        "/Projects/cars/img/c.jpg",
        [1, 2, 3, 4],
        size=200,
        days=3,
        owner="bob",
        xattrs={"labels": {"objects": {"bicycle": "many"}, "weird key": {"n": 5}}},
    ),
    node(8, "/Projects/bikes", [1, 2], "dir"),
    node(9, "/Projects/bikes/rain.txt", [1, 2, 8], size=5, days=4),
]


@pytest.fixture
def index(store: IndexStore) -> Iterator[SearchIndex]:
    current = store.current(writable=True)
    assert current.upsert(CORPUS) == []
    current.commit()
    yield current
    current.close()


def ids(index: SearchIndex, **query: Any) -> list[int]:
    page = index.search(SearchQuery(**query))
    return [hit.doc["id"] for hit in page.hits]


def test_documents_come_back_as_written_once_each(index: SearchIndex) -> None:
    assert index.get([5, 9, 404]) == {5: CORPUS[4], 9: CORPUS[8]}
    assert index.count() == len(CORPUS)
    assert [d["id"] for batch in index.scan(batch=4) for d in batch] == list(range(1, 10))


def test_an_upsert_replaces_never_duplicates(index: SearchIndex) -> None:
    newer = node(5, "/Projects/cars/img/renamed.jpg", [1, 2, 3, 4], size=7, version=2)
    assert index.upsert([newer]) == []
    assert index.upsert([newer]) == []  # a replay
    index.commit()
    assert index.get([5]) == {5: newer}
    assert index.count() == len(CORPUS)


def test_deletes_by_id(index: SearchIndex) -> None:
    index.delete([9], version=5)
    index.delete([4, 5, 6, 7])
    index.delete([404])  # not there: nothing happens
    index.commit()
    assert sorted(d["id"] for batch in index.scan() for d in batch) == [1, 2, 3, 8]
    index.delete_all()
    index.commit()
    assert index.count() == 0


def test_deletes_below_directories_by_their_ids(index: SearchIndex) -> None:
    index.delete_below([8, 3])  # bikes and cars: their subtrees, not the directories
    index.delete_below([9, 404])  # a file and a missing id: nothing below either
    index.delete_below([])
    index.commit()
    assert sorted(d["id"] for batch in index.scan() for d in batch) == [1, 2, 3, 8]
    index.delete_below([1])
    index.commit()
    assert [d["id"] for batch in index.scan() for d in batch] == [1]


def test_free_text_matches_every_word_in_name_path_or_annotations(index: SearchIndex) -> None:
    assert set(ids(index, text="rain")) == {5, 9}  # annotation text, and a name
    assert ids(index, text="heavy RAIN") == [5]
    assert set(ids(index, text="cars img")) == {4, 5, 6, 7}
    assert ids(index, text="front bicycle") == [5]  # a value and a key
    assert ids(index, text="nothing-like-this") == []


def test_names_paths_and_annotations_are_found_by_their_words(index: SearchIndex) -> None:
    """A word is a run of letters or digits (epipe.search.words): `.`, `_`, `-`, `/` and
    any other character separate words; case changes and letter-digit changes do not."""
    index.upsert(
        [
            node(60, "/Projects/weather", [1, 2], "dir"),
            node(61, "/Projects/weather/rain-day.jpg", [1, 2, 60]),
            node(62, "/Projects/weather/RainyDay.png", [1, 2, 60]),
            node(63, "/Projects/weather/frame_0001.jpg", [1, 2, 60]),
            node(64, "/Projects/weather/2024_raw.v2", [1, 2, 60], "dir"),
            node(65, "/Projects/weather/2024_raw.v2/x.tif", [1, 2, 60, 64]),
            node(66, "/Projects/weather/y.tif", [1, 2, 60], xattrs={"author": "john.smith"}),
        ]
    )
    index.commit()
    found: dict[str, set[int]] = {
        "rain": {5, 9, 61},  # "heavy rain" (annotation), rain.txt, rain-day.jpg
        "txt": {9},
        "rain.txt": {9},
        "RAIN.TXT": {9},
        "day": {61},
        "rain-day": {61},
        "rain day jpg": {61},
        "rainyday": {62},
        "RainyDay.png": {62},
        "rainy": set(),  # one word: RainyDay
        "frame": {63},
        "0001": {63},
        "frame_0001": {63},
        "001": set(),  # whole words, as written (not as numbers, nor their parts)
        "raw": {64, 65},  # the directory's name, and a directory above the file
        "2024 v2 tif": {65},
        "smith": {66},
        "john.smith": {66},
        "weather/2024_raw.v2/x.tif": {65},
    }
    assert {q: set(ids(index, text=q)) for q in found} == found
    assert scores(index, text="raw") == [(64, 3.0), (65, 2.0)]  # the name, then the path


def test_a_word_of_40_bytes_or_more_is_neither_indexed_nor_searched(index: SearchIndex) -> None:
    index.upsert(
        [
            node(70, f"/Projects/cars/{'k' * 39}.bin", [1, 2, 3]),
            node(71, f"/Projects/cars/{'m' * 40}.bin", [1, 2, 3]),
        ]
    )
    index.commit()
    assert ids(index, text="k" * 39) == [70]
    assert set(ids(index, text="bin")) == {70, 71}
    assert set(ids(index, text=f"bin {'m' * 40}")) == {70, 71}  # the long word is left out


@pytest.mark.parametrize("text", ["", "   ", "\t\n", "...", "-_/.", "m" * 40])
def test_a_q_without_words_is_the_same_query_error_on_every_engine(
    index: SearchIndex, text: str
) -> None:
    with pytest.raises(QueryError, match="q: has no searchable words") as caught:
        index.search(SearchQuery(text=text))
    assert caught.value.part == "q"


def scores(index: SearchIndex, **query: Any) -> list[tuple[int, float | None]]:
    page = index.search(SearchQuery(sort="score", **query))
    return [(hit.doc["id"], hit.score) for hit in page.hits]


def test_a_word_scores_by_the_best_place_it_is_found_name_path_then_annotations(
    index: SearchIndex,
) -> None:
    index.upsert(
        [
            node(30, "/Projects/cars/img/zebra.jpg", [1, 2, 3, 4]),
            node(31, "/Projects/cars/zebra", [1, 2, 3], "dir"),
            node(32, "/Projects/cars/zebra/x.jpg", [1, 2, 3, 31]),
            node(33, "/Projects/cars/img/y.jpg", [1, 2, 3, 4], xattrs={"animal": "zebra"}),
            node(34, "/Projects/cars/zebra/zebra.jpg", [1, 2, 3, 31], xattrs={"zebra": 1}),
        ]
    )
    index.commit()
    # name 3 > a directory above 2 > annotations 1; a word counts once, at its best place
    assert scores(index, text="zebra") == [(30, 3.0), (31, 3.0), (34, 3.0), (32, 2.0), (33, 1.0)]
    # words add up: "cars" is a directory of each (2)
    assert scores(index, text="zebra cars") == [
        (30, 5.0),
        (31, 5.0),
        (34, 5.0),
        (32, 4.0),
        (33, 3.0),
    ]


def test_identical_documents_score_the_same_whatever_other_projects_hold(
    index: SearchIndex,
) -> None:
    mine = [
        node(40, "/Projects/cars/img/twin-1.jpg", [1, 2, 3, 4], xattrs={"note": "codename"}),
        node(41, "/Projects/cars/img/twin-2.jpg", [1, 2, 3, 4], xattrs={"note": "qzxv"}),
    ]
    index.upsert(mine)
    index.commit()
    own = {"projects": frozenset({"cars"})}
    queries: list[dict[str, Any]] = [
        {"text": "codename"},
        {"text": "qzxv"},
        {"text": "twin jpg"},
        {"text": "img", "limit": 3},
    ]

    def answers() -> list[list[tuple[int, float | None]]]:
        return [scores(index, **own, **query) for query in queries]

    before = answers()
    assert before[0] == [(40, 1.0)] and before[1] == [(41, 1.0)]  # the same: it is found
    # another project: the guessed word, many times, in names and annotations; and bulk
    index.upsert(
        [
            node(100 + i, f"/Projects/bikes/codename-{i}.jpg", [1, 2, 8], xattrs={"codename": i})
            for i in range(50)
        ]
        + [node(200 + i, f"/Projects/bikes/img-{i}.jpg", [1, 2, 8]) for i in range(200)]
    )
    index.commit()
    assert answers() == before
    index.delete(range(100, 400))
    index.delete([9])
    index.commit()
    assert answers() == before


def test_filters(index: SearchIndex) -> None:
    assert set(ids(index, under="/Projects/cars")) == {4, 5, 6, 7}
    assert ids(index, under="/Projects/none") == []
    assert set(ids(index, type="dir")) == {1, 2, 3, 4, 8}
    assert set(ids(index, ext="JPG")) == {5, 7}
    assert ids(index, owner="bob") == [7]
    assert set(ids(index, size_min=100, size_max=200)) == {5, 7}
    assert set(
        ids(index, modified_after=T0 + timedelta(days=2), modified_before=T0 + timedelta(days=3))
    ) == {6, 7}
    assert set(ids(index, projects=frozenset({"bikes"}))) == {8, 9}
    assert ids(index, projects=frozenset()) == []


def test_artifact_kinds_filter_exactly_and_with_the_rest_of_the_query(
    index: SearchIndex,
) -> None:
    index.upsert(
        [
            node(50, "/Projects/cars/models", [1, 2, 3], "dir"),
            node(51, "/Projects/cars/models/resnet.PB", [1, 2, 3, 50]),
            node(52, "/Projects/cars/models/saved_model", [1, 2, 3, 50], "dir"),
            node(53, "/Projects/cars/train.csv", [1, 2, 3]),
            node(54, "/Projects/cars/images", [1, 2, 3], "dir"),
            node(55, "/Projects/bikes/bikes.onnx", [1, 2, 8]),
            node(56, "/Projects/bikes/notes.ipynb", [1, 2, 8]),
            node(57, "/Projects/bikes/model.txt", [1, 2, 8]),  # a model by its words only
        ]
    )
    index.commit()
    held = {i: doc["artifact"] for i, doc in index.get([51, 54, 57]).items()}
    assert held == {51: "model", 54: "dataset", 57: None}
    assert set(ids(index, artifact="model")) == {51, 52, 55}
    assert set(ids(index, artifact="dataset")) == {53, 54}
    assert ids(index, artifact="notebook") == [56]
    assert set(ids(index, artifact="image")) == {5, 6, 7}
    assert set(ids(index, artifact="model", type="file")) == {51, 55}
    assert set(ids(index, artifact="model", under="/Projects/cars")) == {51, 52}
    assert ids(index, artifact="model", projects=frozenset({"bikes"})) == [55]
    assert ids(index, artifact="model", projects=frozenset()) == []
    assert ids(index, artifact="model", text="resnet") == [51]
    assert ids(index, artifact="model", text="txt") == []
    # a rename that changes the kind: the newer document holds the new one only
    index.upsert([node(53, "/Projects/cars/train.pb", [1, 2, 3], version=2)])
    index.commit()
    assert set(ids(index, artifact="model")) == {51, 52, 53, 55}
    assert ids(index, artifact="dataset") == [54]


@pytest.mark.parametrize(
    ("predicates", "expected"),
    [
        (["labels.objects.bicycle>3"], {5}),
        (["labels.objects.bicycle>=2.5"], {5, 6}),
        (["labels.objects.bicycle<3"], {6}),
        (["labels.objects.bicycle<=4", "labels.objects.car=1"], {5}),
        (["labels.objects.bicycle=4"], {5}),
        (["labels.objects.bicycle=many"], {7}),
        (["labels.camera=front"], {5}),
        (["labels.camera!=front"], {6}),
        (["labels.reviewed=true"], {5}),
        (["labels.tags=y"], {5}),
        (["labels.weather exists"], {5}),
        (["labels.objects exists"], {5, 6, 7}),
        (['labels."weird key".n>4'], {7}),
        (["labels.weather=null", "labels exists"], {6, 7}),
        (["labels.camera=FRONT"], set()),  # exact, case-sensitive
    ],
)
def test_annotation_predicates(
    index: SearchIndex, predicates: list[str], expected: set[int]
) -> None:
    query = SearchQuery(xattr=tuple(parse_predicate(p) for p in predicates))
    assert {hit.doc["id"] for hit in index.search(query).hits} == expected


def test_sorting_paging_and_totals(index: SearchIndex) -> None:
    files = {"type": "file"}
    assert ids(index, sort="size", **files) == [9, 5, 7, 6]
    assert ids(index, sort="-size", **files) == [6, 7, 5, 9]
    assert ids(index, sort="-mtime", **files) == [9, 7, 6, 5]
    assert ids(index, sort="name", **files) == [5, 6, 7, 9]
    assert ids(index, sort="path", **files) == [9, 5, 6, 7]
    page = index.search(SearchQuery(type="file", sort="size", limit=2, offset=1))
    assert [h.doc["id"] for h in page.hits] == [5, 7]
    assert page.total == 4
    scored = index.search(SearchQuery(text="rain"))
    assert all(hit.score is not None and hit.score > 0 for hit in scored.hits)


def test_a_new_generation_replaces_the_old_one_atomically(
    store: IndexStore, index: SearchIndex
) -> None:
    generation, fresh = store.new_generation()
    fresh.upsert(CORPUS[:3])
    fresh.commit()
    assert store.current(writable=False).count() == len(CORPUS)  # not yet visible
    fresh.close()
    index.close()
    store.activate(generation)
    assert store.current(writable=False).count() == 3
    dropped, spare = store.new_generation()
    spare.close()
    store.discard(dropped)
    assert store.current(writable=False).count() == 3


def test_the_generation_a_rebuild_replaced_stays_for_whoever_still_writes_to_it(
    store: IndexStore, index: SearchIndex
) -> None:
    """A rebuild beside a running consumer must not delete the index that consumer writes
    to: the consumer finds its generation no longer current and stops writing to it."""
    old = store.current_generation()
    generation, fresh = store.new_generation()
    fresh.upsert(CORPUS[:2])
    fresh.commit()
    fresh.close()
    store.activate(generation)
    assert store.current_generation() == generation != old
    assert index.count() == len(CORPUS)  # the consumer's own generation, still whole
    assert store.current(writable=False).count() == 2


def test_a_reader_follows_every_swap(store: IndexStore, index: SearchIndex) -> None:
    reader = store.reader()
    assert reader.count() == len(CORPUS)
    for size in (3, 5):  # two rebuilds: each swap is seen by the next read
        generation, fresh = store.new_generation()
        fresh.upsert(CORPUS[:size])
        fresh.commit()
        fresh.close()
        store.activate(generation)
        assert reader.count() == size
        assert ids(reader, sort="path", limit=100) == sorted(
            (d["id"] for d in CORPUS[:size]), key=lambda i: CORPUS[i - 1]["path"]
        )


def pages(index: SearchIndex, limit: int, **query: Any) -> Iterator[list[int]]:
    after = None
    while True:
        page = index.search(SearchQuery(limit=limit, after=after, **query))
        yield [hit.doc["id"] for hit in page.hits]
        if len(page.hits) < limit:
            return
        last = page.hits[-1]
        after = (last.key, last.doc["id"])


@pytest.mark.parametrize("sort", ["name", "-name", "path", "size", "-size", "-mtime", "score"])
def test_cursor_pages_cover_every_hit_once_in_order(index: SearchIndex, sort: str) -> None:
    query: dict[str, Any] = (
        {"sort": sort, "text": "projects"} if sort == "score" else {"sort": sort}
    )
    whole = ids(index, limit=100, **query)
    walked = [i for page in pages(index, 2, **query) for i in page]
    assert walked == whole
    assert len(set(walked)) == len(walked) == (len(CORPUS) if sort != "score" else len(whole))


def test_cursors_stay_stable_while_files_change(index: SearchIndex) -> None:
    walker = pages(index, 3, sort="path")
    first = next(walker)
    assert first == [1, 2, 8]  # /, /Projects, /Projects/bikes
    # before the cursor: a new file; after it: one removed, one added
    index.upsert([node(20, "/A", [1]), node(21, "/Projects/cars/img/aa.jpg", [1, 2, 3, 4])])
    index.delete([6])
    index.commit()
    rest = [i for page in walker for i in page]
    assert rest == [9, 3, 4, 5, 21, 7]  # no repeats, nothing skipped, the removed one gone


@pytest.mark.parametrize("written", ["shuffled", "in id order"])
@pytest.mark.parametrize("sort", ["score", "size", "-size", "name", "-name", "mtime", "-mtime"])
def test_pages_are_exact_when_equal_keys_reach_past_the_window(
    index: SearchIndex, sort: str, written: str
) -> None:
    # 1,600 files matching "same" (in the name or a directory: two scores) with few distinct
    # sizes, names and days, so that groups of equal keys are larger than a first window.
    # Shuffled over several commits, tantivy's own order of ties is not the id order; in id
    # order in one commit, a window holds the lowest ids only, so the last pages of a group
    # find too few of it there.
    order = list(range(10_000, 11_600))
    batches = [order]
    if written == "shuffled":
        random.Random(3).shuffle(order)
        batches = [order[start : start + 400] for start in range(0, 1600, 400)]
    for batch in batches:
        index.upsert(
            [
                node(
                    i,
                    f"/Projects/ties/d{i}/same.jpg" if i % 4 else f"/Projects/same/d{i}/o.jpg",
                    [1, 2, 3],
                    size=i % 2,
                    days=i % 3,
                )
                for i in batch
            ]
        )
        index.commit()
    query: dict[str, Any] = {"text": "same", "sort": sort}
    # windows wider than the 1,600 matches: every one sorted at once
    whole = [
        *index.search(SearchQuery(limit=1000, **query)).hits,
        *index.search(SearchQuery(limit=600, offset=1000, **query)).hits,
    ]
    keys = [(h.key, h.doc["id"]) for h in whole]
    descending = sort == "score" or sort.startswith("-")
    for (key, inode_id), (next_key, next_id) in itertools.pairwise(keys):
        assert inode_id < next_id if key == next_key else (key > next_key) == descending
    expected = [h.doc["id"] for h in whole]
    assert len(expected) == 1600
    assert ids(index, limit=5, **query) == expected[:5]
    assert [i for page in pages(index, 70, **query) for i in page] == expected


def test_relevance_pages_are_exact_when_a_group_of_ties_has_a_gap_in_id_order(
    index: SearchIndex,
) -> None:
    # 4,200 files named "same" tie on relevance; 800 holding "same" in an annotation only
    # score lower and sit in one block of ids after the first 1,024 of the others. tantivy
    # reads each score's group by its own query in id order (keyset.py); were the group read
    # past a first window (1,024 hits) a chunk at a time (`Ties`, for q of many words), its
    # first chunk would end inside the gap, and widening the window (4,096 hits) would not
    # reach the group's end either, so the page would be settled only by a second chunk that
    # goes on where the first ended (the last case of the next test).
    gap = range(11_024, 11_824)

    def file(i: int) -> Document:
        if i in gap:
            return node(i, f"/Projects/ties/d{i}/other.jpg", [1, 2, 3], xattrs={"n": "same"})
        return node(i, f"/Projects/ties/d{i}/same.jpg", [1, 2, 3])

    files = range(10_000, 15_000)
    index.upsert([file(i) for i in files])
    index.commit()
    expected = [i for i in files if i not in gap] + list(gap)  # names score higher
    assert [i for page in pages(index, 70, text="same", sort="score") for i in page] == expected


@pytest.mark.parametrize(
    "text",
    [
        "same",  # tantivy: each score's group is one query, read by id
        "same tie tie",  # two words, one counted twice: 3 + 2 * 3
        "same tie group of equal scores",  # more words than such a query takes: read otherwise
    ],
)
def test_a_tie_group_of_thousands_pages_in_id_order(index: SearchIndex, text: str) -> None:
    # 5,000 files holding the words in a directory above, hence of one score, written
    # shuffled over several commits (tantivy's own order of equal scores is then not the id
    # order), after 500 scoring more (the words in their name) and before 500 scoring less
    # (in their annotations). Pages of 700 walk the group in id order, from the first page's
    # window on.
    order = list(range(20_000, 26_000))
    random.Random(5).shuffle(order)
    words = "same-tie-group-of-equal-scores"

    def file(i: int) -> Document:
        if i % 12 == 0:  # below the group
            return node(i, f"/Projects/ties/d{i}/x.jpg", [1, 2, 3], xattrs={"note": words})
        if i % 12 == 1:  # above it
            return node(i, f"/Projects/ties/d{i}/{words}.jpg", [1, 2, 3])
        return node(i, f"/Projects/{words}/d{i}/x.jpg", [1, 2, 3])

    for start in range(0, len(order), 1500):
        index.upsert([file(i) for i in order[start : start + 1500]])
        index.commit()
    above = [i for i in sorted(order) if i % 12 == 1]
    below = [i for i in sorted(order) if i % 12 == 0]
    group = [i for i in sorted(order) if i % 12 > 1]
    assert len(group) == 5000 and len(above) == len(below) == 500
    walked = list(pages(index, 700, text=text, sort="score"))
    assert [i for page in walked for i in page] == above + group + below
    assert len(walked) == 9  # 6,000 hits: eight full pages and one of 400
    whole = index.search(SearchQuery(text=text, sort="score", limit=1000, offset=600)).hits
    assert [h.doc["id"] for h in whole] == group[100:1100]
    assert len({h.score for h in whole}) == 1


def test_a_generation_records_the_position_it_holds(store: IndexStore, index: SearchIndex) -> None:
    from epipe.index.position import Identity, IndexPosition

    assert store.position(index.generation) is None
    held = IndexPosition(0x1_0000_00A0, Identity("7300000000000000001", "epipe"))
    store.record_position(index.generation, held)
    assert store.position(index.generation) == held


def test_the_fields_searches_read_agree_with_the_documents(
    store: IndexStore, index: SearchIndex
) -> None:
    assert index.check_fields(CORPUS) == {}
    larger: dict[str, Any] = {**CORPUS[4], "size": CORPUS[4]["size"] + 1}
    other_owner: dict[str, Any] = {**CORPUS[5], "owner": "mallory"}
    changed = [cast(Document, larger), cast(Document, other_owner)]
    assert index.check_fields(changed) == {larger["id"]: "size", other_owner["id"]: "owner"}


def test_a_scan_under_a_directory_yields_what_is_below_it_in_id_order(index: SearchIndex) -> None:
    below = [[d["id"] for d in batch] for batch in index.scan(batch=2, under=2)]
    assert below == [[3, 4], [5, 6], [7, 8], [9]]
    assert [d["id"] for batch in index.scan(under=8) for d in batch] == [9]
    assert list(index.scan(under=9)) == []  # a file: nothing below
    assert list(index.scan(under=404)) == []
