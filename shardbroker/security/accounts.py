"""Accounts at run time: where a message published in one account also goes because
another account imports it (accounts-and-security.md §4).

Pure: built once per worker from Options (and again on reload), consulted on the
publisher's worker only, so each message crosses an import once whichever workers
its subscribers sit on. Accounts that export nothing anybody imports are absent, and
their messages never look here.

A stream import of `subject` from account E into account I: a message published in E
on a subject that `subject` matches is delivered in I too, under the import's local
subject: `prefix.` + the subject, or `to` with the wildcards of `subject` filled in
order by the tokens they matched, or the subject itself.
"""

from __future__ import annotations

from shardbroker.config.accounts import export_for
from shardbroker.config.options import (
    GLOBAL_ACCOUNT_NAME,
    Account,
    Export,
    Import,
    Options,
    system_account_name,
)
from shardbroker.protocol.transform import SubjectMappings, subject_mappings

# What every account reaches of the system account without importing it (nats-server's
# implicit imports): its own user's identity and permissions, and its own connections
# and statistics, as (the subject the account requests, the subject nats-server names
# the import by in /accountz). The requester's full client info goes along (share),
# so that the answer can be about its account and user. USER.INFO first: the system
# account imports only that one.
SYSTEM_IMPORTS = (
    ("$SYS.REQ.USER.INFO", "$SYS.REQ.USER.{acc}.INFO"),
    ("$SYS.REQ.SERVER.PING.CONNZ", "$SYS.REQ.ACCOUNT.{acc}.CONNZ"),
    ("$SYS.REQ.ACCOUNT.PING.CONNZ", "$SYS.REQ.ACCOUNT.{acc}.CONNZ"),
    ("$SYS.REQ.ACCOUNT.PING.STATZ", "$SYS.REQ.ACCOUNT.{acc}.STATZ"),
)
SYSTEM_PREFIX = b"$SYS."


def _tokens(subject: bytes) -> list[bytes]:
    return subject.split(b".")


def capture(pattern: list[bytes], subject: list[bytes]) -> list[bytes] | None:
    """The tokens of `subject` that the wildcards of `pattern` match, in order (a `>`
    takes the rest, joined), or None when the subject does not match."""
    captured: list[bytes] = []
    for i, want in enumerate(pattern):
        if want == b">":
            if i >= len(subject):
                return None
            captured.append(b".".join(subject[i:]))
            return captured
        if i >= len(subject):
            return None
        if want == b"*":
            captured.append(subject[i])
        elif want != subject[i]:
            return None
    return captured if len(subject) == len(pattern) else None


class StreamImportRoute:
    """One stream import, seen from its exporter: which subjects it takes, the account
    that receives them, and the subject they get there."""

    __slots__ = ("importer", "pattern", "prefix", "to")

    def __init__(self, importer: bytes, imp: Import) -> None:
        self.importer = importer
        self.pattern = _tokens(imp.subject.encode())
        self.prefix = imp.prefix.encode() + b"." if imp.prefix else b""
        # The local subject's tokens when it is remapped; None: the subject stays.
        self.to = _tokens(imp.to.encode()) if imp.to and not imp.prefix else None

    def local_subject(self, subject: bytes) -> bytes | None:
        """The subject in the importing account, or None when the import does not take it."""
        captured = capture(self.pattern, _tokens(subject))
        if captured is None:
            return None
        if self.to is None:
            return self.prefix + subject
        fill = iter(captured)
        return b".".join(next(fill, t) if t in (b"*", b">") else t for t in self.to)


class ServiceImportRoute:
    """One service import, seen from its importer: the local subjects it takes, and
    the exporter's subject, export (response type, threshold, latency) and sharing."""

    __slots__ = ("export", "exporter", "importer", "local", "share", "subject")

    def __init__(self, importer: bytes, imp: Import, export: Export) -> None:
        self.importer = importer
        self.exporter = imp.account.encode()
        self.export = export
        self.share = imp.share
        self.local = _tokens((imp.to or imp.subject).encode())
        self.subject = _tokens(imp.subject.encode())

    def exporter_subject(self, subject: bytes) -> bytes | None:
        """The subject a request on `subject` has in the exporting account, or None
        when this import does not take it."""
        captured = capture(self.local, _tokens(subject))
        if captured is None:
            return None
        fill = iter(captured)
        return b".".join(next(fill, t) if t in (b"*", b">") else t for t in self.subject)


class AccountRoutes:
    """The imports of every account: stream imports by the account that exports them,
    service imports by the account that imports them."""

    __slots__ = ("mappings", "services", "streams", "system", "system_routes")

    def __init__(self, opts: Options) -> None:
        by_name: dict[str, Account] = {account.name: account for account in opts.accounts}
        streams: dict[bytes, list[StreamImportRoute]] = {}
        services: dict[bytes, list[ServiceImportRoute]] = {}
        for account in opts.accounts:
            name = account.name.encode()
            for imp in account.imports:
                if not imp.service:
                    route = StreamImportRoute(name, imp)
                    streams.setdefault(imp.account.encode(), []).append(route)
                    continue
                exporter = by_name.get(imp.account)
                export = None if exporter is None else export_for(exporter, imp, account.name)
                if export is not None:  # config checks refuse imports without one
                    services.setdefault(name, []).append(ServiceImportRoute(name, imp, export))
        self.streams: dict[bytes, tuple[StreamImportRoute, ...]] = {
            exporter: tuple(routes) for exporter, routes in streams.items()
        }
        self.services: dict[bytes, tuple[ServiceImportRoute, ...]] = {
            importer: tuple(routes) for importer, routes in services.items()
        }
        # Subject mappings by account ($G: the top-level block).
        self.mappings: dict[bytes, SubjectMappings] = {}
        blocks = [(GLOBAL_ACCOUNT_NAME, opts.mappings)]
        blocks += [(account.name, account.mappings) for account in opts.accounts]
        for owner, entries in blocks:
            table = subject_mappings(
                (m.source, [(d.subject, d.weight, d.cluster) for d in m.destinations])
                for m in entries
            )
            if table is not None:
                self.mappings[owner.encode()] = table
        # The implicit imports of the system account's requests, for every account. The
        # system account's users reach the requests themselves, and import only
        # USER.INFO, so that the monitor hears who asks.
        self.system = system_account_name(opts).encode()
        self.system_routes: dict[bytes, tuple[ServiceImportRoute, ...]] = {}
        if self.system:
            system = self.system.decode()
            for importer in [GLOBAL_ACCOUNT_NAME, system] + [a.name for a in opts.accounts]:
                subjects = SYSTEM_IMPORTS if importer != system else SYSTEM_IMPORTS[:1]
                self.system_routes[importer.encode()] = tuple(
                    ServiceImportRoute(
                        importer.encode(),
                        Import(service=True, account=system, subject=subject, share=True),
                        Export(service=True, subject=subject),
                    )
                    for subject, _ in subjects
                )

    def service_target(
        self, account: bytes, subject: bytes
    ) -> tuple[ServiceImportRoute, bytes] | None:
        """The service import a request of `account` on `subject` goes through, with
        the subject it has in the exporting account; None: not an import's subject."""
        for route in self.services.get(account, ()):
            target = route.exporter_subject(subject)
            if target is not None:
                return route, target
        if subject.startswith(SYSTEM_PREFIX):
            for route in self.system_routes.get(account, ()):
                target = route.exporter_subject(subject)
                if target is not None:
                    return route, target
        return None

    def stream_targets(self, account: bytes, subject: bytes) -> list[tuple[bytes, bytes]]:
        """(importing account, local subject) for each stream import this message of
        `account` reaches."""
        routes = self.streams.get(account)
        if not routes:
            return []
        out = []
        for route in routes:
            local = route.local_subject(subject)
            if local is not None:
                out.append((route.importer, local))
        return out
