"""Work spread over the metastore's connections: results in order, nothing left running
when an error comes out. Pure logic: no metastore is contacted."""

from __future__ import annotations

import threading

import pytest

from epipe.errors import ConfigError
from epipe.hms.metastore import Metastore, MetastoreUnavailable


@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_results_come_in_the_order_of_the_items(parallel: int) -> None:
    metastore = Metastore("thrift://localhost:9", parallel=parallel)
    try:
        assert metastore._each(lambda n: [n, -n], list(range(20))) == [
            x for n in range(20) for x in (n, -n)
        ]
    finally:
        metastore.close()


def test_every_item_is_done_before_the_first_error_is_raised() -> None:
    metastore = Metastore("thrift://localhost:9", parallel=3)
    done: list[int] = []
    slow = threading.Event()

    def work(n: int) -> list[int]:
        if n == 0:
            raise MetastoreUnavailable("gone")
        if n == 5:
            slow.wait(5)
        done.append(n)
        return [n]

    threading.Timer(0.2, slow.set).start()
    try:
        with pytest.raises(MetastoreUnavailable, match="gone"):
            metastore._each(work, list(range(6)))
        assert sorted(done) == [1, 2, 3, 4, 5]
    finally:
        metastore.close()


def test_no_connection_at_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        Metastore("thrift://localhost:9", parallel=0)
