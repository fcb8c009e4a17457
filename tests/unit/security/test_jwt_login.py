"""security/jwt_login.py: well-formed user claims, scoped signing key templates, and the
`src` and `times` limits of a user JWT (nats-server's rules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shardbroker.config import jwt
from shardbroker.security.jwt_login import (
    MAX_TEMPLATE_EXPANSIONS,
    TemplateError,
    cidr_list,
    connect_window,
    expand_subjects,
    has_empty_permissions,
    scoped_section,
    src_allows,
    user_claims_valid,
)

OPERATOR = jwt.new_seed("operator")
ACCOUNT = jwt.new_seed("account")
ACCOUNT_KEY = jwt.public_key(ACCOUNT)
SCOPED = jwt.new_seed("account")
USER = jwt.new_seed("user")
USER_KEY = jwt.public_key(USER)


def user(name: str = "bob", **fields: Any) -> jwt.Claims:
    fields.setdefault("issuer_account", ACCOUNT_KEY)
    return jwt.decode(jwt.encode("user", USER_KEY, SCOPED, fields, name=name), "user")


ACCOUNT_CLAIMS = jwt.decode(
    jwt.encode("account", ACCOUNT_KEY, OPERATOR, {"tags": ["env:prod", "env:dev"]}, name="acme"),
    "account",
)


def expand(subjects: list[str], refuse_invalid: bool = False, **fields: Any) -> list[str]:
    return expand_subjects(subjects, user(**fields), ACCOUNT_CLAIMS, refuse_invalid)


# -- well-formed claims -------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "valid"),
    [
        ({}, True),
        ({"pub": {"allow": ["a.>"], "deny": ["a.b"]}, "sub": {"allow": ["q g"]}}, True),
        ({"pub": {"allow": ["q g"]}}, False),  # a queue only for subscribe
        ({"sub": {"allow": ["a b c"]}}, False),
        ({"sub": {"deny": ["a..b"]}}, False),
        ({"pub": {"allow": "a"}}, False),
        ({"src": ["10.0.0.0/8", "::1/128"]}, True),
        ({"src": "10.0.0.0/8, 192.168.0.0/16"}, True),
        ({"src": ["10.0.0.1"]}, False),  # a CIDR needs its prefix length
        ({"src": ["10.0.0.0/33"]}, False),
        ({"src": ["10.0.0.0/255.0.0.0"]}, False),
        ({"times": [{"start": "09:00:00", "end": "17:00:00"}]}, True),
        ({"times": [{"start": "9:00:00", "end": "17:00:00.5"}]}, True),
        ({"times": [{"start": "09:00", "end": "17:00:00"}]}, False),
        ({"times": [{"start": "24:00:00", "end": "17:00:00"}]}, False),
        ({"times": [{"end": "17:00:00"}]}, False),
        ({"times_location": "Europe/Paris"}, True),
        ({"times_location": "Mars/Olympus"}, False),
        ({"issuer_account": "ABAD"}, False),
    ],
)
def test_user_claims_valid(section: dict[str, Any], valid: bool) -> None:
    assert user_claims_valid(section) is valid


# -- scoped signing keys --------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "empty"),
    [
        ({}, True),
        ({"pub": {}, "sub": {}, "subs": 0, "tags": ["a:b"], "issuer_account": "A"}, True),
        ({"pub": {"allow": []}}, False),  # an empty list is set, not absent
        ({"sub": {"deny": ["x"]}}, False),
        ({"resp": {}}, False),
        ({"subs": -1}, False),
        ({"payload": 10}, False),
        ({"src": ""}, False),
        ({"times": []}, False),
        ({"times_location": "UTC"}, False),
        ({"bearer_token": True}, False),
        ({"allowed_connection_types": []}, False),
    ],
)
def test_has_empty_permissions(section: dict[str, Any], empty: bool) -> None:
    assert has_empty_permissions(section) is empty


def test_template_placeholders() -> None:
    assert expand(
        ["u.{{name()}}", "k.{{subject()}}", "a.{{ account-name() }}", "s.{{account-subject()}}"]
    ) == ["u.bob", f"k.{USER_KEY}", "a.acme", f"s.{ACCOUNT_KEY}"]


def test_template_tags_give_one_subject_per_combination() -> None:
    tags = ["dept:eng", "dept:ops", "site:hq", "site:lab", "other:x"]
    assert expand(["{{tag(dept)}}.{{tag(site)}}.>", "plain"], tags=tags) == [
        "eng.hq.>", "eng.lab.>", "ops.hq.>", "ops.lab.>", "plain",
    ]  # fmt: skip
    assert expand(["e.{{account-tag(env)}}"]) == ["e.prod", "e.dev"]


def test_template_tag_names_are_matched_in_lower_case() -> None:
    """`{{tag(Dept)}}` looks for lower-case `dept:` tags; `{{TAG(dept)}}` keeps `TAG(`
    in its key (nats-server cuts only the lower-case spelling) and finds nothing."""
    tags = ["dept:eng", "Dept:Upper"]
    assert expand(["d.{{tag(Dept)}}"], tags=tags) == ["d.eng"]
    assert expand(["d.{{TAG(dept)}}", "other"], tags=tags) == ["other"]


def test_template_missing_tag_drops_an_allow_entry_and_refuses_a_deny_entry() -> None:
    assert expand(["x.{{tag(none)}}", "kept"]) == ["kept"]
    with pytest.raises(TemplateError):
        expand(["x.{{tag(none)}}"], refuse_invalid=True)


def test_template_entries_must_be_valid_subjects_once_a_placeholder_is_present() -> None:
    """Entries with a queue, or a name with a space, are invalid subjects: dropped from
    an allow list, refused in a deny list. Without placeholders a list stays as is."""
    assert expand(["q.{{name()}} grp", "plain q", "ok"]) == ["ok"]
    assert expand(["u.{{name()}}"], name="two words") == []
    assert expand(["plain q"]) == ["plain q"]
    with pytest.raises(TemplateError):
        expand(["u.{{name()}}"], refuse_invalid=True, name="two words")


def test_template_unknown_operation_and_expansion_limit() -> None:
    with pytest.raises(TemplateError):
        expand(["x.{{nope()}}"])
    tags = [f"a:{i}" for i in range(65)] + [f"b:{i}" for i in range(64)]
    assert len(expand(["{{tag(a)}}.{{tag(b)}}"], tags=tags[1:])) == MAX_TEMPLATE_EXPANSIONS
    with pytest.raises(TemplateError):
        expand(["{{tag(a)}}.{{tag(b)}}"], tags=tags)


def test_scoped_section_takes_the_template() -> None:
    template = {
        "pub": {"allow": ["p.{{tag(none)}}"]},
        "sub": {"allow": ["s.{{name()}}"], "deny": ["s.{{name()}}.secret"]},
        "payload": 30,
        "subs": -1,
        "data": -1,
        "src": ["127.0.0.0/8"],
    }
    section = scoped_section(user(tags=["a:b"]), ACCOUNT_CLAIMS, template)
    # Nothing left to allow for publish: everything is denied instead.
    assert section["pub"] == {"allow": [], "deny": [">"]}
    assert section["sub"] == {"allow": ["s.bob"], "deny": ["s.bob.secret"]}
    assert (section["payload"], section["subs"], section["src"]) == (30, -1, ["127.0.0.0/8"])
    assert (section["tags"], section["issuer_account"]) == (["a:b"], ACCOUNT_KEY)


def test_scoped_section_refuses_a_user_with_permissions_of_its_own() -> None:
    with pytest.raises(TemplateError):
        scoped_section(user(pub={"allow": ["x"]}), ACCOUNT_CLAIMS, {})


# -- src ------------------------------------------------------------------------------


def test_cidr_list_forms() -> None:
    assert cidr_list(None) == []
    assert cidr_list(" 10.0.0.0/8 ,, 10.0.0.0/8,::1/128 ") == ["10.0.0.0/8", "::1/128"]
    assert cidr_list("") == []
    assert cidr_list(["10.0.0.0/8", " x"]) == ["10.0.0.0/8", " x"]
    assert cidr_list(5) is None
    assert cidr_list([5]) is None


@pytest.mark.parametrize(
    ("src", "host", "allowed"),
    [
        (None, "", True),
        ([], "1.2.3.4", True),
        (["127.0.0.0/8"], "127.0.0.1", True),
        (["127.0.0.1/8"], "127.9.9.9", True),  # host bits are ignored, as in Go
        ("10.0.0.0/8, 127.0.0.1/32", "127.0.0.1", True),
        (["10.0.0.0/8"], "127.0.0.1", False),
        (["127.0.0.0/8"], "", False),
        (["127.0.0.0/8"], "::ffff:127.0.0.1", True),
        (["::ffff:127.0.0.0/104"], "127.0.0.1", True),
        (["::/0"], "127.0.0.1", False),
        (["::1/128"], "::1", True),
        (["127.0.0.0/8", "bogus"], "127.0.0.1", True),  # matched before the bad one
        (["bogus", "127.0.0.0/8"], "127.0.0.1", False),
        (["127.0.0.0/8"], "not-an-ip", False),
    ],
)
def test_src_allows(src: Any, host: str, allowed: bool) -> None:
    assert src_allows({"src": src} if src is not None else {}, host) is allowed


# -- times ----------------------------------------------------------------------------


def at(clock: str, zone: str = "UTC") -> float:
    """A Unix time on 2026-03-10 at `clock` in `zone`."""
    hour, minute, second = (int(p) for p in clock.split(":"))
    return datetime(2026, 3, 10, hour, minute, second, tzinfo=ZoneInfo(zone)).timestamp()


def window(*ranges: tuple[str, str], zone: str = "UTC") -> dict[str, Any]:
    return {"times": [{"start": s, "end": e} for s, e in ranges], "times_location": zone}


@pytest.mark.parametrize(
    ("section", "now", "expected"),
    [
        ({}, at("12:00:00"), (True, 0.0)),
        (window(("09:00:00", "17:00:00")), at("12:00:00"), (True, at("17:00:00"))),
        (window(("09:00:00", "17:00:00")), at("17:00:00"), (False, 0.0)),  # end excluded
        (window(("09:00:00", "17:00:00")), at("09:00:00"), (False, 0.0)),  # start too
        (window(("09:00:00", "17:00:00")), at("18:00:00"), (False, 0.0)),
        # Across midnight: after the start, it ends tomorrow; before the end, today.
        (window(("22:00:00", "06:00:00")), at("23:00:00"), (True, at("06:00:00") + 86400)),
        (window(("22:00:00", "06:00:00")), at("05:00:00"), (True, at("06:00:00"))),
        (window(("22:00:00", "06:00:00")), at("12:00:00"), (False, 0.0)),
        # Of overlapping ranges, the one ending last counts.
        (window(("08:00:00", "13:00:00"), ("11:00:00", "15:00:00")), at("12:00:00"),
         (True, at("15:00:00"))),
        # 14:00 UTC is 10:00 in New York (UTC-4 that day), 12:00 UTC is 08:00.
        (window(("09:00:00", "17:00:00"), zone="America/New_York"), at("14:00:00", "UTC"),
         (True, at("17:00:00", "America/New_York"))),
        (window(("09:00:00", "17:00:00"), zone="America/New_York"), at("12:00:00", "UTC"),
         (False, 0.0)),
        (window(("09:00:00", "17:00:00"), zone="Mars/Base"), at("12:00:00"), (False, 0.0)),
        (window(("09:00", "17:00:00")), at("12:00:00"), (False, 0.0)),
    ],
)  # fmt: skip
def test_connect_window(section: dict[str, Any], now: float, expected: tuple[bool, float]) -> None:
    assert connect_window(section, now) == expected


def test_connect_window_in_local_time() -> None:
    """Without times_location the clock is the server's local time."""
    now = datetime(2026, 3, 10, 12, 0, 0).timestamp()  # naive: local
    ends = datetime(2026, 3, 10, 13, 0, 0).timestamp()
    assert connect_window({"times": [{"start": "11:00:00", "end": "13:00:00"}]}, now) == (
        True,
        ends,
    )
    assert connect_window({"times": [{"start": "13:00:00", "end": "14:00:00"}]}, now)[0] is False
