"""Log sequence numbers: PostgreSQL's 'X/Y' notation <-> integers. Pure."""

from __future__ import annotations

import re

_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def lsn_to_str(lsn: int) -> str:
    """0x16B3748 -> '0/16B3748'."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_from_str(text: str) -> int:
    """'0/16B3748' -> 0x16B3748; ValueError if `text` is not an LSN."""
    match = _LSN.fullmatch(text.strip())  # only hex digits: int() also takes -, + and _
    if match is None:
        raise ValueError(f"not an LSN (expected X/Y in hexadecimal): {text!r}")
    return (int(match[1], 16) << 32) | int(match[2], 16)
