"""security/accounts.py: which stream imports a message reaches, and its subject there."""

from __future__ import annotations

from shardbroker.config.options import Account, Export, Import, Options
from shardbroker.security.accounts import AccountRoutes, capture


def routes(*imports: Import) -> AccountRoutes:
    exporter = Account(name="E", exports=(Export(service=False, subject=">"),))
    return AccountRoutes(Options(accounts=(exporter, Account(name="I", imports=imports))))


def test_capture_takes_wildcard_tokens_in_order() -> None:
    assert capture([b"a", b"*", b"c"], [b"a", b"x", b"c"]) == [b"x"]
    assert capture([b"a", b">"], [b"a", b"x", b"y"]) == [b"x.y"]
    assert capture([b"a", b">"], [b"a"]) is None
    assert capture([b"a", b"*"], [b"a", b"x", b"y"]) is None
    assert capture([b"a"], [b"b"]) is None


def test_stream_targets_map_subjects_by_prefix_to_or_not_at_all() -> None:
    table = routes(
        Import(service=False, account="E", subject="ev.>", prefix="from_e"),
        Import(service=False, account="E", subject="ord.*.new", to="new.*"),
        Import(service=False, account="E", subject="lit", to="other"),
        Import(service=False, account="E", subject="same.*"),
    )
    assert table.stream_targets(b"E", b"ev.a.b") == [(b"I", b"from_e.ev.a.b")]
    assert table.stream_targets(b"E", b"ord.7.new") == [(b"I", b"new.7")]
    assert table.stream_targets(b"E", b"lit") == [(b"I", b"other")]
    assert table.stream_targets(b"E", b"same.x") == [(b"I", b"same.x")]
    assert table.stream_targets(b"E", b"ord.7.old") == []
    assert table.stream_targets(b"I", b"ev.a") == []
    assert b"I" not in table.streams


def test_service_imports_are_not_stream_routes() -> None:
    table = routes(Import(service=True, account="E", subject="svc"))
    assert table.streams == {}
