"""Writing the image dataset: through single namespace operations, or in bulk.

The bulk path produces the same rows as `put` + `setxattr` per image (inode, xattr, and the
'create' and 'setxattr' provenance rows, with the same owner, group, mode and details); it
writes one capture session (<= 500 images) per transaction with COPY instead of two
transactions per image. Access is checked once per directory, as the single path would.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar, cast

import psycopg
from psycopg import errors as pg_errors

from epipe.errors import FsError
from epipe.fs import paths, xattrs
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace, translate_error
from epipe.load.images import XATTR_NAME, Image, generate

FILE_MODE = 0o644
T = TypeVar("T")


@dataclass(frozen=True)
class LoadReport:
    files: int
    directories: int
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def load_images(
    conn: psycopg.Connection,
    actor: Actor,
    *,
    under: str,
    count: int,
    seed: int,
    single: bool = False,
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Create `count` annotated images below `under` (created if missing)."""
    ns = Namespace(conn, actor)
    root = paths.split_path(under)
    started = time.perf_counter()
    files = directories = 0
    write = _write_single if single else _write_bulk
    # Generating and encoding the next directory's images overlaps with writing this one.
    for directory, images in _prefetch(_by_directory(generate(count, seed))):
        dir_path = paths.join_path([*root, *directory])
        ns.mkdir(dir_path, parents=True)
        directories += 1
        written = write(conn, ns, dir_path, images)
        files += written
        if progress:
            progress(written)
    seconds = time.perf_counter() - started
    # the image rows: inode, xattr, 'create' and 'setxattr' provenance (directories aside)
    return LoadReport(files, directories, 4 * files, seconds)


@dataclass(frozen=True)
class _Batch:
    images: list[Image]
    labels: list[str]  # each image's annotation, validated and encoded


def _by_directory(images: Iterable[Image]) -> Iterator[tuple[tuple[str, ...], _Batch]]:
    for directory, group in itertools.groupby(images, key=lambda image: image.dir):
        batch = list(group)
        path = paths.join_path(directory)
        yield directory, _Batch(batch, [xattrs.encode_value(i.labels, path=path) for i in batch])


def _prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Produce `items` in a background thread, at most `depth` ahead of the consumer."""
    done = object()
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for item in items:
                buffer.put(item)
        except BaseException as exc:
            failure.append(exc)
        finally:
            buffer.put(done)

    threading.Thread(target=produce, daemon=True, name="epipe-load-prefetch").start()
    while (item := buffer.get()) is not done:
        yield cast(T, item)
    if failure:
        raise failure[0]


def _write_single(conn: psycopg.Connection, ns: Namespace, dir_path: str, batch: _Batch) -> int:
    images = batch.images
    for image in images:
        path = f"{dir_path}/{image.name}"
        ns.put(path, size=image.size)
        ns.setxattr(path, XATTR_NAME, image.labels)
    return len(images)


def _write_bulk(conn: psycopg.Connection, ns: Namespace, dir_path: str, batch: _Batch) -> int:
    parts = paths.split_path(dir_path)
    images, labels = batch.images, batch.labels
    user, app = ns.user_id, ns.actor.app_id
    try:
        with conn.transaction():
            conn.execute(
                "SELECT fs_authorize(%s, %s::text[], 'entry')", [user, [*parts, images[0].name]]
            )
            row = conn.execute(
                "SELECT id, group_id, kind FROM fs_lookup(%s::text[])", [parts]
            ).fetchone()
            assert row is not None
            parent_id, group_id, _ = row
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT nextval('inode_ids') FROM generate_series(1, %s)", [len(images)]
                )
            ]
            with conn.cursor() as cur:
                with cur.copy(
                    "COPY inodes (id, parent_id, size, owner_id, group_id, mode, kind,"
                    " name) FROM STDIN"
                ) as copy:
                    for inode_id, image in zip(ids, images, strict=True):
                        copy.write_row(
                            (
                                inode_id,
                                parent_id,
                                image.size,
                                user,
                                group_id,
                                FILE_MODE,
                                "f",
                                image.name,
                            )
                        )
                with cur.copy("COPY xattrs (inode_id, namespace, name, value) FROM STDIN") as copy:
                    for inode_id, text in zip(ids, labels, strict=True):
                        copy.write_row((inode_id, "user", XATTR_NAME, text))
                with cur.copy(
                    "COPY prov_ops (inode_id, parent_id, user_id, op, app_id, name,"
                    " detail) FROM STDIN"
                ) as copy:
                    for inode_id, image in zip(ids, images, strict=True):
                        copy.write_row(
                            (
                                inode_id,
                                parent_id,
                                user,
                                "create",
                                app,
                                image.name,
                                f'{{"size": {image.size}}}',
                            )
                        )
                    setxattr_detail = f'{{"xattr": "user.{XATTR_NAME}"}}'
                    for inode_id, image in zip(ids, images, strict=True):
                        copy.write_row(
                            (
                                inode_id,
                                parent_id,
                                user,
                                "setxattr",
                                app,
                                image.name,
                                setxattr_detail,
                            )
                        )
    except pg_errors.UniqueViolation:
        raise FsError(
            "EEXIST",
            dir_path,
            "images with these names exist already: load into "
            "another --under or with another --seed",
        ) from None
    except psycopg.Error as exc:
        raise translate_error(exc, dir_path) from None
    return len(images)
