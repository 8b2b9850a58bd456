"""Log sequence numbers: PostgreSQL's 'X/Y' notation <-> integers. Pure."""

from __future__ import annotations


def lsn_to_str(lsn: int) -> str:
    """0x16B3748 -> '0/16B3748'."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_from_str(text: str) -> int:
    """'0/16B3748' -> 0x16B3748; ValueError if `text` is not an LSN."""
    high, sep, low = text.strip().partition("/")
    if not sep or not high or not low or len(high) > 8 or len(low) > 8:
        raise ValueError(f"not an LSN (expected X/Y in hexadecimal): {text!r}")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ValueError(f"not an LSN (expected X/Y in hexadecimal): {text!r}") from None
