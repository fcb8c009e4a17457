"""tools/jwtclaims.py: the claims `shardbroker jwt` writes, from command-line values."""

from __future__ import annotations

import pytest

from shardbroker.config import jwt
from shardbroker.tools import jwtclaims
from shardbroker.tools.jwtclaims import ClaimsError

NOW = 1_800_000_000.0
OTHER_ACCOUNT = jwt.public_key(jwt.new_seed("account"))


def test_account_limits_are_unlimited_by_default_as_nsc_writes_them() -> None:
    assert jwtclaims.account_limits() == {
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": True, "conn": -1, "leaf": -1,
    }  # fmt: skip


def test_account_limits_leave_zeros_out_and_turn_jetstream_on_with_storage() -> None:
    limits = jwtclaims.account_limits(conn=0, payload=1024, disallow_bearer=True)
    assert "conn" not in limits and limits["payload"] == 1024 and limits["disallow_bearer"]
    assert "mem_storage" not in limits and "streams" not in limits
    with_js = jwtclaims.account_limits(js_disk=-1, js_streams=5)
    assert with_js["disk_storage"] == -1 and with_js["streams"] == 5
    assert with_js["consumer"] == -1 and "mem_storage" not in with_js
    with pytest.raises(ClaimsError, match="--conn"):
        jwtclaims.account_limits(conn=-2)


@pytest.mark.parametrize(
    ("text", "value"),
    [("-1", -1), ("0", 0), ("1024", 1024), ("1K", 1024), ("64kb", 65536), ("2MiB", 2 << 20),
     ("1G", 1 << 30)],
)  # fmt: skip
def test_parse_limit(text: str, value: int) -> None:
    assert jwtclaims.parse_limit(text, "--payload") == value


@pytest.mark.parametrize("text", ["", "-2", "lots", "1X", "1.5M"])
def test_parse_limit_refuses(text: str) -> None:
    with pytest.raises(ClaimsError, match="--payload"):
        jwtclaims.parse_limit(text, "--payload")


@pytest.mark.parametrize(
    ("text", "at"),
    [("90s", NOW + 90), ("12h", NOW + 12 * 3600), ("7d", NOW + 7 * 86400),
     ("1w2d", NOW + 9 * 86400), ("1d1h30m", NOW + 86400 + 5400),
     ("2027-01-31", 1801353600), ("2027-01-31T12:00:00+02:00", 1801353600 + 10 * 3600)],
)  # fmt: skip
def test_parse_expiry(text: str, at: float) -> None:
    assert jwtclaims.parse_expiry(text, NOW) == int(at)


@pytest.mark.parametrize("text", ["soon", "5x", "2020-01-01", "2027-13-01", "-5m", "0s"])
def test_parse_expiry_refuses(text: str) -> None:
    with pytest.raises(ClaimsError, match="--expires"):
        jwtclaims.parse_expiry(text, NOW)


def test_exports_and_imports() -> None:
    assert jwtclaims.export_claim("orders.>", service=False) == {
        "name": "orders.>", "subject": "orders.>", "type": "stream",
    }  # fmt: skip
    service = jwtclaims.export_claim("svc.time", service=True)
    assert service["type"] == "service" and service["response_type"] == "Singleton"
    keys = {"app": OTHER_ACCOUNT}
    assert jwtclaims.import_claim("app:svc.time:time", True, keys.__getitem__) == {
        "name": "svc.time", "subject": "svc.time", "account": OTHER_ACCOUNT,
        "type": "service", "local_subject": "time",
    }  # fmt: skip
    # An account key is taken as it is, without a lookup.
    by_key = jwtclaims.import_claim(f"{OTHER_ACCOUNT}:orders.>", False, {}.__getitem__)
    assert by_key["account"] == OTHER_ACCOUNT and "local_subject" not in by_key


@pytest.mark.parametrize("spec", ["app", "app:", ":orders", "app:orders..x", "app:a b"])
def test_imports_refused(spec: str) -> None:
    with pytest.raises(ClaimsError, match="--import"):
        jwtclaims.import_claim(spec, False, {"app": OTHER_ACCOUNT}.__getitem__)


def test_user_fields_permissions_and_limits() -> None:
    assert jwtclaims.user_fields() == {
        "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
    }  # fmt: skip
    fields = jwtclaims.user_fields(
        pub_allow=["orders.>"], pub_deny=["orders.secret"], sub_allow=["orders.* workers"],
        payload=512, bearer=True,
    )  # fmt: skip
    assert fields["pub"] == {"allow": ["orders.>"], "deny": ["orders.secret"]}
    assert fields["sub"] == {"allow": ["orders.* workers"]}
    assert fields["payload"] == 512 and fields["bearer_token"] is True


@pytest.mark.parametrize(
    ("option", "subject"),
    [("pub_allow", "a..b"), ("pub_deny", ""), ("sub_allow", ">.a"), ("pub_allow", "a b")],
)
def test_user_fields_refuse_bad_subjects(option: str, subject: str) -> None:
    with pytest.raises(ClaimsError, match=option.replace("_", "-")):
        jwtclaims.user_fields(**{option: [subject]})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a b", "x" * 65, "..", "ü"])
def test_names_refused(name: str) -> None:
    with pytest.raises(ClaimsError, match="account name"):
        jwtclaims.check_name(name, "account")
