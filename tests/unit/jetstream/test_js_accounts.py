"""Which accounts have JetStream (jetstream/account.py `jetstream_accounts`), and what the
engine advertises in each and opens from disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shardbroker import const
from shardbroker.config.options import Account, AccountJetStream, Import, Options
from shardbroker.jetstream import schema
from shardbroker.jetstream.account import jetstream_accounts
from shardbroker.jetstream.engine import JetStream

LIMITS = AccountJetStream(max_streams=2)


def test_js_accounts_global_account_alone() -> None:
    assert jetstream_accounts(Options()) == {
        const.GLOBAL_ACCOUNT: AccountJetStream(),
        b"$SYS": None,
    }
    # A declared system account alone leaves JetStream in $G.
    opts = Options(accounts=(Account(name="SYS"),), system_account="SYS")
    assert jetstream_accounts(opts) == {const.GLOBAL_ACCOUNT: AccountJetStream(), b"SYS": None}
    opts = Options(no_system_account=True)
    assert jetstream_accounts(opts) == {const.GLOBAL_ACCOUNT: AccountJetStream()}


def test_js_accounts_configured_accounts() -> None:
    opts = Options(accounts=(Account(name="A", jetstream=LIMITS), Account(name="N")))
    assert jetstream_accounts(opts) == {
        const.GLOBAL_ACCOUNT: None,
        b"A": LIMITS,
        b"N": None,
        b"$SYS": None,
    }


def test_js_accounts_an_import_of_the_api_shadows_the_accounts_own() -> None:
    imp = Import(service=True, account="A", subject="$JS.API.>")
    opts = Options(
        accounts=(Account(name="A", jetstream=LIMITS), Account(name="N", imports=(imp,)))
    )
    assert b"N" not in jetstream_accounts(opts)


class FakePeer:
    def __init__(self) -> None:
        self.interest: set[tuple[bytes, bytes]] = set()

    def advertise(self, account: bytes, subject: bytes) -> None:
        self.interest.add((account, subject))

    def withdraw(self, account: bytes, subject: bytes) -> None:
        self.interest.discard((account, subject))


def test_js_accounts_engine_advertises_and_reopens_per_account(tmp_path: Path) -> None:
    both = Options(
        accounts=(Account(name="A", jetstream=LIMITS), Account(name="B", jetstream=LIMITS))
    )
    engine = JetStream(both, str(tmp_path), "SID")
    for name in (b"A", b"B"):
        config = schema.StreamConfig(name="S", subjects=["s.>"])
        engine.add_stream(engine.account(name), config)
    engine.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B"]

    only_a = Options(accounts=(Account(name="A", jetstream=LIMITS), Account(name="B")))
    engine = JetStream(only_a, str(tmp_path), "SID")
    peer: Any = FakePeer()
    engine.attach(peer)
    assert list(engine.account(b"A").streams) == ["S"]
    assert not engine.account(b"B").streams  # its files stay, unopened
    assert (b"A", b"$JS.ACK.>") in peer.interest and (b"A", b"s.>") in peer.interest
    assert (b"B", b"$JS.API.>") in peer.interest and (b"B", b"$JS.ACK.>") not in peer.interest
    assert (b"$G", b"$JS.API.>") in peer.interest
    # A reload that enables B opens its streams; one that disables A closes them.
    engine.apply_options(Options(accounts=(Account(name="A"), Account(name="B", jetstream=LIMITS))))
    assert list(engine.account(b"B").streams) == ["S"] and not engine.account(b"A").streams
    assert (b"B", b"s.>") in peer.interest and (b"A", b"s.>") not in peer.interest
    assert (b"A", b"$JS.ACK.>") not in peer.interest and (b"A", b"$JS.API.>") in peer.interest
    assert engine.account(b"A").limits is None and engine.account(b"B").limits == LIMITS
    engine.close()
