"""config.reload.diff: which changes a running broker can take, by kind; and the
reload's path from a config file (OptionsSource, flags winning) to Options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, get_args, get_type_hints

import msgspec
import pytest

from shardbroker.config.merge import OptionsSource, build_options
from shardbroker.config.options import (
    Authorization,
    ChangeKind,
    Options,
    Permissions,
    Setting,
    SubjectPermission,
    TLSConfig,
    User,
    declarations,
    ring_size,
)
from shardbroker.config.parse import ConfigError
from shardbroker.config.reload import (
    RELOADABLE,
    Change,
    ReloadError,
    decode_options_arg,
    diff,
    encode_options_arg,
    kinds,
)


def users(*names: str, **perms: Permissions) -> Authorization:
    return Authorization(
        users=tuple(User(user=n, password="p", permissions=perms.get(n)) for n in names)
    )


def test_reload_diff_nothing_changed() -> None:
    assert diff(Options(), Options()) == []


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [("debug", True, "logging"), ("trace", True, "logging"), ("logtime", False, "logging"),
     ("log_file", "/tmp/x.log", "logging"), ("pid_file", "/tmp/x.pid", "files"),
     ("ports_file_dir", "/tmp", "files"), ("max_payload", 1000, "limits"),
     ("max_control_line", 1024, "limits"), ("max_connections", 10, "limits"),
     ("ping_interval", 5.0, "limits"), ("ping_max", 5, "limits"),
     ("write_deadline", 3.0, "limits"), ("authorization", users("a"), "auth"),
     ("tls", TLSConfig(cert_file="c", key_file="k"), "tls")],
)  # fmt: skip
def test_reload_diff_reloadable_changes_by_kind(field: str, value: object, kind: str) -> None:
    old = Options()
    new = msgspec.structs.replace(old, **{field: value})
    assert diff(old, new) == [Change(field, kind, getattr(old, field), value)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "go_name"),
    [("host", "127.0.0.2", "Host"), ("port", 4333, "Port"), ("server_name", "s", "ServerName"),
     ("max_pending", 1 << 20, "MaxPending"), ("max_subscriptions", 5, "MaxSubs"),
     ("workers", 3, "Workers"), ("ring_size", 1 << 24, "RingSize"),
     ("jetstream", True, "JetStream"), ("store_dir", "/tmp/js", "StoreDir"),
     ("jetstream_domain", "hub", "JetStreamDomain"), ("sync_interval", 1.0, "SyncInterval"),
     ("sync_always", True, "SyncAlways"), ("http_port", 8222, "HTTPPort"),
     ("lame_duck_duration", 60.0, "LameDuckDuration")],
)  # fmt: skip
def test_reload_diff_rejects_what_cannot_change(field: str, value: object, go_name: str) -> None:
    old = Options()
    new = msgspec.structs.replace(old, **{field: value})
    with pytest.raises(ReloadError, match=f"^config reload not supported for {go_name}: old="):
        diff(old, new)


def test_reload_diff_one_bad_change_rejects_the_whole_reload() -> None:
    old = Options()
    new = msgspec.structs.replace(old, debug=True, port=4333, authorization=users("a"))
    with pytest.raises(ReloadError, match="Port: old=4222, new=4333"):
        diff(old, new)


def test_reload_diff_message_uses_go_values() -> None:
    with pytest.raises(ReloadError, match="JetStream: old=false, new=true"):
        diff(Options(), Options(jetstream=True))


def test_reload_diff_every_field_is_classified() -> None:
    """Every Options field declares in its Setting whether a reload may change it, and
    how it is named when one may not; RELOADABLE is exactly the ones that declare a kind.
    Read from the struct itself, not from the derived tables."""
    hints = get_type_hints(Options, include_extras=True)
    kinds_allowed = set(get_args(ChangeKind))
    for field in msgspec.structs.fields(Options):
        settings = [
            m for m in getattr(hints[field.name], "__metadata__", ()) if isinstance(m, Setting)
        ]
        assert len(settings) == 1, f"Options.{field.name} declares no Setting"
        (setting,) = settings
        assert setting.reload is None or setting.reload in kinds_allowed, field.name
        assert RELOADABLE.get(field.name) == setting.reload, field.name
        assert setting.go and setting.go[0].isupper(), field.name
    assert set(RELOADABLE) <= set(Options.__struct_fields__)


class _Undeclared(msgspec.Struct, frozen=True, kw_only=True):
    declared: Annotated[int, Setting(go="Declared", help="has its Setting")] = 0
    bare: int = 0


def test_reload_a_field_without_setting_is_refused() -> None:
    """Adding an option without its declaration fails at import of config.options."""
    with pytest.raises(TypeError, match=r"_Undeclared\.bare has no Setting"):
        declarations(_Undeclared)
    assert [d.name for d in declarations(Options)] == list(Options.__struct_fields__)


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [(1000, 2000, True), (1000, -1, True), (-1, 1000, False), (2000, 1000, False)],
)
def test_reload_diff_jetstream_limits_only_grow(old: int, new: int, ok: bool) -> None:
    for field in ("max_memory_store", "max_file_store"):
        before = Options(jetstream=True, **{field: old})  # type: ignore[arg-type]
        after = msgspec.structs.replace(before, **{field: new})
        if ok:
            assert kinds(diff(before, after)) == {"jetstream"}
        else:
            with pytest.raises(ReloadError, match="may only increase"):
                diff(before, after)


def test_reload_diff_no_auth_user_only_removed_with_its_user() -> None:
    with_a = Options(authorization=users("a", "b"), no_auth_user="a")
    # Added, or switched to another user: refused.
    with pytest.raises(ReloadError, match="NoAuthUser"):
        diff(Options(authorization=users("a", "b")), with_a)
    with pytest.raises(ReloadError, match="NoAuthUser"):
        diff(with_a, msgspec.structs.replace(with_a, no_auth_user="b"))
    # Removed while the user stays: refused; removed with the user: fine.
    with pytest.raises(ReloadError, match="NoAuthUser"):
        diff(with_a, msgspec.structs.replace(with_a, no_auth_user=""))
    new = Options(authorization=users("b"))
    assert kinds(diff(with_a, new)) == {"auth"}


def test_reload_diff_permissions_are_an_auth_change() -> None:
    deny = Permissions(subscribe=SubjectPermission(deny=("secret",)))
    old = Options(authorization=users("a"))
    new = Options(authorization=users("a", a=deny))
    assert [c.kind for c in diff(old, new)] == ["auth"]


def test_reload_diff_max_payload_must_fit_the_rings() -> None:
    old = Options()
    rings = ring_size(old)
    assert diff(old, Options(max_payload=2 << 20), ring_size=rings)
    with pytest.raises(ReloadError, match=r"MaxPayload: .*shared-memory rings"):
        diff(old, Options(max_payload=32 << 20, max_pending=64 << 20), ring_size=rings)


def test_reload_change_describes_itself_as_nats_server() -> None:
    assert Change("debug", "logging", False, True).describe() == "debug = true"
    assert Change("ping_interval", "limits", 120.0, 5.0).describe() == "ping_interval = 5s"
    assert Change("authorization", "auth", None, users("a")).describe() == "authorization"


def test_reload_options_travel_as_one_frame_argument() -> None:
    opts = Options(authorization=users("a", "b"), debug=True)
    arg = encode_options_arg(opts)
    assert b" " not in arg and b"\r\n" not in arg
    assert decode_options_arg(arg) == opts


# -- from the file ---------------------------------------------------------------------


def test_reload_build_options_flags_win_over_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "b.conf"
    conf.write_text("port: 4333\ndebug: true\nmax_payload: 1000\n")
    source = OptionsSource(config=str(conf), flags={"port": 4555, "max_payload": 2000})
    opts = build_options(source)
    assert (opts.port, opts.debug, opts.max_payload) == (4555, True, 2000)
    # The file changes; the flags still win.
    conf.write_text("port: 4334\ndebug: false\nmax_payload: 3000\n")
    opts = build_options(source)
    assert (opts.port, opts.debug, opts.max_payload) == (4555, False, 2000)


def test_reload_build_options_auth_flags_win(tmp_path: Path) -> None:
    conf = tmp_path / "b.conf"
    conf.write_text("authorization { token: fromfile }\n")
    opts = build_options(OptionsSource(config=str(conf), auth_flags=("fromflag", None, None)))
    assert opts.authorization is not None and opts.authorization.token == "fromflag"


def test_reload_build_options_bad_file_names_file_line_and_key(tmp_path: Path) -> None:
    conf = tmp_path / "b.conf"
    conf.write_text("port: 4333\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        build_options(OptionsSource(config=str(conf)))
    assert str(info.value).startswith(f"{conf}:2:1: ") and 'unknown field "bogus"' in str(
        info.value
    )
