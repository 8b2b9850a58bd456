from collections.abc import Callable
from typing import Any

def parse(
    buf: bytes,
    pos: int,
    table: str,
    columns: tuple[str, ...],
    codes: bytes,
    converters: tuple[Callable[[bytes], Any], ...],
    error: type[Exception],
    /,
) -> tuple[dict[str, Any], list[str], int]: ...
