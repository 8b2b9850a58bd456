"""Search cursors: the (sort key, id) of the last hit, signed with the server's secret.

A cursor is `base64url(JSON {f, k, i}).base64url(HMAC-SHA256)`: `f` is the fingerprint of the
query it belongs to, `k` the sort key and `i` the inode id of the last hit seen. Only this
server (or one sharing its secret) can make one, so a hand-edited or forged cursor is a 400
before anything it holds reaches the engine; the key and id are checked against the sort
anyway. The secret is EPIPE_CURSOR_SECRET, or else 32 random bytes created on first use in
EPIPE_HOME/cursor-secret (mode 0600) and shared by every server of that home
(docs/rest-api.md, "Cursors").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request

from epipe.errors import ConfigError
from epipe.search.query import QueryError
from epipe.settings import Settings

SECRET_FILE = "cursor-secret"
MIN_SECRET_BYTES = 32
_NUMERIC_SORTS = ("size", "mtime")


class CursorSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, fingerprint: str, key: Any, inode_id: int) -> str:
        payload = _b64(orjson.dumps({"f": fingerprint, "k": key, "i": inode_id}))
        return f"{payload}.{self._sign(payload)}"

    def decode(self, cursor: str, fingerprint: str, sort: str) -> tuple[Any, int]:
        """(sort key, id) of a cursor this server gave out for the query `fingerprint` sorted
        by `sort` (its effective sort); QueryError('cursor') for anything else."""
        payload, _, signature = cursor.partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            raise QueryError("cursor", "is not a cursor this API gave out (or was changed)")
        try:
            data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            found, key, inode_id = data["f"], data["k"], data["i"]
        except (ValueError, TypeError, KeyError, binascii.Error):
            raise QueryError("cursor", "is not a cursor this API gave out") from None
        if found != fingerprint:
            raise QueryError("cursor", "belongs to another query")
        if not _fits(key, sort) or not _integer(inode_id, 0, 2**64 - 1):
            raise QueryError("cursor", f"does not fit a query sorted by {sort}")
        return key, inode_id

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())


def _fits(key: Any, sort: str) -> bool:
    field = sort.lstrip("-")
    if field in ("name", "path"):
        return isinstance(key, str)
    if field in _NUMERIC_SORTS:
        return _integer(key, -(2**63), 2**64 - 1)
    return isinstance(key, int | float) and not isinstance(key, bool)  # a score


def _integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def load_secret(settings: Settings) -> bytes:
    """EPIPE_CURSOR_SECRET, or the secret in EPIPE_HOME/cursor-secret (made on first use:
    written to a private temporary file and linked into place, so concurrent servers agree)."""
    if settings.cursor_secret is not None:
        secret = settings.cursor_secret.get_secret_value().encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"EPIPE_CURSOR_SECRET: use at least {MIN_SECRET_BYTES} characters")
        return secret
    path = settings.home / SECRET_FILE
    if not path.exists():
        _create(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the cursor secret {path}: {exc.strerror}") from None


def _create(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{SECRET_FILE}-{os.getpid()}-{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_urlsafe(MIN_SECRET_BYTES).encode())
                out.flush()
                os.fsync(out.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass  # another server made it first: use theirs
        finally:
            temporary.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the cursor secret {path}: {exc.strerror}") from None


def signer(request: Request) -> CursorSigner:
    """The app's signer, made on the first search that needs one."""
    state = request.app.state
    found: CursorSigner | None = getattr(state, "cursor_signer", None)
    if found is None:
        found = state.cursor_signer = CursorSigner(load_secret(state.services.settings))
    return found
