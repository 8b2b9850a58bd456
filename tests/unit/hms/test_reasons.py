"""What a Thrift failure of the metastore reads as, in warnings and dead letters."""

from __future__ import annotations

from pymetastore.hive_metastore import ttypes as hive
from thrift.Thrift import TApplicationException

from epipe.hms.metastore import reason_of


def test_an_undeclared_failure_says_what_unknown_result_means() -> None:
    # what the generated client raises when HMS answers with an exception it does not declare
    exc = TApplicationException(
        TApplicationException.MISSING_RESULT, "get_table_objects_by_name failed: unknown result"
    )
    reason = reason_of(exc)
    assert reason.startswith("get_table_objects_by_name failed: unknown result (")
    assert "does not declare" in reason and "its log names it" in reason


def test_a_declared_failure_is_its_own_message() -> None:
    assert reason_of(hive.MetaException(message="table t exists")) == "table t exists"
    other = TApplicationException(TApplicationException.INTERNAL_ERROR, "boom")
    assert reason_of(other) == "boom"
    assert reason_of(hive.InvalidOperationException()) == "InvalidOperationException"
