"""Account claims pushed to a running broker (jwt-operator-mode.md §2, §8), in the
supervisor: the `$SYS` requests of operator mode, answered as nats-server answers them.

- Every resolver takes updates on `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE` (and the older
  `$SYS.ACCOUNT.<key>.CLAIMS.UPDATE`). The MEMORY resolver updates only the accounts it
  knows (`jwt update skipped` for others) and keeps pushed JWTs in memory (a reload
  keeps them too).
- The nats-based resolver (`resolver { type: full|cache, dir }`) also takes
  `$SYS.REQ.CLAIMS.UPDATE` (any account, new ones too), answers
  `$SYS.REQ.ACCOUNT.<key>.CLAIMS.LOOKUP`, `$SYS.REQ.CLAIMS.LIST` and
  `$SYS.REQ.CLAIMS.PACK`, deletes on `$SYS.REQ.CLAIMS.DELETE` when allowed, and keeps
  every JWT in its directory (config/account_store.py).

An accepted JWT becomes the broker's: the supervisor derives the accounts again and
sends the new Options to every shard as a reload does (supervisor/reload.py); each
worker re-checks its JWT logins (revocations, expiry, bearer tokens, signing keys) and
applies the new limits, exports, imports and mappings. The answer goes out once every
shard has confirmed, so a client that hears "jwt updated" can count on it everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, Protocol

import msgspec

from shardbroker import const
from shardbroker.config import account_store, jwt
from shardbroker.config.account_store import StoreError
from shardbroker.config.jwt_claims import account_claims_valid, next_activation_change
from shardbroker.config.operator import accounts_from_jwts, trusted_keys
from shardbroker.config.options import Options
from shardbroker.config.reload import ReloadError
from shardbroker.monitor.service import Monitor


class ClaimsHost(Protocol):
    """What the claims requests need of the supervisor (arbiter.py's Arbiter): the
    Options in effect, the monitor (the `server` object of answers, the way back to the
    requester), and a way to put new Options in effect on every shard."""

    opts: Options
    monitor: Monitor | None

    def apply_claims(self, new: Options) -> asyncio.Future[None]: ...

    def trim_account(self, account: str, limit: int) -> None: ...


log = logging.getLogger("shardbroker.supervisor")

_UPDATE_NEW = b"$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE"
_UPDATE_OLD = b"$SYS.ACCOUNT.*.CLAIMS.UPDATE"
_LOOKUP = b"$SYS.REQ.ACCOUNT.*.CLAIMS.LOOKUP"
_CLAIMS = b"$SYS.REQ.CLAIMS."
UPDATE = b"$SYS.REQ.CLAIMS.UPDATE"
LIST = b"$SYS.REQ.CLAIMS.LIST"
DELETE = b"$SYS.REQ.CLAIMS.DELETE"
PACK = b"$SYS.REQ.CLAIMS.PACK"
_OK = 200
# After an activation's expiry, so that the derivation sees it expired.
_ACTIVATION_SLACK = 0.05
_FAILED = 500


class UpdateError(Exception):
    """A pushed JWT the broker does not take: `message - reason` is the answer."""

    def __init__(self, message: str, reason: str, account: str) -> None:
        super().__init__(f"{message} - {reason}")
        self.account = account


class AccountClaims:
    """The claims requests of one broker (an operator-mode broker answers them in its
    system account; a broker of config files has none)."""

    def __init__(self, arbiter: ClaimsHost) -> None:
        self.arbiter = arbiter
        # MEMORY resolver: JWTs pushed since the start, kept over reloads.
        self.pushed: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._activation_timer: asyncio.TimerHandle | None = None

    @property
    def opts(self) -> Options:
        return self.arbiter.opts

    def subjects(self) -> list[bytes]:
        """What the supervisor listens on in the system account."""
        if not self.opts.resolver:
            return []
        store = self.opts.resolver_store
        if store is None:
            return [_UPDATE_NEW, _UPDATE_OLD]
        if store.cache:
            return [_UPDATE_NEW, _UPDATE_OLD, UPDATE, LIST, DELETE]
        return [_UPDATE_NEW, _UPDATE_OLD, UPDATE, _LOOKUP, LIST, DELETE, PACK]

    @staticmethod
    def is_claims_request(subject: bytes) -> bool:
        return subject.startswith(_CLAIMS) or (
            subject.startswith((b"$SYS.REQ.ACCOUNT.", b"$SYS.ACCOUNT."))
            and subject.endswith((b".CLAIMS.UPDATE", b".CLAIMS.LOOKUP"))
        )

    def start(self) -> None:
        """At start: the preloaded JWTs go to the directory, and imports follow their
        activation tokens' times."""
        self.store_preloaded()
        self.watch_activations()

    def watch_activations(self) -> None:
        """When an import's activation token expires (or becomes valid), the accounts
        are derived again: nats-server drops such an import at that moment too."""
        if self._activation_timer is not None:
            self._activation_timer.cancel()
            self._activation_timer = None
        if not self.opts.resolver:
            return
        when = next_activation_change((t for _, t in self.opts.account_jwts), time.time())
        if when is not None:
            delay = max(when - time.time(), 0.0) + _ACTIVATION_SLACK
            loop = asyncio.get_running_loop()
            self._activation_timer = loop.call_later(delay, self._activations_changed)

    def _activations_changed(self) -> None:
        self._activation_timer = None
        opts = self.opts
        new = _with_jwts(opts, dict(opts.account_jwts))
        if new.accounts != opts.accounts:
            log.info("an import's activation token expired or became valid: imports updated")
            try:
                self._apply(new)
            except UpdateError as exc:
                log.error("cannot apply the imports' new activations: %s", exc)
        self.watch_activations()

    def store_preloaded(self) -> None:
        """At start, with the nats-based resolver: the preloaded JWTs newer than the
        stored ones go into the directory (nats-server stores them too)."""
        store = self.opts.resolver_store
        if store is None:
            return
        log.info(
            "Managing %s jwt in exclusive directory %s", "some" if store.cache else "all", store.dir
        )
        for key, token in self.opts.account_jwts:
            try:
                if account_store.save(store, key, token):
                    log.debug("stored account JWT %s in %s", key, store.dir)
            except (OSError, StoreError) as exc:
                log.error("cannot store the account JWT of %s in %s: %s", key, store.dir, exc)

    def keep_pushed(self, new: Options) -> Options:
        """A configuration reload keeps the JWTs pushed to the MEMORY resolver."""
        if not self.pushed or new.resolver_store is not None or not new.resolver:
            return new
        jwts = dict(new.account_jwts)
        jwts.update((k, v) for k, v in self.pushed.items() if k in jwts)
        return _with_jwts(new, jwts)

    # -- requests ------------------------------------------------------------------------

    def on_request(self, account: bytes, subject: bytes, reply: bytes | None, body: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(account, subject, reply, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(
        self, account: bytes, subject: bytes, reply: bytes | None, body: bytes
    ) -> None:
        try:
            answers = await self.answers(subject.decode(errors="replace"), body)
        except Exception:  # a bad request must never cost the supervisor
            log.exception("error answering %s", subject.decode(errors="replace"))
            return
        monitor = self.arbiter.monitor
        if reply and monitor is not None:
            for answer in answers:
                monitor.send_reply(account, reply, answer)

    async def answers(self, subject: str, body: bytes) -> list[bytes]:
        """The messages that answer one request, in order (none: stay silent)."""
        tokens = subject.split(".")
        if subject.endswith(".CLAIMS.UPDATE"):
            if subject == UPDATE.decode():
                return [await self.update(None, body)]
            if len(tokens) == 6 and tokens[2] == "ACCOUNT":
                return [await self.update(tokens[3], body)]
            if len(tokens) == 5 and tokens[1] == "ACCOUNT":
                return [await self.update(tokens[2], body)]
            return []
        store = self.opts.resolver_store
        if store is None:
            return []
        if store.cache and subject.endswith((".CLAIMS.LOOKUP", ".CLAIMS.PACK")):
            return []
        if subject.endswith(".CLAIMS.LOOKUP") and len(tokens) == 6:
            # The JWT, or an empty message: "not here".
            return [dict(self.opts.account_jwts).get(tokens[3], "").encode()]
        if subject == LIST.decode():
            keys = [key for key, _ in self.opts.account_jwts]
            return [self._json({"server": self._server(), "data": keys})]
        if subject == DELETE.decode():
            return [await self.delete(body)]
        if subject == PACK.decode():
            return self.pack(body)
        return []

    # -- update --------------------------------------------------------------------------

    async def update(self, key: str | None, body: bytes) -> bytes:
        """Take one account JWT (for `key`, when the subject names it)."""
        try:
            account, applied = self._take(key, body)
        except UpdateError as exc:
            log.error("%s - %s", exc, exc.account)
            return self._status(exc.account, error=str(exc))
        cache = self._cache
        if applied is None:
            return self._status(account, message=f"jwt update{cache} skipped")
        await applied
        log.info("Updated account claims of %s", account)
        limits = next((a.limits for a in self.opts.accounts if a.name == account), None)
        if limits is not None and limits.max_connections >= 0:
            # Every worker counts with the new limit now: close what is over it.
            self.arbiter.trim_account(account, limits.max_connections)
        return self._status(account, message=f"jwt updated{cache}")

    @property
    def _cache(self) -> str:
        """The cache resolver's answers say so ("jwt updated cache")."""
        store = self.opts.resolver_store
        return " cache" if store is not None and store.cache else ""

    def _take(self, key: str | None, body: bytes) -> tuple[str, asyncio.Future[None] | None]:
        """Check and store a pushed JWT and put it in effect; the future is done when
        every shard has it (None: nothing to do, the account is not loaded here)."""
        opts = self.opts
        memory = opts.resolver_store is None
        cache = self._cache
        failed = f"jwt update{cache} resulted in error"
        where = key or "n/a"
        if not body.strip():
            raise UpdateError("jwt update error", "request body is empty", where)
        token = body.decode(errors="replace").strip()
        try:
            claims = jwt.decode(token, "account")
        except jwt.JWTError as exc:
            raise UpdateError(failed, str(exc), where) from None
        account = claims.sub
        if key is not None and key != account:
            raise UpdateError(failed, "subject does not match jwt content", key)
        if self._strict_operator_issued(claims):
            raise UpdateError(failed, "operator requires issuer to be a signing key", account)
        jwts = dict(opts.account_jwts)
        if (memory or cache) and account not in jwts:
            return account, None
        valid = account_claims_valid(claims)
        if not valid and not memory:
            raise UpdateError(
                "jwt update cache validation failed" if cache else "jwt validation failed",
                "validation errors: the account JWT does not pass the jwt library's checks",
                account,
            )
        if memory:
            if claims.iss not in self._trusted() or claims.expired() or not valid:
                raise UpdateError(
                    "jwt update resulted in error", "account validation failed", account
                )
            self.pushed[account] = token
        else:
            assert opts.resolver_store is not None
            try:
                account_store.save(opts.resolver_store, account, token)
            except (OSError, StoreError) as exc:
                raise UpdateError(failed, str(exc), account) from None
            if claims.iss not in self._trusted():
                # Stored (the directory is the operator's), but no one logs in to it.
                log.error(
                    "DirResolver - Update for account %s resulted in error account "
                    "validation failed",
                    account,
                )
        if account not in jwts and len(jwts) >= const.MAX_COUNTED_ACCOUNTS:
            raise UpdateError(
                "jwt update resulted in error",
                f"shardbroker serves at most {const.MAX_COUNTED_ACCOUNTS} accounts",
                account,
            )
        if jwts.get(account) == token:
            return account, _done()
        jwts[account] = token
        return account, self._apply(_with_jwts(opts, jwts))

    def _strict_operator_issued(self, claims: jwt.Claims) -> bool:
        for token in self.opts.operators[:1]:
            operator = jwt.decode(token, "operator")
            if operator.nats.get("strict_signing_key_usage") and claims.iss == operator.sub:
                return True
        return False

    def _trusted(self) -> frozenset[str]:
        return trusted_keys(self.opts.operators, self.opts.trusted_keys)

    def _apply(self, new: Options) -> asyncio.Future[None]:
        try:
            applied = self.arbiter.apply_claims(new)
        except ReloadError as exc:
            raise UpdateError("jwt update resulted in error", str(exc), "n/a") from None
        self.watch_activations()
        return applied

    # -- delete, pack --------------------------------------------------------------------

    async def delete(self, body: bytes) -> bytes:
        """`$SYS.REQ.CLAIMS.DELETE`: a generic JWT an operator key signed about itself,
        listing the accounts to delete; their clients are closed (Account
        Authentication Expired)."""
        opts = self.opts
        store = opts.resolver_store
        assert store is not None
        subject = ""
        accounts: list[Any] = []
        reason = ""
        try:
            claims = jwt.decode(body.decode(errors="replace").strip(), "generic")
            subject = claims.sub
        except jwt.JWTError as exc:
            reason = str(exc)
        else:
            listed = claims.nats.get("accounts")
            if not store.allow_delete:
                reason = "delete must be enabled in server config"
            elif claims.sub != claims.iss:
                reason = "not self signed"
            elif claims.iss not in self._operator_keys():
                reason = "not trusted"
            elif not isinstance(listed, list):
                reason = "malformed request"
            else:
                accounts = listed
                system = opts.system_account
                for entry in accounts:
                    if (
                        not isinstance(entry, str)
                        or jwt.decode_public_key(entry, "account") is None
                    ):
                        reason = "malformed request"
                        break
                    if entry == system:
                        reason = "not allowed to delete system account"
                        break
        if reason:
            message = f"delete accounts request by {subject} failed - {reason}"
            log.error("%s", message)
            return self._status("", error=message)
        failures = []
        for entry in accounts:
            try:
                account_store.delete(store, entry)
            except (OSError, StoreError) as exc:
                failures.append(str(exc))
        jwts = {k: v for k, v in opts.account_jwts if k not in accounts}
        if len(jwts) != len(opts.account_jwts):
            try:
                await self._apply(_with_jwts(opts, jwts))
            except UpdateError as exc:
                failures.append(str(exc))
        passed = len(accounts) - len(failures)
        if failures:
            message = f"deleted {passed} accounts, failed for {len(failures)}"
            return self._status("", error=f"{message} - " + "\n".join(failures))
        log.info("deleted %d accounts", passed)
        return self._status("", message=f"deleted {passed} accounts")

    def _operator_keys(self) -> set[str]:
        keys = set(self.opts.trusted_keys)
        for token in self.opts.operators:
            operator = jwt.decode(token, "operator")
            keys.add(operator.sub)
            keys.update(str(k) for k in operator.nats.get("signing_keys") or ())
        return keys

    def pack(self, their_hash: bytes) -> list[bytes]:
        """`$SYS.REQ.CLAIMS.PACK` (how servers sync their stores): nothing but the end
        mark when the asker's hash is ours, else `<key>|<jwt>` lines, then the end."""
        if their_hash == self.store_hash():
            return [b""]
        lines = [f"{key}|{token}".encode() for key, token in self.opts.account_jwts]
        return [b"\n".join(lines), b""] if lines else [b""]

    def store_hash(self) -> bytes:
        """A digest over the stored JWTs, independent of their order (the XOR of one
        SHA-256 per account)."""
        total = bytearray(32)
        for key, token in self.opts.account_jwts:
            digest = hashlib.sha256(f"{key}|{token}".encode()).digest()
            total = bytearray(a ^ b for a, b in zip(total, digest, strict=True))
        return bytes(total)

    # -- answers -------------------------------------------------------------------------

    def _server(self) -> Any:
        monitor = self.arbiter.monitor
        return monitor.server_info() if monitor is not None else {}

    def _status(self, account: str, *, message: str = "", error: str = "") -> bytes:
        """nats-server's claim update answer (its `data` leaves out an empty account)."""
        if error:
            body = {"account": account, "code": _FAILED, "description": error}
            return self._json({"server": self._server(), "error": body})
        data: dict[str, Any] = {"account": account} if account else {}
        data.update(code=_OK, message=message)
        return self._json({"server": self._server(), "data": data})

    @staticmethod
    def _json(value: Any) -> bytes:
        return msgspec.json.encode(value)


def _with_jwts(opts: Options, jwts: dict[str, str]) -> Options:
    """Options with these account JWTs in effect, and the accounts derived from them."""
    ordered = tuple(sorted(jwts.items()))
    trusted = trusted_keys(opts.operators, opts.trusted_keys)
    return msgspec.structs.replace(
        opts, account_jwts=ordered, accounts=accounts_from_jwts(ordered, trusted)
    )


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
