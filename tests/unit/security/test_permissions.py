"""security.permissions: the matcher (accounts-and-security.md §3; cases checked against
nats-server 2.15.1 where the reference and the server disagree)."""

from __future__ import annotations

import pytest

from shardbroker.config.options import (
    Authorization,
    Options,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    User,
)
from shardbroker.protocol.subjects import subject_is_subset_match
from shardbroker.security import permissions as perms_module
from shardbroker.security.permissions import (
    CHECK_DENY,
    CHECK_REPLIES,
    ResponseGrants,
    UserPermissions,
    queue_matches,
    users_permissions,
)


def compiled(
    pub_allow: tuple[str, ...] | None = None,
    pub_deny: tuple[str, ...] | None = None,
    sub_allow: tuple[str, ...] | None = None,
    sub_deny: tuple[str, ...] | None = None,
    responses: ResponsePermission | None = None,
) -> UserPermissions:
    return UserPermissions(
        Permissions(
            publish=SubjectPermission(allow=pub_allow, deny=pub_deny),
            subscribe=SubjectPermission(allow=sub_allow, deny=sub_deny),
            allow_responses=responses,
        )
    )


# -- publish ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "deny", "subject", "allowed"),
    [
        (None, None, b"anything", True),
        (("orders.>",), None, b"orders.new", True),
        (("orders.>",), None, b"orders", False),
        (("orders.*",), None, b"orders.a.b", False),
        (("orders.>", "_INBOX.>"), ("orders.secret",), b"orders.secret", False),
        (("orders.>",), ("orders.secret",), b"orders.secret.x", True),
        (None, ("*.secret",), b"x.secret", False),
        (None, ("*.secret",), b"x.public", True),
        ((), None, b"x", False),  # the empty allow list of allow_responses
        (("a",), None, b"a..b", False),  # an empty token matches nothing
        (("a.*",), None, b"a.*", True),  # a published "*" is a literal token
        (("a.b",), None, b"a.*", False),
    ],
)
def test_permissions_publish(
    allow: tuple[str, ...] | None, deny: tuple[str, ...] | None, subject: bytes, allowed: bool
) -> None:
    perms = compiled(pub_allow=allow, pub_deny=deny)
    assert perms.publish_allowed(subject) is allowed
    assert perms.publish_allowed(subject) is allowed  # the cached answer


def test_permissions_publish_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(perms_module, "PERM_CACHE_MAX", 8)
    monkeypatch.setattr(perms_module, "PERM_CACHE_SWEEP", 2)
    perms = compiled(pub_allow=("a.*",))
    for i in range(20):
        assert perms.publish_allowed(b"a.%d" % i)
        assert len(perms._pub_cache) <= 8
    assert b"a.19" in perms._pub_cache  # the newest stays


# -- subscribe -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "deny", "subject", "allowed"),
    [
        (("foo.*",), None, b"foo.*", True),
        (("foo.*",), None, b"foo.bar", True),
        (("foo.>",), None, b"foo.*", True),
        (("foo.bar",), None, b"foo.*", False),  # a wider subscription needs a wider grant
        (("foo.*",), None, b"foo.>", True),  # nats quirk: "*" admits a ">" token
        (("foo.*",), None, b">", False),
        (None, ("foo.secret",), b"foo.secret", False),
        (None, ("foo.secret",), b"foo.*", True),  # checked again at delivery
        (None, ("foo.*",), b"foo.>", False),
        (("foo.>",), ("foo.bar",), b"foo.bar", False),
    ],
)
def test_permissions_subscribe(
    allow: tuple[str, ...] | None, deny: tuple[str, ...] | None, subject: bytes, allowed: bool
) -> None:
    assert compiled(sub_allow=allow, sub_deny=deny).can_subscribe(subject, None) is allowed


@pytest.mark.parametrize(
    ("allow", "plain", "v1", "v2"),
    [
        (("foo",), True, True, True),
        (("foo v1",), False, True, False),
        (("foo", "foo v1"), True, True, False),
        (("foo v.*",), False, False, False),
        (("foo v1", "foo v2"), False, True, True),
        (("* v1",), False, True, False),
    ],
)
def test_permissions_queue_allow_table(
    allow: tuple[str, ...], plain: bool, v1: bool, v2: bool
) -> None:
    perms = compiled(sub_allow=allow)
    assert perms.can_subscribe(b"foo", None) is plain
    assert perms.can_subscribe(b"foo", b"v1") is v1
    assert perms.can_subscribe(b"foo", b"v2") is v2


def test_permissions_queue_wildcard_names() -> None:
    perms = compiled(sub_allow=("baz v.*", "w.> g.>"))
    assert perms.can_subscribe(b"baz", b"v.x")
    assert perms.can_subscribe(b"baz", b"v.*")  # the literal name, and a subset
    assert not perms.can_subscribe(b"baz", b"v")
    assert not perms.can_subscribe(b"baz", b"v.a.b")
    assert perms.can_subscribe(b"w.a", b"g.a.b")
    assert not perms.can_subscribe(b"w.a", None)


def test_permissions_queue_deny() -> None:
    perms = compiled(sub_deny=("w.q q1", "x"))
    assert not perms.can_subscribe(b"w.q", b"q1")
    assert perms.can_subscribe(b"w.q", b"q2")
    assert perms.can_subscribe(b"w.q", None)
    assert perms.can_subscribe(b"w.*", b"q1")  # only at delivery
    assert not perms.can_subscribe(b"x", b"any")  # a plain deny entry denies queues too
    both = compiled(sub_deny=("foo", "foo q1"))
    assert not both.can_subscribe(b"foo", b"q2")


def test_permissions_queue_matches() -> None:
    assert queue_matches(b"v1", [])
    assert queue_matches(b"v1", [b"v1"])
    assert not queue_matches(b"v1", [b"v.*"])
    assert queue_matches(b"v.1", [b"x", b"v.*"])
    assert queue_matches(b"v.*", [b"v.>"])
    assert not queue_matches(b"v.>", [b"v.*"])


@pytest.mark.parametrize(
    ("subject", "test", "expected"),
    [
        (b"foo.bar", b"foo.*", True),
        (b"foo.*", b"foo.*", True),
        (b"foo.*", b"foo.>", True),
        (b"foo.>", b"foo.*", False),
        (b"foo.*", b"foo.bar", False),
        (b"foo", b"foo.>", False),
        (b"foo.bar.baz", b"foo.>", True),
        (b"foo.bar", b"foo.baz", False),
        (b"foo", b"foo", True),
        (b"foo.bar", b"foo", False),
    ],
)
def test_subjects_subset_match(subject: bytes, test: bytes, expected: bool) -> None:
    assert subject_is_subset_match(subject, test) is expected


# -- delivery-time deny --------------------------------------------------------------------


def test_permissions_delivery_check_only_where_a_deny_entry_overlaps() -> None:
    perms = compiled(sub_deny=("w.secret", "w.q q1"))
    assert perms.needs_delivery_check(b"w.*", None) == CHECK_DENY
    assert perms.needs_delivery_check(b"w.>", None) == CHECK_DENY
    assert perms.needs_delivery_check(b"*.*", None) == CHECK_DENY
    assert perms.needs_delivery_check(b"w.q", b"q2") == CHECK_DENY
    assert perms.needs_delivery_check(b"w.public", None) == 0  # literal: checked at SUB
    assert perms.needs_delivery_check(b"x.*", None) == 0
    assert compiled(sub_allow=(">",)).needs_delivery_check(b">", None) == 0
    assert compiled(responses=ResponsePermission()).needs_delivery_check(b"a", None) == (
        CHECK_REPLIES
    )


def test_permissions_delivery_denied() -> None:
    perms = compiled(sub_deny=("w.secret", "w.q q1", "w.g g.*"))
    for _ in range(2):  # fresh, then cached
        assert perms.delivery_denied(b"w.secret", None)
        assert perms.delivery_denied(b"w.secret", b"q9")
        assert not perms.delivery_denied(b"w.q", None)
        assert perms.delivery_denied(b"w.q", b"q1")
        assert not perms.delivery_denied(b"w.q", b"q2")
        assert perms.delivery_denied(b"w.g", b"g.x")
        assert not perms.delivery_denied(b"w.a", None)


# -- responses -------------------------------------------------------------------------------


def test_permissions_response_grants_count() -> None:
    perms = compiled(pub_allow=(), responses=ResponsePermission(max_msgs=2, expires=60.0))
    grants = ResponseGrants(ResponsePermission(max_msgs=2, expires=60.0), now=0.0)
    assert not grants.use(b"r1", 1.0)
    grants.on_delivery(perms, b"r1", 1.0)
    assert grants.use(b"r1", 2.0)
    assert grants.use(b"r1", 2.0)
    assert not grants.use(b"r1", 2.0)  # the third is refused and the grant gone
    assert not grants.use(b"r1", 2.0)
    grants.on_delivery(perms, b"r1", 3.0)  # a new request with that reply
    assert grants.use(b"r1", 3.0)


def test_permissions_response_redelivery_uses_up_a_live_grant() -> None:
    # nats-server 2.15.1: a second request with the same reply while the grant is
    # live counts as a use instead of renewing it (captured: max 2, two requests,
    # three replies -> one goes through).
    perms = compiled(pub_allow=(), responses=ResponsePermission(max_msgs=2))
    grants = ResponseGrants(ResponsePermission(max_msgs=2), now=0.0)
    grants.on_delivery(perms, b"r1", 0.0)
    grants.on_delivery(perms, b"r1", 0.0)
    assert grants.use(b"r1", 0.0)
    assert not grants.use(b"r1", 0.0)


def test_permissions_response_grants_expire() -> None:
    limits = ResponsePermission(max_msgs=-1, expires=5.0)
    perms = compiled(pub_allow=(), responses=limits)
    grants = ResponseGrants(limits, now=0.0)
    grants.on_delivery(perms, b"r1", 0.0)
    for _ in range(10):
        assert grants.use(b"r1", 4.0)  # no count limit
    assert not grants.use(b"r1", 5.5)
    assert b"r1" not in grants.grants


def test_permissions_response_not_granted_when_statically_allowed() -> None:
    limits = ResponsePermission()
    perms = compiled(pub_allow=("_INBOX.>",), responses=limits)
    grants = ResponseGrants(limits, now=0.0)
    grants.on_delivery(perms, b"_INBOX.x", 0.0)
    assert grants.grants == {}


def test_permissions_response_grants_are_pruned() -> None:
    limits = ResponsePermission(max_msgs=1, expires=10.0)
    perms = compiled(pub_allow=(), responses=limits)
    grants = ResponseGrants(limits, now=0.0)
    grants.on_delivery(perms, b"used", 0.0)
    grants.on_delivery(perms, b"old", 0.0)
    assert grants.use(b"used", 0.1)
    grants.on_delivery(perms, b"new", 11.0)  # more than a second since the last prune
    assert set(grants.grants) == {b"new"}


# -- per user ------------------------------------------------------------------------------


def test_permissions_by_user_with_defaults() -> None:
    default = Permissions(publish=SubjectPermission(allow=("d",)))
    own = Permissions(publish=SubjectPermission(allow=("o",)))
    key = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4"
    opts = Options(
        authorization=Authorization(
            users=(User(user="a", password="x"), User(user="b", password="y", permissions=own),
                   User(nkey=key)),
            default_permissions=default,
        )
    )  # fmt: skip
    table = users_permissions(opts)
    assert table["a"] is table[key]  # one compiled object per distinct permissions
    assert table["a"].publish_allowed(b"d") and not table["a"].publish_allowed(b"o")
    assert table["b"].publish_allowed(b"o") and not table["b"].publish_allowed(b"d")
    assert users_permissions(Options()) == {}
    no_defaults = Options(authorization=Authorization(users=(User(user="a", password="x"),)))
    assert users_permissions(no_defaults) == {}
