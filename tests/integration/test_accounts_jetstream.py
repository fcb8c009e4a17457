"""JetStream per account (accounts-and-security.md §4, config.md §2.5, jetstream-api.md):
only the accounts whose `jetstream` enables it have streams, each with its own limits;
the others (`$G` included once accounts are configured) get 10039; two accounts keep
streams of the same name apart; acks and pull consumers work in any account across
workers; a restart reopens every account's streams. Each scenario runs against
nats-server and against shardbroker (2 workers, the clients spread over both) with the
same config file, and what the clients saw must be the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import StorageType

from tests.helpers.broker import (
    REPO_ROOT,
    Broker,
    NatsClients,
    assert_different_shards,
    barrier,
    is_shardbroker_target,
    nats_server_binary,
)
from tests.helpers.differential import broker_on, on_both

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

LIMITS_CONF = """
accounts {
  A: {
    users: [ {user: a, password: p} ]
    jetstream: {
      max_streams: 2, max_mem: 500, max_file: 1000, max_consumers: 1, max_ack_pending: 5
    }
  }
  C: {
    users: [ {user: c, password: p} ]
    jetstream: {
      max_bytes_required: true, store_max_stream_bytes: 800, memory_max_stream_bytes: 300
    }
  }
  N: { users: [ {user: n, password: p} ] }
  SYS: { users: [ {user: s, password: p} ] }
}
system_account: SYS
authorization { users: [ {user: g, password: p} ] }
"""

DATA_CONF = """
accounts {
  A: { users: [ {user: a, password: p} ], jetstream: enabled }
  B: { users: [ {user: b, password: p} ], jetstream: { max_streams: 10 } }
}
"""


async def outcome(call: Awaitable[Any]) -> Any:
    """ "ok", or the API error as (code, err_code, description)."""
    try:
        await call
    except nats.js.errors.APIError as exc:
        return (exc.code, exc.err_code, exc.description)
    return "ok"


async def request_json(nc: Any, subject: str, body: bytes = b"") -> Any:
    """The JSON answer to a request, or the name of the error the client raised."""
    try:
        msg = await nc.request(subject, body, timeout=3)
    except nats.errors.NoRespondersError:
        return "no responders"
    answer = json.loads(msg.data)
    # The API level is each server's own (nats-server 2.15: 5).
    if isinstance(answer.get("api"), dict):
        answer["api"].pop("level", None)
    return answer


async def test_accounts_jetstream_limits_of_each_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        async with NatsClients(broker) as clients:
            a = await clients.on_shard(1, user="a", password="p")
            a2 = await clients.on_shard(2, user="a", password="p")
            c = await clients.on_shard(2, user="c", password="p")
            assert_different_shards(broker, a.client_id, a2.client_id)
            js, js2, jsc = a.jetstream(), a2.jetstream(), c.jetstream()
            out["info A"] = await request_json(a, "$JS.API.INFO")
            out["info C"] = await request_json(c, "$JS.API.INFO")
            # Reservations: max bytes beyond the account's memory / storage.
            out["mem reserve"] = await outcome(
                js.add_stream(name="M", subjects=["m.>"], storage=StorageType.MEMORY, max_bytes=600)
            )
            out["file reserve"] = await outcome(
                js.add_stream(name="F", subjects=["f.>"], max_bytes=1001)
            )
            # Two streams, then the limit (an identical create of an existing one is fine).
            out["F"] = await outcome(js.add_stream(name="F", subjects=["f.>"]))
            out["M"] = await outcome(
                js2.add_stream(name="M", subjects=["m.>"], storage=StorageType.MEMORY)
            )
            out["F again"] = await outcome(js2.add_stream(name="F", subjects=["f.>"]))
            out["third"] = await outcome(js.add_stream(name="X", subjects=["x.>"]))
            # Storage: 100-byte messages (133 bytes each in a file stream) up to 1000 bytes.
            acks = []
            for _ in range(9):
                try:
                    ack = await js2.publish("f.x", b"x" * 100)
                    acks.append(ack.seq)
                except nats.js.errors.APIError as exc:
                    acks.append((exc.code, exc.err_code, exc.description))
            out["file acks"] = acks
            acks = []
            for _ in range(5):
                try:
                    ack = await js.publish("m.x", b"y" * 100)
                    acks.append(ack.seq)
                except nats.js.errors.APIError as exc:
                    acks.append((exc.code, exc.err_code, exc.description))
            out["memory acks"] = acks
            # Consumers: max ack pending defaults to the account's, at most one per stream.
            out["pending excess"] = await outcome(
                js.add_consumer("F", durable_name="big", ack_policy="explicit", max_ack_pending=9)
            )
            info = await js.add_consumer("F", durable_name="one", ack_policy="explicit")
            out["max_ack_pending"] = info.config.max_ack_pending
            out["second consumer"] = await outcome(
                js2.add_consumer("F", durable_name="two", ack_policy="explicit")
            )
            out["stream max consumers"] = await outcome(
                js2.add_stream(name="F", subjects=["f.>"], max_consumers=2)
            )
            # Max bytes required, and each storage type's largest stream.
            out["C no max bytes"] = await outcome(jsc.add_stream(name="S", subjects=["s.>"]))
            out["C too big"] = await outcome(
                jsc.add_stream(name="S", subjects=["s.>"], max_bytes=801)
            )
            out["C memory too big"] = await outcome(
                jsc.add_stream(
                    name="S", subjects=["s.>"], max_bytes=301, storage=StorageType.MEMORY
                )
            )
            out["C fits"] = await outcome(jsc.add_stream(name="S", subjects=["s.>"], max_bytes=800))
            # Updates reserve only what max bytes grows by.
            out["update too big"] = await outcome(
                js.update_stream(name="F", subjects=["f.>"], max_bytes=1001)
            )
            out["update fits"] = await outcome(
                js.update_stream(name="F", subjects=["f.>"], max_bytes=1000)
            )
            out["C update too big"] = await outcome(
                jsc.update_stream(name="S", subjects=["s.>"], max_bytes=900)
            )
            info_a = await request_json(a2, "$JS.API.INFO")
            out["usage A"] = {
                key: info_a[key] for key in ("memory", "storage", "streams", "consumers")
            }
            info_c = await request_json(c, "$JS.API.INFO")
            out["reserved C"] = (info_c["reserved_storage"], info_c["reserved_memory"])
        return out

    out = await on_both(tmp_path, monkeypatch, LIMITS_CONF, scenario, jetstream=True)
    assert out["info A"]["limits"] == {
        "max_memory": 500, "max_storage": 1000, "max_streams": 2, "max_consumers": 1,
        "max_ack_pending": 5, "memory_max_stream_bytes": -1, "storage_max_stream_bytes": -1,
        "max_bytes_required": False,
    }  # fmt: skip
    assert out["third"] == (400, 10027, "maximum number of streams reached")
    assert out["file acks"][:7] == [1, 2, 3, 4, 5, 6, 7]
    assert out["file acks"][7] == (400, 10002, "resource limits exceeded for account")
    assert out["file reserve"] == (500, 10047, "insufficient storage resources available")
    assert out["second consumer"][1] == 10026
    assert out["C no max bytes"][1] == 10113
    assert out["C too big"][1] == 10122
    assert out["C fits"] == "ok" and out["reserved C"] == (800, 0)
    assert out["update too big"][1] == 10047 and out["update fits"] == "ok"
    assert out["C update too big"][1] == 10122


async def test_accounts_jetstream_not_enabled_answers_10039(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`$G` (accounts are configured), an account without `jetstream` and the system
    account: every JSON request answered with 10039, the rest without responders."""

    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        async with NatsClients(broker) as clients:
            for shard, user in ((1, "n"), (2, "g"), (1, "s")):
                nc = await clients.on_shard(shard, user=user, password="p")
                for subject, body in (
                    ("$JS.API.INFO", b""),
                    ("$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s.>"]}'),
                    ("$JS.API.STREAM.NAMES", b""),
                    ("$JS.API.STREAM.LIST", b""),
                    ("$JS.API.STREAM.INFO.S", b""),
                    ("$JS.API.CONSUMER.NAMES.S", b""),
                    ("$JS.API.CONSUMER.INFO.S.C", b""),
                    ("$JS.API.STREAM.PURGE.S", b""),
                    ("$JS.API.CONSUMER.MSG.NEXT.S.C", b""),
                    ("$JS.API.DIRECT.GET.S.s.x", b""),
                    ("$JS.ACK.S.C.1.1.1.1.0", b""),
                ):
                    out[f"{user} {subject}"] = await request_json(nc, subject, body)
                try:
                    await nc.jetstream().publish("s.x", b"1")
                    out[f"{user} publish"] = "ok"
                except nats.js.errors.NoStreamResponseError:
                    out[f"{user} publish"] = "no responders"
        return out

    out = await on_both(tmp_path, monkeypatch, LIMITS_CONF, scenario, jetstream=True)
    assert out["g $JS.API.INFO"] == {
        "type": "io.nats.jetstream.api.v1.account_info_response",
        "error": {
            "code": 503, "err_code": 10039, "description": "JetStream not enabled for account"
        },
    }  # fmt: skip
    assert out["n $JS.API.CONSUMER.MSG.NEXT.S.C"] == "no responders"
    assert out["s $JS.API.STREAM.NAMES"]["type"] == "io.nats.jetstream.api.v1.system_response"
    assert out["n publish"] == "no responders"


async def test_accounts_jetstream_same_stream_name_in_two_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        async with NatsClients(broker) as clients:
            a = await clients.on_shard(1, user="a", password="p")
            b = await clients.on_shard(2, user="b", password="p")
            ja, jb = a.jetstream(), b.jetstream()
            await ja.add_stream(name="ORDERS", subjects=["orders.>"])
            await jb.add_stream(name="ORDERS", subjects=["orders.>"], max_msgs=10)
            out["A acks"] = [(await ja.publish("orders.a", b"A%d" % i)).seq for i in range(2)]
            out["B acks"] = [(await jb.publish("orders.b", b"B%d" % i)).seq for i in range(3)]
            for name, js in (("A", ja), ("B", jb)):
                info = await js.stream_info("ORDERS")
                out[f"{name} state"] = (info.state.messages, info.config.max_msgs)
                out[f"{name} last"] = (await js.get_last_msg("ORDERS", "orders.>")).data
            await jb.delete_stream("ORDERS")
            out["A after B's delete"] = (await ja.stream_info("ORDERS")).state.messages
            out["B names"] = await jb.streams_info()
        return out

    out = await on_both(tmp_path, monkeypatch, DATA_CONF, scenario, jetstream=True)
    assert out["A state"] == (2, -1) and out["B state"] == (3, 10)
    assert out["A last"] == b"A1" and out["B last"] == b"B2"
    assert out["A after B's delete"] == 2 and out["B names"] == []


async def test_accounts_jetstream_publish_and_pull_with_acks_across_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(broker: Broker) -> Any:
        out: dict[str, Any] = {}
        async with NatsClients(broker) as clients:
            pub = await clients.on_shard(1, user="b", password="p")
            sub = await clients.on_shard(2, user="b", password="p")
            other = await clients.on_shard(2, user="a", password="p")
            assert_different_shards(broker, pub.client_id, sub.client_id)
            jp, js = pub.jetstream(), sub.jetstream()
            await jp.add_stream(name="WORK", subjects=["work.>"])
            await other.jetstream().add_stream(name="WORK", subjects=["work.>"])
            out["acks"] = [(await jp.publish(f"work.{i}", b"job%d" % i)).seq for i in range(20)]
            psub = await js.pull_subscribe("work.>", durable="w", stream="WORK")
            got = []
            for batch in (7, 13):
                msgs = await psub.fetch(batch, timeout=5)
                for msg in msgs:
                    got.append((msg.subject, msg.data, msg.metadata.sequence.stream))
                    if msg.metadata.sequence.stream % 2:
                        await msg.ack_sync()
                    else:
                        await msg.ack()
            await barrier(sub)
            out["got"] = got
            info = await js.consumer_info("WORK", "w")
            out["consumer"] = (
                info.num_ack_pending, info.num_pending, info.ack_floor.stream_seq,
                info.delivered.stream_seq,
            )  # fmt: skip
            # Push delivery in the account, to a subscriber on the other worker.
            push = await sub.subscribe("deliver.w")
            await barrier(sub)
            await jp.add_consumer("WORK", durable_name="p", deliver_subject="deliver.w")
            msg = await push.next_msg(timeout=5)
            out["push"] = (msg.subject, msg.data)
            out["other account"] = (await other.jetstream().stream_info("WORK")).state.messages
        return out

    out = await on_both(tmp_path, monkeypatch, DATA_CONF, scenario, jetstream=True)
    assert out["acks"] == list(range(1, 21))
    assert [data for _, data, _ in out["got"]] == [b"job%d" % i for i in range(20)]
    assert out["consumer"] == (0, 0, 20, 20)
    assert out["push"] == ("work.0", b"job0") and out["other account"] == 0


async def test_accounts_jetstream_restart_keeps_each_accounts_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "accounts.conf"
    conf.write_text(DATA_CONF)
    results = {}
    for target in ("nats-server", "shardbroker"):
        store = tmp_path / f"store-{target}"
        with broker_on(
            target, conf, monkeypatch, tmp_path, jetstream=True, store_dir=store
        ) as broker:
            async with NatsClients(broker) as clients:
                a = await clients.on_shard(1, user="a", password="p")
                b = await clients.on_shard(2, user="b", password="p")
                ja, jb = a.jetstream(), b.jetstream()
                await ja.add_stream(name="KEEP", subjects=["keep.>"])
                await jb.add_stream(name="KEEP", subjects=["keep.>"], storage=StorageType.FILE)
                await jb.add_stream(name="ONLYB", subjects=["onlyb"])
                for i in range(3):
                    await ja.publish("keep.a", b"a%d" % i)
                for i in range(5):
                    await jb.publish("keep.b", b"b%d" % i)
                await jb.publish("onlyb", b"x")
                psub = await jb.pull_subscribe("keep.>", durable="d", stream="KEEP")
                for msg in await psub.fetch(2, timeout=5):
                    await msg.ack_sync()
        with broker_on(
            target, conf, monkeypatch, tmp_path, jetstream=True, store_dir=store
        ) as broker:
            out: dict[str, Any] = {}
            async with NatsClients(broker) as clients:
                a = await clients.on_shard(2, user="a", password="p")
                b = await clients.on_shard(1, user="b", password="p")
                ja, jb = a.jetstream(), b.jetstream()
                for name, js in (("A", ja), ("B", jb)):
                    names = await request_json(a if name == "A" else b, "$JS.API.STREAM.NAMES")
                    out[f"{name} streams"] = names["streams"]
                    info = await js.stream_info("KEEP")
                    out[f"{name} KEEP"] = (info.state.messages, info.state.last_seq)
                    out[f"{name} last"] = (await js.get_last_msg("KEEP", "keep.>")).data
                info = await jb.consumer_info("KEEP", "d")
                out["B consumer"] = (info.num_pending, info.ack_floor.stream_seq)
                psub = await jb.pull_subscribe("keep.>", durable="d", stream="KEEP")
                out["B rest"] = [m.data for m in await psub.fetch(3, timeout=5)]
        results[target] = out
    assert results["shardbroker"] == results["nats-server"]
    out = results["shardbroker"]
    assert out["A streams"] == ["KEEP"] and out["B streams"] == ["KEEP", "ONLYB"]
    assert out["A KEEP"] == (3, 3) and out["B KEEP"] == (5, 5)
    assert out["B rest"] == [b"b2", b"b3", b"b4"]


BAD_CONFIGS = {
    "word": "jetstream: {}\naccounts {\n  A: { jetstream: maybe }\n}\n",
    "type": "jetstream: {}\naccounts {\n  A: { jetstream: 5 }\n}\n",
    "size": 'jetstream: {}\naccounts {\n  A: { jetstream: { max_mem: "1GB" } }\n}\n',
    "bool": "jetstream: {}\naccounts {\n  A: { jetstream: { max_bytes: 1 } }\n}\n",
    "field": "jetstream: {}\naccounts {\n  A: { jetstream: { bogus: 1 } }\n}\n",
    "system": "jetstream: {}\naccounts {\n  A: { jetstream: enabled }\n"
    "  S: { jetstream: enabled }\n}\nsystem_account: S\n",
    "memory": "jetstream: { max_mem: 1MB }\naccounts {\n  A: { jetstream: { max_mem: 2MB } }\n}\n",
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_accounts_jetstream_bad_configs_are_refused_with_nats_servers_texts(
    tmp_path: Path, name: str
) -> None:
    conf = tmp_path / f"{name}.conf"
    conf.write_text(BAD_CONFIGS[name])
    store = str(tmp_path / "store")
    reference = subprocess.run(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", "-1", "-sd", store, "-c", str(conf)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    ours = subprocess.run(
        [sys.executable, "-m", "shardbroker", "serve", "-c", str(conf), "-t"],
        capture_output=True, text=True, timeout=30, cwd=REPO_ROOT,
    )  # fmt: skip
    assert reference.returncode != 0, reference.stdout + reference.stderr
    assert ours.returncode != 0 and "Traceback" not in ours.stderr
    expected = (reference.stderr + reference.stdout).strip().splitlines()[-1]
    got = (ours.stderr + ours.stdout).strip().splitlines()[-1]
    assert expected.endswith(got.rsplit(": ", 1)[-1]), (got, expected)
