"""HTTP monitoring against nats-server: the same traffic through both servers, then every
endpoint's JSON compared key by key and type by type, and the counters compared with
what the test sent (and with nats-server's own). /metrics parsed with the Prometheus
parser; `$SYS.REQ.SERVER.PING` answered exactly once; bad requests harm nothing."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, StorageType
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.broker import (
    HOST,
    Broker,
    NatsClients,
    barrier,
    free_port,
    is_shardbroker_target,
    nats_server_binary,
    run_broker,
)
from tests.helpers.wait import async_check_for, check_for

# Seconds to wait for the monitor to show what the test did: workers copy their counters
# to the stats segment on their tick (about 100 ms), so /varz and /metrics lag behind.
SETTLE_TIMEOUT = 10.0
SETTLE_INTERVAL = 0.05

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not is_shardbroker_target(), reason="compares shardbroker with nats-server itself"
    ),
]

# Keys nats-server emits that shardbroker leaves out (all omitempty in nats-server, or
# Go-only), per endpoint path; and what shardbroker adds.
MISSING_OK = {
    "varz": {"git_commit", "feature_flags", "jetstream.limits"},
    "jsz": {"limits"},
}
EXTRA_OK = {"connz": {"connections[].shard"}, "varz": {"message_core"}}


def parse_metrics(text: str) -> dict[str, list[Any]]:
    """Prometheus samples by name."""
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def shape(value: Any, path: str = "") -> dict[str, str]:
    """Every key path in a JSON document with its JSON type (arrays by their items)."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            out[sub] = kind(item)
            out.update(shape(item, sub))
    elif isinstance(value, list):
        for item in value:
            out.update(shape(item, f"{path}[]"))
    return out


def compare_shapes(name: str, ours: Any, theirs: Any, ignore: tuple[str, ...] = ()) -> None:
    a, b = shape(ours), shape(theirs)
    ignored = [*ignore, *MISSING_OK.get(name, ()), *EXTRA_OK.get(name, ())]

    def skip(key: str) -> bool:
        if key.startswith("http_req_stats."):  # which paths were asked differs
            return True
        return any(key == i or key.startswith(i + ".") or key.startswith(i + "[") for i in ignored)

    missing = sorted(k for k in b.keys() - a.keys() if not skip(k))
    extra = sorted(k for k in a.keys() - b.keys() if not skip(k))
    assert not missing, f"/{name}: keys nats-server has and we lack: {missing}"
    assert not extra, f"/{name}: keys we have and nats-server lacks: {extra}"
    wrong = {k: (a[k], b[k]) for k in a.keys() & b.keys() if a[k] != b[k] and not skip(k)}
    assert not wrong, f"/{name}: JSON types differ (ours, nats-server): {wrong}"


def http_get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def answers(port: int) -> bool:
    try:
        return http_get(port, "/healthz")[0] == 200
    except urllib.error.URLError:
        return False


def get_json(port: int, path: str) -> Any:
    status, ctype, body = http_get(port, path)
    assert status == 200, f"{path}: {status} {body}"
    assert ctype.startswith("application/json"), ctype
    return json.loads(body)


# -- the two servers ----------------------------------------------------------------------


@contextlib.contextmanager
def nats_server(jetstream: bool = False) -> Iterator[tuple[str, int]]:
    """nats-server with -m; yields (client url, monitoring port)."""
    run_dir = Path(tempfile.mkdtemp(prefix="sbmon-"))
    port, mport = free_port(), free_port()
    argv = [nats_server_binary(), "-a", HOST, "-p", str(port), "-m", str(mport)]
    if jetstream:
        argv += ["-js", "-sd", str(run_dir / "store")]
    with open(run_dir / "log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        check_for(10, 0.05, lambda: answers(mport))
        yield f"nats://{HOST}:{port}", mport
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def shardbroker(
    tmp_path: Path, jetstream: bool = False, extra: tuple[str, ...] = ()
) -> Iterator[tuple[Broker, int]]:
    mport = free_port()
    with run_broker(
        workers=2, tmp_dir=tmp_path, jetstream=jetstream, extra_args=["-m", str(mport), *extra]
    ) as broker:
        yield broker, mport


# A system account user, and a no_auth_user in the global account for everyone else.
SYSTEM_USER_CONF = """
accounts { $SYS: { users: [ {user: sys, password: p} ] } }
authorization { users: [ {user: anyone, password: p} ] }
no_auth_user: anyone
"""


# Messages the scenario publishes: (subject, payload).
TRAFFIC = [("foo.a", b"x" * 10)] * 5 + [("bar", b"hello")] * 3 + [("nobody", b"zz")] * 2


async def scenario(connect: Any) -> list[Any]:
    """Three clients: a subscriber, a publisher, an idle one; returns them open."""
    sub = await connect(1, name="subscriber")
    pub = await connect(2, name="publisher")
    idle = await connect(1, name="idle")
    got: list[bytes] = []

    async def on_msg(msg: Any) -> None:
        got.append(msg.data)

    await sub.subscribe("foo.*", queue="q1", cb=on_msg)
    await sub.subscribe("bar", cb=on_msg)
    # A flush alone does not wait for the interest to reach the publisher's worker.
    await barrier(sub)
    for subject, payload in TRAFFIC:
        await pub.publish(subject, payload)
    await pub.flush()
    await async_check_for(SETTLE_TIMEOUT, 0.01, lambda: len(got) == 8)
    return [sub, pub, idle]


def sent_bytes() -> int:
    return sum(len(p) for _, p in TRAFFIC)


def counted(varz: dict[str, Any], ours: bool) -> bool:
    """Whether /varz counts the scenario's traffic and clients yet (the figures the tests
    assert; nats-server counts at once, shardbroker on the workers' next tick)."""
    figures = (varz["in_msgs"], varz["in_bytes"], varz["out_msgs"], varz["connections"])
    if figures != (len(TRAFFIC), sent_bytes(), 8, 3):
        raise AssertionError(f"/varz in_msgs, in_bytes, out_msgs, connections: {figures}")
    if ours and varz["subscriptions"] != 2:
        raise AssertionError(f"/varz subscriptions: {varz['subscriptions']}")
    return True


# -- tests --------------------------------------------------------------------------------


async def test_monitor_endpoints_match_nats_server(tmp_path: Path) -> None:
    docs: dict[str, dict[str, Any]] = {"ours": {}, "theirs": {}}
    idle_cid: dict[str, int] = {}
    paths = [
        "/varz", "/connz", "/connz?subs=1", "/connz?subs=detail&auth=1", "/connz?sort=msgs_to",
        "/connz?limit=1&offset=1", "/subsz", "/subsz?subs=1", "/routez", "/gatewayz", "/leafz",
        "/accountz", "/accountz?acc=$G", "/accstatz", "/jsz",
    ]  # fmt: skip
    with shardbroker(tmp_path) as (broker, ours_port), nats_server() as (url, theirs_port):
        for who, port in (("ours", ours_port), ("theirs", theirs_port)):
            async with NatsClients(broker) as clients:
                if who == "ours":
                    connect = clients.on_shard
                else:

                    async def connect(shard: int, name: str) -> Any:
                        return await nats.connect(url, name=name, allow_reconnect=False)

                opened = await scenario(connect)
                idle_cid[who] = opened[2].client_id

                def fetch_counted(port: int = port, ours: bool = who == "ours") -> Any:
                    # Every document from one moment at which /varz counts the traffic.
                    got = {path: get_json(port, path) for path in paths}
                    counted(got["/varz"], ours)
                    return got

                docs[who] = await async_check_for(SETTLE_TIMEOUT, SETTLE_INTERVAL, fetch_counted)
                # A closed connection for state=closed.
                await opened[2].close()

                def closed_listed(port: int = port, cid: int = idle_cid[who]) -> Any:
                    closed = get_json(port, "/connz?state=closed")
                    listed = any(c["cid"] == cid for c in closed["connections"])
                    return closed if listed else False

                docs[who]["/connz?state=closed"] = await async_check_for(
                    SETTLE_TIMEOUT, SETTLE_INTERVAL, closed_listed
                )
                docs[who]["/healthz"] = get_json(port, "/healthz")
                for conn in opened[:2]:
                    await conn.close()
    ours, theirs = docs["ours"], docs["theirs"]
    for path in ours:
        name = path[1:].split("?")[0]
        # nats-server's $SYS account makes its own subscription lists; compare items only.
        compare_shapes(name, ours[path], theirs[path], ignore=("account_detail.imports",))

    # Counters: what the test sent, and what nats-server counted for the same traffic.
    varz, their_varz = ours["/varz"], theirs["/varz"]
    # (total_connections differs: landing a client on a chosen worker takes retries.)
    for key in ("in_msgs", "in_bytes", "out_msgs", "out_bytes", "connections",
                "in_client_msgs", "out_client_bytes"):  # fmt: skip
        assert varz[key] == their_varz[key], (key, varz[key], their_varz[key])
    assert varz["in_msgs"] == len(TRAFFIC)
    assert varz["in_bytes"] == sent_bytes()
    assert varz["out_msgs"] == 8
    assert varz["connections"] == 3
    assert varz["subscriptions"] == 2
    assert varz["http_port"] == ours_port and varz["port"] == broker.port
    # Which per-message core the workers run: the compiled one, built by pip.
    assert varz["message_core"] == "compiled"
    assert "Core:     compiled" in broker.log_text()

    conns = {c["name"]: c for c in ours["/connz?subs=1"]["connections"]}
    their_conns = {c["name"]: c for c in theirs["/connz?subs=1"]["connections"]}
    assert set(conns) == {"subscriber", "publisher", "idle"}
    for name, conn in conns.items():
        theirs_conn = their_conns[name]
        for key in ("in_msgs", "out_msgs", "in_bytes", "out_bytes", "subscriptions"):
            assert conn[key] == theirs_conn[key], (name, key, conn[key], theirs_conn[key])
        assert conn["shard"] == broker.shard_of(conn["cid"])
        assert conn["shard"] == (2 if name == "publisher" else 1)
    assert sorted(conns["subscriber"]["subscriptions_list"])[:2] == ["bar", "foo.*"]
    detail = ours["/connz?subs=detail&auth=1"]["connections"]
    sub_detail = next(c for c in detail if c["name"] == "subscriber")
    queued = next(d for d in sub_detail["subscriptions_list_detail"] if d["subject"] == "foo.*")
    assert queued["qgroup"] == "q1" and queued["msgs"] == 5
    by_msgs_to = [c["name"] for c in ours["/connz?sort=msgs_to"]["connections"]]
    assert by_msgs_to[0] == "subscriber"
    page = ours["/connz?limit=1&offset=1"]
    assert (page["num_connections"], page["total"], page["limit"], page["offset"]) == (1, 3, 1, 1)
    # (Connections closed while landing clients on their workers are there too.)
    closed = [c for c in ours["/connz?state=closed"]["connections"] if c["cid"] == idle_cid["ours"]]
    assert len(closed) == 1 and closed[0]["stop"] and closed[0]["in_msgs"] == 0
    assert closed[0]["reason"] == theirs["/connz?state=closed"]["connections"][0]["reason"]
    assert ours["/subsz"]["num_subscriptions"] == 2
    assert ours["/subsz?subs=1"]["total"] == len(ours["/subsz?subs=1"]["subscriptions_list"])
    assert ours["/healthz"] == {"status": "ok"} == theirs["/healthz"]
    assert ours["/jsz"]["disabled"] is True


JSZ_PATHS = (
    "/jsz",
    "/jsz?accounts=true",
    "/jsz?streams=true",
    "/jsz?consumers=true&config=true",
    "/jsz?acc=%24G&streams=true",
    "/jsz?acc=NOPE&streams=true",
    "/jsz?accounts=true&offset=1",
)


def figures(jsz: dict[str, Any]) -> list[Any]:
    """What /jsz details say, without times and ids: per account its usage, per stream
    its state and config, per consumer its sequences and counts."""
    out: list[Any] = []
    for account in jsz.get("account_details", []):
        out.append((account["name"], account["storage"], account["memory"], account["api"]))
        # nats-server lists them in no particular order (Go map iteration).
        for stream in sorted(account.get("stream_detail", []), key=lambda s: s["name"]):
            state = {k: v for k, v in stream["state"].items() if not k.endswith("_ts")}
            config = stream.get("config", {})
            out.append((stream["name"], state, sorted(config)))
            out.extend(
                (
                    c["name"],
                    c["delivered"],
                    c["num_pending"],
                    c["num_ack_pending"],
                    sorted(c.get("config", {})),
                )
                for c in stream.get("consumer_detail", [])
            )
    return out


async def test_monitor_jsz_matches_nats_server(tmp_path: Path) -> None:
    docs = {}
    with (
        shardbroker(tmp_path, jetstream=True) as (broker, ours_port),
        nats_server(jetstream=True) as (url, theirs_port),
    ):
        for who, client_url, port in (
            ("ours", broker.url, ours_port),
            ("theirs", url, theirs_port),
        ):
            nc = await nats.connect(client_url)
            js = nc.jetstream()
            await js.add_stream(name="MON", subjects=["mon.>"])
            for i in range(4):
                await js.publish("mon.x", b"m%d" % i)
            await js.add_consumer("MON", durable_name="C")
            await js.add_stream(name="MEM", subjects=["mem.>"], storage=StorageType.MEMORY)
            await js.publish("mem.a", b"x")
            await js.add_consumer("MEM", durable_name="D", ack_policy=AckPolicy.NONE)

            def fetch_counted(port: int = port, ours: bool = who == "ours") -> Any:
                # Every document from one moment at which /jsz (and /varz, whose figures
                # come from the storage shard's tick in shardbroker) count what was made.
                got = {p: get_json(port, p) for p in (*JSZ_PATHS, "/varz")}
                jsz = got["/jsz"]
                figures = (jsz["streams"], jsz["consumers"], jsz["messages"])
                if figures != (2, 2, 5):
                    raise AssertionError(f"/jsz streams, consumers, messages: {figures}")
                if ours and got["/varz"]["jetstream"]["stats"]["storage"] != jsz["storage"]:
                    raise AssertionError("/varz jetstream storage differs from /jsz")
                return got

            docs[who] = await async_check_for(SETTLE_TIMEOUT, SETTLE_INTERVAL, fetch_counted)
            docs[who]["/healthz?js-enabled-only=true"] = get_json(
                port, "/healthz?js-enabled-only=true"
            )
            await nc.close()
    for path in docs["ours"]:
        compare_shapes(path[1:].split("?")[0], docs["ours"][path], docs["theirs"][path])
    # The details: the same accounts, streams and consumers with the same figures.
    for path in JSZ_PATHS[1:]:
        ours, theirs = docs["ours"][path], docs["theirs"][path]
        assert figures(ours) == figures(theirs), path
    full = docs["ours"]["/jsz?consumers=true&config=true"]["account_details"][0]
    assert full["name"] == "$G" and full["memory"] == docs["theirs"]["/jsz"]["memory"] > 0
    assert [s["config"]["name"] for s in full["stream_detail"]] == ["MEM", "MON"]
    jsz, their_jsz = docs["ours"]["/jsz"], docs["theirs"]["/jsz"]
    for key in ("streams", "consumers", "messages", "bytes", "storage", "memory"):
        assert jsz[key] == their_jsz[key], (key, jsz[key], their_jsz[key])
    assert (jsz["streams"], jsz["consumers"], jsz["messages"]) == (2, 2, 5)
    assert docs["ours"]["/varz"]["jetstream"]["stats"]["storage"] == jsz["storage"]


async def test_monitor_bad_requests_match_nats_server(tmp_path: Path) -> None:
    cases = [
        "/nope", "/connz?sort=bogus", "/connz?limit=abc", "/connz?sort=stop",
        "/connz?subs=maybe", "/connz?state=bogus", "/healthz?stream=x", "/accountz?acc=NOPE",
    ]  # fmt: skip
    with shardbroker(tmp_path) as (broker, ours_port), nats_server() as (_, theirs_port):
        for path in cases:
            ours = http_get(ours_port, path)
            theirs = http_get(theirs_port, path)
            assert ours[0] == theirs[0], (path, ours, theirs)
            assert ours[2].strip() == theirs[2].strip(), (path, ours, theirs)
        # Garbage and oversized requests: an error and a close, and the port still serves.
        for junk in (b"NONSENSE\r\n\r\n", b"GET /varz HTTP/1.1\r\nX: " + b"a" * 20000):
            with socket.create_connection((HOST, ours_port), timeout=5) as sock:
                sock.sendall(junk)
                reply = sock.recv(4096)
                assert reply.startswith(b"HTTP/1.1 4"), reply
        assert get_json(ours_port, "/varz")["connections"] == 0
        # Keep-alive: two requests on one connection.
        with socket.create_connection((HOST, ours_port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n")
            data = b""
            deadline = time.monotonic() + 5
            while data.count(b'{"status":"ok"}') < 2 and time.monotonic() < deadline:
                data += sock.recv(4096)
            assert data.count(b"HTTP/1.1 200 OK") == 2
        async with NatsClients(broker) as clients:
            nc = await clients.on_shard(1)
            await nc.flush()


async def test_monitor_metrics_parse(tmp_path: Path) -> None:
    with shardbroker(tmp_path, jetstream=True) as (broker, port):
        async with NatsClients(broker) as clients:
            await scenario(clients.on_shard)

            def fetch_counted() -> tuple[Any, int, str, dict[str, list[Any]]]:
                # /varz and /metrics, once both count the traffic on every worker.
                varz = get_json(port, "/varz")
                status, ctype, text = http_get(port, "/metrics")
                samples = parse_metrics(text) if status == 200 else {}
                counted(varz, ours=True)
                figures = tuple(
                    sum(s.value for s in samples.get(name, []))
                    for name in ("gnatsd_varz_in_msgs", "gnatsd_varz_connections",
                                 "shardbroker_shard_in_msgs", "shardbroker_shard_connections")
                )  # fmt: skip
                if figures != (len(TRAFFIC), 3, len(TRAFFIC), 3):
                    raise AssertionError(f"/metrics in_msgs, connections, by shard: {figures}")
                return varz, status, ctype, samples

            varz, status, ctype, samples = await async_check_for(
                SETTLE_TIMEOUT, SETTLE_INTERVAL, fetch_counted
            )
    assert status == 200 and ctype.startswith("text/plain")
    for name in (
        "gnatsd_varz_cpu", "gnatsd_varz_mem", "gnatsd_varz_in_bytes", "gnatsd_varz_in_msgs",
        "gnatsd_varz_out_bytes", "gnatsd_varz_out_msgs", "gnatsd_varz_connections",
        "gnatsd_varz_subscriptions", "gnatsd_varz_slow_consumers",
        "gnatsd_varz_jetstream_stats_memory", "gnatsd_varz_jetstream_stats_storage",
        "gnatsd_varz_jetstream_config_max_memory", "gnatsd_varz_jetstream_config_max_storage",
        "gnatsd_varz_start", "gnatsd_varz_version", "gnatsd_varz_http_req_stats_varz",
        "gnatsd_subsz_num_subscriptions", "gnatsd_routez_num_routes",
        "gnatsd_connz_num_connections", "gnatsd_connz_in_msgs", "gnatsd_healthz_status",
        "jetstream_server_total_streams", "jetstream_server_total_consumers",
        "shardbroker_shard_connections", "shardbroker_shard_in_msgs", "shardbroker_shard_up",
    ):  # fmt: skip
        assert name in samples, f"{name} missing from /metrics"
    assert samples["gnatsd_varz_in_msgs"][0].value == len(TRAFFIC) == varz["in_msgs"]

    assert samples["gnatsd_varz_connections"][0].value == 3
    assert samples["gnatsd_varz_server_id"][0].labels["value"] == varz["server_id"]
    assert samples["gnatsd_healthz_status"][0].value == 0
    per_shard = {s.labels["shard"]: s.value for s in samples["shardbroker_shard_connections"]}
    assert per_shard == {"1": 2.0, "2": 1.0}
    assert sum(s.value for s in samples["shardbroker_shard_in_msgs"]) == len(TRAFFIC)


async def test_monitor_metrics_jetstream_details(tmp_path: Path) -> None:
    """Per account, stream and consumer, with prometheus-nats-exporter's names and labels."""
    with shardbroker(tmp_path, jetstream=True) as (broker, port):
        nc = await nats.connect(broker.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="MET", subjects=["met.>"])
            for i in range(3):
                await js.publish("met.x", b"m%d" % i)
            await js.add_consumer("MET", durable_name="C", description="the C")
            status, _, text = http_get(port, "/metrics")
        finally:
            await nc.close()
    assert status == 200
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    (stream,) = samples["jetstream_stream_total_messages"]
    assert (stream.labels["stream_name"], stream.labels["account"], stream.value) == (
        "MET",
        "$G",
        3.0,
    )
    assert samples["jetstream_stream_last_seq"][0].value == 3.0
    (consumer,) = samples["jetstream_consumer_num_pending"]
    assert (consumer.labels["consumer_name"], consumer.labels["stream_name"]) == ("C", "MET")
    assert consumer.value == 3.0
    (used,) = samples["jetstream_account_storage_used"]
    assert used.labels["account"] == "$G" and used.value > 0


async def ask_once(nc: Any, subject: str) -> Any:
    """Request `subject` and return its one reply (decoded). A second request on the same
    subscription follows the first through the same worker, supervisor and worker back,
    and one subscription's messages are handled in order: once the second reply is in,
    a duplicate of the first would have been too. A duplicate fails the test at once."""
    inbox = nc.new_inbox()
    replies: list[Any] = []

    async def on_reply(msg: Any) -> None:
        replies.append(msg)

    def answered(tag: str) -> bool:
        return any(msg.subject == f"{inbox}.{tag}" for msg in replies)

    sub = await nc.subscribe(f"{inbox}.*", cb=on_reply)
    for tag in ("first", "second"):
        await nc.publish(subject, b"", reply=f"{inbox}.{tag}")
        await nc.flush()
        await async_check_for(SETTLE_TIMEOUT, 0.01, lambda tag=tag: answered(tag))
    await sub.unsubscribe()
    first = [msg for msg in replies if msg.subject == f"{inbox}.first"]
    if len(first) != 1:
        pytest.fail(f"{subject}: {len(first)} replies to one request: {first}")
    return json.loads(first[0].data)


async def test_monitor_sys_ping_answers_once(tmp_path: Path) -> None:
    conf = tmp_path / "sys.conf"
    conf.write_text(SYSTEM_USER_CONF)
    with shardbroker(tmp_path, extra=("-c", str(conf))) as (broker, port):
        server_id = get_json(port, "/varz")["server_id"]
        async with NatsClients(broker) as clients:
            for shard in broker.shard_ids:
                nc = await clients.on_shard(shard, user="sys", password="p")
                for subject in ("$SYS.REQ.SERVER.PING", "$SYS.REQ.SERVER.PING.CONNZ"):

                    async def counts_clients(
                        nc: Any = nc, subject: str = subject, shard: int = shard
                    ) -> Any:
                        # statsz counts come from the workers' tick: ask again until
                        # the reply counts the client just connected (one reply each).
                        body = await ask_once(nc, subject)
                        if subject.endswith("PING"):
                            count = body["statsz"]["connections"]
                        else:
                            count = body["data"]["num_connections"]
                        return body if count == shard else False

                    body = await async_check_for(SETTLE_TIMEOUT, SETTLE_INTERVAL, counts_clients)
                    assert body["server"]["id"] == server_id
                    if subject.endswith("PING"):
                        assert body["statsz"]["connections"] == shard
                    else:
                        assert body["data"]["num_connections"] == shard
            idz = await nc.request("$SYS.REQ.SERVER.PING.IDZ", b"", timeout=2)
            assert set(json.loads(idz.data)) == {"name", "host", "id"}
            varz = await nc.request("$SYS.REQ.SERVER.PING.VARZ", b"", timeout=2)
            assert json.loads(varz.data)["data"]["port"] == broker.port
