"""`shardbroker jwt`: operator mode without nsc. Make an operator (with a system account),
accounts with limits, exports and imports, users with permissions and their `.creds`
files, the server configuration that trusts them; push an account JWT to a running
server; show what a JWT or `.creds` file holds.

The commands are thin: the store layout and the writing are in jwtstore, the claims in
jwtclaims, the configuration text in jwtconfig, the push request in natsrequest and
`show` in jwtshow. Those are imported inside each command, so that `shardbroker --help`
stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from shardbroker.tools.jwtstore import Operator

DIR_ENV = "SHARDBROKER_JWT_DIR"
PUSH_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE"
ACCOUNT_PUSH_SUBJECT = "$SYS.REQ.ACCOUNT.{}.CLAIMS.UPDATE"
PUSH_USER_LIFETIME = 120  # seconds a push's temporary system user is valid (as nsc's)

jwt_app = typer.Typer(
    no_args_is_help=True,
    help="""Operator mode without nsc: keys, JWTs, .creds files and server config.

A store directory (--dir, or $SHARDBROKER_JWT_DIR) holds one directory per operator:

  OPERATOR/operator.jwt, operator.nk, operator-signing.nk
  OPERATOR/accounts/ACCOUNT/account.jwt, account.nk, account-signing.nk
  OPERATOR/accounts/ACCOUNT/users/USER.creds

*.nk and *.creds hold seeds (private keys): they are written 0600. A signing key
(*-signing.nk, optional) signs in place of the identity key: the operator's the
accounts, an account's its users.

A session:

  shardbroker jwt operator acme --dir keys --system-account
  shardbroker jwt account app --dir keys --conn 100 --payload 1M
  shardbroker jwt user alice --dir keys --account app --pub-allow 'orders.>'
  shardbroker jwt config --dir keys --out operator.conf
  shardbroker serve -c operator.conf     (or: nats-server -c operator.conf)

Clients connect with keys/acme/accounts/app/users/alice.creds.""",
    context_settings={"help_option_names": ["-h", "--help"]},
)

_DIR_HELP = f"The store directory (default ${DIR_ENV})."
_OPERATOR_HELP = "The operator in the store (needed only when it holds several)."


@contextmanager
def _reported(command: str) -> Iterator[None]:
    """Every refusal of the tools as one line on stderr and exit status 1."""
    from shardbroker.config.jwt import JWTError
    from shardbroker.tools.jwtclaims import ClaimsError
    from shardbroker.tools.jwtconfig import ConfigTextError
    from shardbroker.tools.jwtshow import ShowError
    from shardbroker.tools.jwtstore import StoreError
    from shardbroker.tools.natsrequest import RequestError

    try:
        yield
    except (StoreError, ClaimsError, ConfigTextError, RequestError, ShowError, JWTError) as exc:
        typer.echo(f"shardbroker jwt {command}: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"shardbroker jwt {command}: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None


def _is_file(argument: str) -> bool:
    """Whether an argument that may be a file name or a token names a file (a token is
    too long for a file name on most systems, which is an OSError)."""
    try:
        return Path(argument).is_file()
    except OSError:
        return False


def _operator(store_dir: str, operator: str | None) -> Operator:
    from shardbroker.tools.jwtstore import Store

    return Store(store_dir).operator(operator)


@jwt_app.command()
def operator(
    name: str = typer.Argument(
        ..., metavar="NAME", help="The operator's name (its directory in the store)."
    ),
    store_dir: str = typer.Option(..., "--dir", envvar=DIR_ENV, help=_DIR_HELP),
    signing_key: bool = typer.Option(
        False, "--signing-key", help="Also make an operator signing key; it signs the accounts."
    ),
    system_account: bool = typer.Option(
        False,
        "--system-account",
        help="Also make the system account SYS (named in the operator JWT's system_account) "
        "and its user sys.",
    ),
) -> None:
    """Create an operator: its seed and self-signed JWT."""
    from shardbroker.tools.jwtstore import SYSTEM_USER, Store

    with _reported("operator"):
        created = Store(store_dir).create_operator(
            name, signing_key=signing_key, system_account=system_account
        )
        typer.echo(f'operator "{name}" {created.key}')
        typer.echo(f"  jwt   {created.path / 'operator.jwt'}")
        if created.signing_seed:
            typer.echo(f"  signing key {created.claims.nats['signing_keys'][0]}")
        system = created.system_account()
        if system is not None:
            typer.echo(f'system account "{system.name}" {system.key}')
            typer.echo(f"  system user creds  {system.creds_path(SYSTEM_USER)}")


@jwt_app.command()
def account(
    name: str = typer.Argument(
        ..., metavar="NAME", help="The account's name (its directory in the store)."
    ),
    store_dir: str = typer.Option(..., "--dir", envvar=DIR_ENV, help=_DIR_HELP),
    operator_name: str | None = typer.Option(None, "--operator", help=_OPERATOR_HELP),
    conn: str = typer.Option("-1", "--conn", help="Maximum client connections (-1: unlimited)."),
    subs: str = typer.Option("-1", "--subs", help="Maximum subscriptions (-1: unlimited)."),
    payload: str = typer.Option(
        "-1", "--payload", help="Maximum message payload in bytes; units K, M, G (-1: unlimited)."
    ),
    data: str = typer.Option("-1", "--data", help="Maximum data in bytes (-1: unlimited)."),
    leaf: str = typer.Option("-1", "--leaf", help="Maximum leaf node connections (-1: unlimited)."),
    js_mem: str = typer.Option(
        "0",
        "--js-mem",
        help="JetStream memory storage in bytes (-1: unlimited). JetStream is on for the "
        "account only when this or --js-disk is not 0.",
    ),
    js_disk: str = typer.Option(
        "0", "--js-disk", help="JetStream disk storage in bytes (-1: unlimited)."
    ),
    js_streams: str = typer.Option("-1", "--js-streams", help="JetStream: maximum streams."),
    js_consumers: str = typer.Option("-1", "--js-consumers", help="JetStream: maximum consumers."),
    disallow_bearer: bool = typer.Option(
        False, "--disallow-bearer", help="Refuse users whose JWT is a bearer token."
    ),
    export: Annotated[
        list[str] | None,
        typer.Option("--export", help="Export this subject as a stream (repeatable)."),
    ] = None,
    export_service: Annotated[
        list[str] | None,
        typer.Option("--export-service", help="Export this subject as a service (repeatable)."),
    ] = None,
    import_: Annotated[
        list[str] | None,
        typer.Option(
            "--import",
            help="Import a stream: ACCOUNT:SUBJECT[:LOCAL_SUBJECT], ACCOUNT a name in the store "
            "or an account public key (repeatable).",
        ),
    ] = None,
    import_service: Annotated[
        list[str] | None,
        typer.Option(
            "--import-service", help="Import a service, in the form of --import (repeatable)."
        ),
    ] = None,
    signing_key: bool = typer.Option(
        False, "--signing-key", help="Also make an account signing key; it signs the users."
    ),
    update: bool = typer.Option(
        False,
        "--update",
        help="Re-issue an existing account's JWT from these options (its keys stay); push "
        "it or rewrite the config afterwards.",
    ),
) -> None:
    """Create an account: its keys and JWT, signed by the operator.

    Limits are unlimited (-1) unless given, as nsc writes them.
    JetStream is off unless --js-mem or --js-disk is given.
    """
    from shardbroker.tools import jwtclaims
    from shardbroker.tools.jwtstore import save_account

    with _reported("account"):
        owner = _operator(store_dir, operator_name)

        def account_key(account_name: str) -> str:
            return owner.account(account_name).key

        limit = jwtclaims.parse_limit
        fields: dict[str, Any] = {
            "limits": jwtclaims.account_limits(
                conn=limit(conn, "--conn"), subs=limit(subs, "--subs"),
                payload=limit(payload, "--payload"), data=limit(data, "--data"),
                leaf=limit(leaf, "--leaf"), disallow_bearer=disallow_bearer,
                js_memory=limit(js_mem, "--js-mem"), js_disk=limit(js_disk, "--js-disk"),
                js_streams=limit(js_streams, "--js-streams"),
                js_consumers=limit(js_consumers, "--js-consumers"),
            ),
        }  # fmt: skip
        exports = [jwtclaims.export_claim(s, False) for s in export or ()]
        exports += [jwtclaims.export_claim(s, True) for s in export_service or ()]
        imports = [jwtclaims.import_claim(s, False, account_key) for s in import_ or ()]
        imports += [jwtclaims.import_claim(s, True, account_key) for s in import_service or ()]
        if exports:
            fields["exports"] = exports
        if imports:
            fields["imports"] = imports
        saved = save_account(owner, name, fields, signing_key=signing_key, update=update)
        typer.echo(f'account "{name}" {saved.key} ({"updated" if update else "created"})')
        typer.echo(f"  jwt   {saved.path / 'account.jwt'}")
        if saved.signing_seed:
            typer.echo(f"  signing key {saved.claims.nats['signing_keys'][0]}")


@jwt_app.command()
def user(
    name: str = typer.Argument(..., metavar="NAME", help="The user's name."),
    account_name: str = typer.Option(..., "--account", help="The account the user belongs to."),
    store_dir: str = typer.Option(..., "--dir", envvar=DIR_ENV, help=_DIR_HELP),
    operator_name: str | None = typer.Option(None, "--operator", help=_OPERATOR_HELP),
    pub_allow: Annotated[
        list[str] | None,
        typer.Option("--pub-allow", help="May publish to this subject (repeatable)."),
    ] = None,
    pub_deny: Annotated[
        list[str] | None,
        typer.Option("--pub-deny", help="May not publish to this subject (repeatable)."),
    ] = None,
    sub_allow: Annotated[
        list[str] | None,
        typer.Option(
            "--sub-allow",
            help="May subscribe to this subject; 'SUBJECT QUEUE' for one queue group (repeatable).",
        ),
    ] = None,
    sub_deny: Annotated[
        list[str] | None,
        typer.Option("--sub-deny", help="May not subscribe to this subject (repeatable)."),
    ] = None,
    subs: str = typer.Option("-1", "--subs", help="Maximum subscriptions (-1: unlimited)."),
    payload: str = typer.Option(
        "-1", "--payload", help="Maximum message payload in bytes (-1: unlimited)."
    ),
    data: str = typer.Option("-1", "--data", help="Maximum data in bytes (-1: unlimited)."),
    expires: str = typer.Option(
        "",
        "--expires",
        help="Expire after this long (90s, 12h, 7d) or at this date (2027-01-31, UTC); "
        "default never.",
    ),
    bearer: bool = typer.Option(
        False, "--bearer", help="A bearer token: the server asks for no nonce signature."
    ),
    creds: str = typer.Option(
        "", "--creds", help="Also write the .creds file here (0600), e.g. for the client."
    ),
    update: bool = typer.Option(
        False, "--update", help="Re-issue an existing user's JWT from these options (same key)."
    ),
) -> None:
    """Create a user of an account: its JWT and its .creds file.

    The JWT is signed by the account (by its signing key if it has one).
    The .creds file holds the JWT and the user's seed, in the format that
    nats.go, nats.py and the nats CLI read. Without permissions the user
    may do what the account allows.
    """
    import time

    from shardbroker.tools import jwtclaims
    from shardbroker.tools.jwtstore import save_user, write_secret

    with _reported("user"):
        owner = _operator(store_dir, operator_name).account(account_name)
        limit = jwtclaims.parse_limit
        fields = jwtclaims.user_fields(
            pub_allow=pub_allow or (), pub_deny=pub_deny or (),
            sub_allow=sub_allow or (), sub_deny=sub_deny or (),
            subs=limit(subs, "--subs"), payload=limit(payload, "--payload"),
            data=limit(data, "--data"), bearer=bearer,
        )  # fmt: skip
        expiry = jwtclaims.parse_expiry(expires, time.time()) if expires else 0
        key, text = save_user(owner, name, fields, expires=expiry, update=update)
        typer.echo(f'user "{name}" {key} ({"updated" if update else "created"})')
        typer.echo(f"  creds {owner.creds_path(name)}")
        if creds:
            write_secret(Path(creds), text)
            typer.echo(f"  creds {creds}")


@jwt_app.command()
def config(
    store_dir: str = typer.Option(..., "--dir", envvar=DIR_ENV, help=_DIR_HELP),
    operator_name: str | None = typer.Option(None, "--operator", help=_OPERATOR_HELP),
    resolver: str = typer.Option(
        "memory",
        "--resolver",
        help="memory: every account preloaded (resolver: MEMORY). full: the nats-based "
        "resolver keeping pushed accounts in --resolver-dir (needs the system account).",
    ),
    resolver_dir: str = typer.Option(
        "",
        "--resolver-dir",
        help="full: where the server keeps the account JWTs (default OPERATOR/resolver in "
        "the store).",
    ),
    out: str = typer.Option("", "--out", "-o", help="Write the configuration here, not stdout."),
) -> None:
    """Write the server configuration that trusts the operator.

    It holds the operator JWT, the system account and the account resolver.
    nats-server and shardbroker both start with it (-c FILE), alone or
    included from a larger file.
    """
    from shardbroker.tools.jwtconfig import server_config
    from shardbroker.tools.jwtstore import PUBLIC_MODE, write_file

    with _reported("config"):
        text = server_config(
            _operator(store_dir, operator_name),
            resolver.lower(),
            Path(resolver_dir) if resolver_dir else None,
        )
        if out:
            write_file(Path(out), text, PUBLIC_MODE)
            typer.echo(f"configuration written to {out}")
        else:
            sys.stdout.write(text)


def _account_token(account_arg: str, store_dir: str | None, operator_name: str | None) -> str:
    """The account JWT to push: a file holding one, or an account of the store."""
    from shardbroker.config import jwt
    from shardbroker.tools.jwtstore import StoreError

    if _is_file(account_arg):
        lines = Path(account_arg).read_text(encoding="utf-8").splitlines()
        token = next((line.strip() for line in lines if line.strip().startswith("eyJ")), "")
        jwt.decode(token, "account")
        return token
    if not store_dir:
        raise StoreError(f"{account_arg}: no such file, and no --dir to find an account in")
    return _operator(store_dir, operator_name).account(account_arg).token


def _push_credentials(
    creds: str, store_dir: str | None, operator_name: str | None, subject: str
) -> tuple[str, str]:
    from shardbroker.config import jwt
    from shardbroker.tools.jwtstore import StoreError, temporary_system_user

    if creds:
        user_jwt, seed = jwt.parse_creds(Path(creds).read_text(encoding="utf-8"))
        if jwt.seed_role(seed) != "user":
            raise StoreError(f"{creds}: the seed is not a valid user seed")
        if jwt.decode(user_jwt, "user").sub != jwt.public_key(seed):
            raise StoreError(f"{creds}: the seed does not belong to the user JWT")
        return user_jwt, seed
    if not store_dir:
        raise StoreError("give a system user's --creds, or --dir to make a temporary one")
    return temporary_system_user(_operator(store_dir, operator_name), [subject], PUSH_USER_LIFETIME)


@jwt_app.command()
def push(
    account_arg: str = typer.Argument(
        ..., metavar="ACCOUNT", help="An account of the store, or a file holding an account JWT."
    ),
    server: str = typer.Option(
        "nats://127.0.0.1:4222", "--server", "-s", help="The server: nats://host:port."
    ),
    creds: str = typer.Option(
        "",
        "--creds",
        help="A system account user's .creds file. Default: a temporary user (valid 2 "
        "minutes) signed with the system account's key from the store.",
    ),
    store_dir: str | None = typer.Option(None, "--dir", envvar=DIR_ENV, help=_DIR_HELP),
    operator_name: str | None = typer.Option(None, "--operator", help=_OPERATOR_HELP),
    per_account_subject: bool = typer.Option(
        False,
        "--per-account-subject",
        help="Send to $SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE, which a MEMORY resolver answers "
        "too (it keeps the update in memory only), instead of $SYS.REQ.CLAIMS.UPDATE.",
    ),
    timeout: float = typer.Option(2.0, "--timeout", help="Seconds to wait for the replies."),
    servers: int = typer.Option(
        1,
        "--servers",
        help="The servers expected to reply: stop waiting once this many have; exit status "
        "1 if fewer do.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print each reply's JSON."),
) -> None:
    """Send an account JWT to a running server (nsc push).

    It goes to $SYS.REQ.CLAIMS.UPDATE as a system account user; the server
    stores and applies it at once. Prints each server's reply; exit status 1
    when none replied or one refused.
    """
    from shardbroker.config import jwt
    from shardbroker.tools.natsrequest import NO_RESPONDERS, request

    with _reported("push"):
        token = _account_token(account_arg, store_dir, operator_name)
        claims = jwt.decode(token, "account")
        subject = ACCOUNT_PUSH_SUBJECT.format(claims.sub) if per_account_subject else PUSH_SUBJECT
        user_jwt, seed = _push_credentials(creds, store_dir, operator_name, subject)
        replies = request(
            server, user_jwt, seed, subject, token.encode(),
            timeout=timeout, max_replies=max(servers, 1),
        )  # fmt: skip
        name = claims.name or claims.sub
        failed = len(replies) < servers
        if not replies:
            typer.echo(f"shardbroker jwt push: no reply on {subject} within {timeout}s", err=True)
        elif failed:
            typer.echo(
                f"shardbroker jwt push: {len(replies)} of {servers} servers replied within "
                f"{timeout}s",
                err=True,
            )
        for reply in replies:
            if reply.status == NO_RESPONDERS:
                hint = (
                    "" if per_account_subject
                    else " (a MEMORY resolver listens on --per-account-subject)"
                )  # fmt: skip
                typer.echo(f"shardbroker jwt push: no responders on {subject}{hint}", err=True)
                failed = True
                continue
            if json_output:
                typer.echo(reply.payload.decode("utf-8", "replace"))
            ok, line = _push_outcome(name, reply.payload)
            failed = failed or not ok
            if not json_output:
                typer.echo(line, err=not ok)
        if failed:
            raise typer.Exit(1)


def _push_outcome(name: str, payload: bytes) -> tuple[bool, str]:
    """(accepted, a line saying so) for one server's reply to a push."""
    try:
        body = json.loads(payload)
    except ValueError:
        return False, f"unexpected reply: {payload[:200]!r}"
    if not isinstance(body, dict):
        return False, f"unexpected reply: {payload[:200]!r}"
    info = body.get("server")
    server = info.get("name", "?") if isinstance(info, dict) else "?"
    error = body.get("error")
    if error:
        description = error.get("description", error) if isinstance(error, dict) else error
        return False, f'server {server} refused "{name}": {description}'
    data = body.get("data")
    message = data.get("message", data) if isinstance(data, dict) else data
    return True, f'pushed "{name}" to server {server}: {message}'


@jwt_app.command()
def show(
    source: str = typer.Argument(
        ..., metavar="FILE|TOKEN", help="A JWT, .creds or seed file, or a JWT itself."
    ),
    show_seed: bool = typer.Option(
        False, "--show-seed", help="Print the seed too (it is a secret: hidden by default)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Decode and check a JWT or .creds file.

    Prints the header and claims, whether the signature verifies, the
    expiry, and whether a creds file's seed belongs to its JWT (the seed
    itself only with --show-seed). Exit status 1 when a check fails.
    """
    from shardbroker.tools.jwtshow import describe, render

    with _reported("show"):
        text = Path(source).read_text(encoding="utf-8") if _is_file(source) else source
        out = describe(text, show_seed=show_seed)
        if json_output:
            typer.echo(json.dumps(out.as_json(), indent=2))
        else:
            typer.echo(render(out))
        if not out.ok:
            raise typer.Exit(1)
