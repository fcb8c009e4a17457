"""The directory of the nats-based account resolver (`resolver { type: full|cache,
dir }`): one `<account key>.jwt` file per account, the layout nats-server's DirJWTStore
uses, so one directory serves either server.

The config reads it at start and on reload (``load``); the supervisor writes it when an
account JWT is pushed on `$SYS.REQ.CLAIMS.UPDATE` or deleted on `$SYS.REQ.CLAIMS.DELETE`
(``save``, ``delete``). Files are small and written whole (a temporary file renamed
over the old one), so a reader never sees half a JWT.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from shardbroker.config import jwt
from shardbroker.config.options import ResolverStore

SUFFIX = ".jwt"
DELETED_SUFFIX = ".deleted"
_FILE_MODE = 0o644
_DIR_MODE = 0o755


class StoreError(Exception):
    """A JWT the store cannot take; the text is what nats-server answers."""


def path_for(store: ResolverStore, key: str) -> str:
    if jwt.decode_public_key(key, "account") is None:
        raise StoreError("invalid public key")
    return os.path.join(store.dir, key + SUFFIX)


def load(store: ResolverStore) -> dict[str, str]:
    """Every account JWT in the directory, by account key (an absent directory is an
    empty store: the first push creates it). Files that are not account JWTs are left
    out, as nats-server leaves them."""
    out: dict[str, str] = {}
    try:
        names = sorted(os.listdir(store.dir))
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        key = name[: -len(SUFFIX)]
        try:
            with open(os.path.join(store.dir, name), encoding="utf-8") as handle:
                token = handle.read().strip()
            if jwt.decode(token, "account").sub == key:
                out[key] = token
        except (OSError, UnicodeDecodeError, jwt.JWTError):
            continue
    return out


def save(store: ResolverStore, key: str, token: str) -> bool:
    """Write one account's JWT; False when the same JWT is already there. A full cache
    makes room by removing the least recently written file (a full `full` store refuses,
    with nats-server's text)."""
    path = path_for(store, key)
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as handle:
        if handle.read().strip() == token:
            return False
    os.makedirs(store.dir, mode=_DIR_MODE, exist_ok=True)
    if store.limit > 0 and not os.path.exists(path):
        held = _files_by_age(store)
        if len(held) >= store.limit:
            if not store.cache:
                raise StoreError("jwt store is full")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(held[0])
    fd, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=store.dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token)
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return True


def delete(store: ResolverStore, key: str) -> None:
    """Remove one account's JWT (renamed to `.deleted` unless hard_delete); a missing
    file is no error."""
    if not store.allow_delete:
        raise StoreError("store is not set up to for delete")
    path = path_for(store, key)
    with contextlib.suppress(FileNotFoundError):
        if store.hard_delete:
            os.unlink(path)
        else:
            os.replace(path, path + DELETED_SUFFIX)


def _files_by_age(store: ResolverStore) -> list[str]:
    paths = [
        os.path.join(store.dir, name) for name in os.listdir(store.dir) if name.endswith(SUFFIX)
    ]
    return sorted(paths, key=lambda p: os.stat(p).st_mtime_ns)
