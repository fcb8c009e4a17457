"""The /dashboard page without a browser: it and every file it loads are served by the
broker with the right content types, reference only URLs of the monitoring port (under
its base path), and /shardz, the per-shard figures it reads, counts what the test sent on
each worker. Requests for files that are not the page's get a 404 and harm nothing."""

from __future__ import annotations

import http.client
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from tests.helpers.broker import (
    HOST,
    barrier,
    connect_on_shard,
    free_port,
    is_shardbroker_target,
    run_broker,
)
from tests.helpers.wait import check_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not is_shardbroker_target(), reason="the dashboard is shardbroker's own"),
]

CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Any absolute URL (with a scheme, or protocol-relative) in a script or style sheet.
ABSOLUTE_URL = re.compile(r"""(?:\b[a-z][a-z0-9+.-]*:)?//[^\s'"`)]+""", re.IGNORECASE)
SENT = 25


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (no normalisation of `..`)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class References(HTMLParser):
    """The <base href> and every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.base = ""
        self.urls: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None or name not in ("src", "href"):
                continue
            if tag == "base":
                self.base = value
            else:
                self.urls.append((tag, value))


def page_references(port: int, base_path: str) -> tuple[References, dict[str, str]]:
    status, headers, body = get(port, f"{base_path}/dashboard")
    assert status == 200, body
    assert headers["content-type"] == "text/html; charset=utf-8"
    refs = References()
    refs.feed(body.decode())
    assert refs.base == f"{base_path}/"
    return refs, headers


def check_assets_are_local(port: int, base_path: str) -> set[str]:
    """Every URL of the page is relative and served here with its type; returns the files
    the page loads (the links to the JSON endpoints are checked to answer JSON)."""
    refs, headers = page_references(port, base_path)
    # The browser may load nothing from anywhere else.
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    loaded = set()
    for tag, url in refs.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), (tag, url)
        path = urljoin(refs.base, url)
        status, headers, body = get(port, path)
        assert status == 200, (path, status, body[:200])
        if tag == "a":  # the footer's links to the endpoints the page reads
            assert headers["content-type"].startswith("application/json"), path
            continue
        loaded.add(url)
        suffix = Path(parts.path).suffix
        assert headers["content-type"] == CONTENT_TYPES[suffix], (path, headers)
        assert headers["x-content-type-options"] == "nosniff"
        if suffix in (".js", ".css"):
            found = ABSOLUTE_URL.findall(body.decode())
            assert not found, f"{url} names absolute URLs: {found}"
    return loaded


def test_dashboard_and_its_files_are_served_locally(tmp_path: Path) -> None:
    mport = free_port()
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=["-m", str(mport)]):
        loaded = check_assets_are_local(mport, "")
        assert loaded == {"static/favicon.svg", "static/dashboard.css", "static/dashboard.js"}
        # The monitoring index links to it.
        status, _, body = get(mport, "/")
        assert status == 200 and b'href="/dashboard"' in body
        # Nothing but the page's own files is served from static/.
        for path in (
            "/static/../http.py", "/static/..%2Fhttp.py", "/static/dashboard.html",
            "/static/__init__.py", "/static/", "/static/nope.js", "/static/.hidden.js",
            "/static//etc/passwd", "/dashboard.js",
        ):  # fmt: skip
            status, _, body = get(mport, path)
            assert status == 404, (path, status, body[:100])
            assert body == b"404 page not found\n"
        assert get(mport, "/healthz")[0] == 200


def test_dashboard_under_the_http_base_path(tmp_path: Path) -> None:
    mport = free_port()
    conf = tmp_path / "base.conf"
    conf.write_text(f'http_base_path: "/mon"\nhttp_port: {mport}\n')
    with run_broker(workers=2, tmp_dir=tmp_path, extra_args=["-c", str(conf)]):
        loaded = check_assets_are_local(mport, "/mon")
        assert "static/dashboard.js" in loaded
        assert get(mport, "/dashboard")[0] == 404
        assert get(mport, "/static/dashboard.js")[0] == 404


def shardz(port: int) -> dict[str, Any]:
    status, headers, body = get(port, "/shardz")
    assert status == 200 and headers["content-type"] == "application/json", body
    data: dict[str, Any] = json.loads(body)
    return data


async def test_shardz_counts_each_workers_traffic(tmp_path: Path) -> None:
    mport = free_port()
    with run_broker(
        workers=2, tmp_dir=tmp_path, jetstream=True, extra_args=["-m", str(mport)]
    ) as broker:
        pub = await connect_on_shard(broker, 1, name="pub")
        sub = await connect_on_shard(broker, 2, name="sub")
        try:
            got = []

            async def on_msg(msg: Any) -> None:
                got.append(msg.data)

            await sub.subscribe("shardz.test", cb=on_msg)
            await barrier(sub)
            for _ in range(SENT):
                await pub.publish("shardz.test", b"0123456789")
            await barrier(pub)
            await barrier(sub)
            assert len(got) == SENT

            def counted() -> dict[str, Any]:
                data = shardz(mport)
                rows = {row["shard"]: row for row in data["shards"]}
                assert rows[1]["in_msgs"] == SENT and rows[2]["out_msgs"] == SENT, rows
                return data

            # Workers copy their counters to the stats segment on their tick.
            data = check_for(10, 0.05, counted)
        finally:
            await pub.close()
            await sub.close()
        rows = {row["shard"]: row for row in data["shards"]}
        assert sorted(rows) == [1, 2, 3]
        assert [rows[s]["role"] for s in (1, 2, 3)] == ["worker", "worker", "storage"]
        for shard, proc in broker.workers.items():
            assert rows[shard]["pid"] == proc.pid and rows[shard]["up"] is True
        assert rows[1]["in_bytes"] == SENT * 10 and rows[2]["out_bytes"] == SENT * 10
        assert rows[1]["connections"] == 1 and rows[2]["connections"] == 1
        assert rows[2]["subscriptions"] == 1 and rows[1]["subscriptions"] == 0
        assert all(rows[s]["mem"] > 0 for s in rows)
        assert data["supervisor"]["pid"] == broker.pid and data["supervisor"]["mem"] > 0
        totals = data["totals"]
        assert totals["workers"] == 2 and totals["workers_up"] == 2
        assert totals["in_msgs"] == SENT and totals["out_msgs"] == SENT
        assert totals["connections"] == 2
        assert totals["mem"] == data["supervisor"]["mem"] + sum(r["mem"] for r in rows.values())
        assert data["now_ns"] > 0 and data["cores"] >= 1
