"""The `shardbroker` command. Flags of `serve` follow nats-server's where they exist.

The only place that exits the process: a HaltBroker raised anywhere below ends up
here as a clear message and its exit status.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from shardbroker import __version__, const, log
from shardbroker.config.merge import OptionsSource, build_options
from shardbroker.config.options import DECLARATIONS, Options, OptionsError
from shardbroker.config.parse import ConfigError
from shardbroker.errors import HaltBroker
from shardbroker.tools.jwt_cli import jwt_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="shardbroker: a NATS-compatible message broker that uses every core.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.add_typer(jwt_app, name="jwt")

_Command = TypeVar("_Command", bound=Callable[..., None])
_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _setting_options() -> list[inspect.Parameter]:
    """serve's options for the Options fields that declare flags, in field order: flags,
    help and default from the declaration (config/options.py)."""
    params = []
    for decl in DECLARATIONS:
        setting = decl.setting
        if not setting.flags:
            continue
        if setting.from_flag is None:
            default, annotation = decl.default, decl.type
        else:
            default, annotation = setting.flag_default, str
        option = typer.Option(default, *setting.flags, help=setting.help)
        params.append(inspect.Parameter(decl.name, _KEYWORD, default=option, annotation=annotation))
    return params


def _with_setting_options(after: str) -> Callable[[_Command], _Command]:
    """Give a command taking `**settings` the options of `_setting_options`, listed after
    its parameter `after`; typer reads the signature, and passes them by name."""

    def decorate(command: _Command) -> _Command:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        at = [p.name for p in own].index(after) + 1
        params = [*own[:at], *_setting_options(), *own[at:]]
        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return command

    return decorate


def _on_command_line(ctx: typer.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name == "COMMANDLINE"


def _given_flags(ctx: typer.Context) -> dict[str, object]:
    """Options fields set on the command line (not defaults): they win over the file.
    Raises OptionsError for a flag's text that its declaration refuses."""
    given: dict[str, object] = {}
    for decl in DECLARATIONS:
        if decl.setting.flags and _on_command_line(ctx, decl.name):
            value = ctx.params[decl.name]
            from_flag = decl.setting.from_flag
            given[decl.name] = value if from_flag is None else from_flag(value)
    return given


def check_tls(opts: Options) -> None:
    """Load the TLS certificates once here, so that a broker never starts (and a config
    check never passes) with files the workers could not use. Raises OptionsError."""
    from shardbroker.security.tls import TLSConfigError, server_context

    ws_tls = opts.websocket.tls if opts.websocket is not None else None
    for tls, where in ((opts.tls, ""), (ws_tls, "websocket ")):
        if tls is None:
            continue
        try:
            server_context(tls)
        except TLSConfigError as exc:
            raise OptionsError(where + str(exc)) from None


def _options(source: OptionsSource) -> Options:
    """defaults < config file < flags, validated; exits with a one-line error."""
    try:
        opts = build_options(source)
        check_tls(opts)
        return opts
    except ConfigError as exc:
        typer.echo(f"shardbroker: {exc}", err=True)
        raise typer.Exit(const.EXIT_BOOT_FAILURE) from None
    except (OptionsError, ValueError) as exc:
        where = f"{source.config}: " if source.config else ""
        typer.echo(f"shardbroker: {where}{exc}", err=True)
        raise typer.Exit(const.EXIT_BOOT_FAILURE) from None


def _print_version(value: bool) -> None:
    """`serve --version` / `-v`: what `nats-server --version` prints (launchers of
    client test suites probe it to learn the protocol level they talk to)."""
    if value:
        typer.echo(f"nats-server: v{const.SERVER_VERSION}")
        raise typer.Exit(0)


@app.command()
@_with_setting_options(after="signal_command")
def serve(
    ctx: typer.Context,
    config: str = typer.Option("", "-c", "--config", help="nats-server style configuration file."),
    check_only: bool = typer.Option(
        False, "-t", help="Check the configuration (with -c) and exit."
    ),
    signal_command: str = typer.Option(
        "",
        "-sl",
        "--signal",
        help="Signal a running broker and exit: reload, quit, term, reopen, ldm or stop, "
        "optionally =PID or =PIDFILE (else found by -P, then -p, then port 4222).",
    ),
    auth: str | None = typer.Option(
        None, "--auth", help="Authorization token required for connections."
    ),
    user: str | None = typer.Option(None, "--user", help="User required for connections."),
    password: str | None = typer.Option(None, "--pass", help="Password required for connections."),
    tls: bool = typer.Option(False, "--tls", help="Enable TLS, do not verify clients."),
    tlscert: str | None = typer.Option(None, "--tlscert", help="Server certificate file."),
    tlskey: str | None = typer.Option(None, "--tlskey", help="Private key for server certificate."),
    tlscacert: str | None = typer.Option(
        None, "--tlscacert", help="Client certificate CA for verification."
    ),
    tlsverify: bool = typer.Option(
        False, "--tlsverify", help="Enable TLS with client verification."
    ),
    show_version: bool = typer.Option(
        False,
        "-v",
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print the version (as nats-server does) and exit.",
    ),
    **settings: Any,
) -> None:
    """Start the broker: a supervisor and one worker per core on one port."""
    # `settings`: the options of the Options fields (_with_setting_options), by field.
    if signal_command:
        port = settings["port"] if _on_command_line(ctx, "port") else None
        _signal_broker(signal_command, settings["pid_file"], port)
        return
    # Imported here so `shardbroker --help` stays fast and light.
    from shardbroker.supervisor.arbiter import Arbiter

    try:
        flags = _given_flags(ctx)
    except OptionsError as exc:
        typer.echo(f"shardbroker: {exc}", err=True)
        raise typer.Exit(const.EXIT_BOOT_FAILURE) from None
    source = OptionsSource(
        config=config,
        flags=flags,
        auth_flags=(auth, user, password),
        tls_flags=(tls, tlscert, tlskey, tlscacert, tlsverify),
    )
    opts = _options(source)
    if check_only:
        if not config:
            typer.echo("shardbroker: -t needs a configuration file (-c FILE)", err=True)
            raise typer.Exit(const.EXIT_BOOT_FAILURE)
        typer.echo(f"shardbroker: configuration file {config} is valid")
        raise typer.Exit(0)
    log.setup(opts.log_file, opts.debug, opts.trace, opts.logtime)
    if opts.authorization is not None:
        from shardbroker.security.auth import Authenticator

        if Authenticator(opts).plaintext_passwords():
            logging.getLogger("shardbroker").warning(
                "Plaintext passwords detected, use nkeys or bcrypt"
            )
    try:
        code = Arbiter(opts, source).run()
    except HaltBroker as halt:
        typer.echo(f"shardbroker: {halt.reason}", err=True)
        raise typer.Exit(halt.exit_status) from None
    raise typer.Exit(code)


def flag_table() -> str:
    """The README's table of serve's options, from the command itself (and so from the
    Options declarations); tests/unit/config/test_declarations.py keeps the two equal."""
    import typer.main

    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    rows = ["| flag | meaning |", "|---|---|"]
    for param in command.params:
        names = [*param.opts, *param.secondary_opts]
        if names == ["-h", "--help"] or not getattr(param, "help", None):
            continue
        meaning = param.help
        if not getattr(param, "is_flag", False) and param.default not in (None, ""):
            meaning += f" Default `{param.default}`."
        rows.append(f"| {', '.join(f'`{name}`' for name in names)} | {meaning} |")
    return "\n".join(rows) + "\n"


def _signal_broker(command_arg: str, pid_file: str, port: int | None, who: str = "") -> int:
    """nats-server's --signal: send the signal and return the PID; on failure a one-line
    error and exit status 1."""
    from shardbroker.ops.control import signal_broker
    from shardbroker.ops.locate import BrokerNotFoundError

    try:
        return signal_broker(command_arg, pid_file, port)
    except BrokerNotFoundError as exc:
        typer.echo(f"shardbroker{who}: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def reload(
    target: str = typer.Argument("", help="The supervisor's PID, or its pid file."),
    pid_file: str = typer.Option("", "--pid-file", "-P", help="Read the PID from this file."),
    port: int | None = typer.Option(
        None, "-p", "--port", help="Find the broker by its client port (default 4222)."
    ),
) -> None:
    """Reload a running broker's configuration file (SIGHUP to its supervisor).

    The broker logs `Reloaded server configuration`, or why it refused the reload (the
    running configuration then stays as it was).
    """
    pid = _signal_broker("reload" + (f"={target}" if target else ""), pid_file, port, " reload")
    typer.echo(
        f"shardbroker reload: reload requested (pid {pid}); the broker's log has the outcome"
    )


@app.command()
def bench(
    mode: str = typer.Argument(
        ..., help="pub, sub, pubsub, request, reply, queue, js-pub or js-consume."
    ),
    server: str = typer.Option(
        "nats://127.0.0.1:4222",
        "-s",
        "--server",
        help="Server URL: nats://host:port or nats://user:pass@host:port.",
    ),
    pubs: int | None = typer.Option(
        None,
        "--pubs",
        help="Publishers (requesters in request mode). Default 1.",
        show_default=False,
    ),
    subs: int | None = typer.Option(
        None,
        "--subs",
        help="Subscribers (queue members, responders, consumers). Default 1; queue: 2.",
        show_default=False,
    ),
    msgs: int | None = typer.Option(
        None,
        "--msgs",
        help="Messages to publish, split over publishers (per subscriber in sub mode). "
        "Default 100,000; reply: serve until stopped.",
        show_default=False,
    ),
    duration: float | None = typer.Option(
        None,
        "--duration",
        help="Run for this many seconds instead of --msgs.",
        show_default=False,
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Payload bytes. Default 128. Several, comma-separated (16,17): publishers use "
        "them in turn, so consecutive messages differ in size (pub, sub, pubsub, queue). "
        "A range MIN-MAX (16-4096): 13 sizes spread over it on a log scale, in a fixed "
        "shuffled order.",
        show_default=False,
    ),
    rate: float | None = typer.Option(
        None,
        "--rate",
        help="Target messages per second per publisher (paced).",
        show_default=False,
    ),
    subject: str | None = typer.Option(
        None,
        "--subject",
        help="Subject (JetStream: the stream's subject). Default 'bench'.",
        show_default=False,
    ),
    queue: str | None = typer.Option(
        None,
        "--queue",
        help="Queue group of queue members and responders. Default 'bench'.",
        show_default=False,
    ),
    subjects: int = typer.Option(
        0,
        "--subjects",
        help="Publish to <subject>.0 .. <subject>.N-1 in turn (consecutive messages have "
        "different subjects); subscribers, members and responders subscribe to <subject>.*.",
    ),
    procs: int = typer.Option(
        1,
        "--procs",
        help="Client processes to spread the clients over; from 2 on, publishers and "
        "subscribers never share one.",
    ),
    spread: int = typer.Option(
        0,
        "--spread",
        help="shardbroker: place connections on alternating workers 1..W (publishers from "
        "worker 1, subscribers from worker 2), re-connecting until they land there.",
    ),
    warmup: int = typer.Option(
        0,
        "--warmup",
        help="request, js-pub: untimed round trips (acked publishes) per client first.",
    ),
    ack: str = typer.Option("async", "--ack", help="js-pub: sync or async PubAcks."),
    window: int = typer.Option(
        256, "--window", help="js-pub async: PubAcks in flight; js-consume: max ack pending."
    ),
    consumer: str = typer.Option("pull", "--consumer", help="js-consume: push or pull."),
    ack_policy: str = typer.Option(
        "explicit", "--ack-policy", help="js-consume push: the consumer's acks, explicit or none."
    ),
    batch: int = typer.Option(100, "--batch", help="js-consume pull: messages per request."),
    stream: str = typer.Option("benchstream", "--stream", help="JetStream stream name."),
    storage: str = typer.Option("file", "--storage", help="Stream storage: file or memory."),
    no_create: bool = typer.Option(
        False, "--no-create", help="Use an existing stream instead of creating one."
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the stream the run created."),
    no_responders_started: bool = typer.Option(
        False,
        "--no-responders-started",
        help="request: use an external service instead of starting responders.",
    ),
    timeout: float = typer.Option(
        10.0, "--timeout", help="Seconds without progress before the run fails."
    ),
    server_pid: int = typer.Option(
        0,
        "--server-pid",
        help="Report the CPU time of this server process and its children during the run, "
        "per process (shardbroker: supervisor, each worker, storage) and per million "
        "messages.",
        show_default=False,
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    csv_file: str = typer.Option("", "--csv", help="Write per-client rows and an aggregate row."),
    plot_file: str = typer.Option(
        "", "--plot", help="Write a PNG chart of throughput and latency (needs matplotlib)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Load-test a NATS server (shardbroker or nats-server), like `nats bench`."""
    # Imported here so `shardbroker --help` stays fast and light.
    from shardbroker.bench import BenchError
    from shardbroker.bench.runner import run_cli

    try:
        code = run_cli(
            mode, server=server, pubs=pubs, subs=subs, msgs=msgs, duration=duration,
            size=size, rate=rate, subject=subject, queue=queue, procs=procs, ack=ack,
            window=window, consumer=consumer, batch=batch, stream=stream, storage=storage,
            no_create=no_create, keep=keep, no_responders_started=no_responders_started,
            timeout=timeout, json_output=json_output, csv=csv_file, plot=plot_file,
            no_progress=no_progress, subjects=subjects, spread=spread, warmup=warmup,
            ack_policy=ack_policy, server_pid=server_pid,
        )  # fmt: skip
    except BenchError as exc:
        typer.echo(f"shardbroker bench: {exc}", err=True)
        raise typer.Exit(exc.exit_status) from None
    except KeyboardInterrupt:
        typer.echo("shardbroker bench: interrupted", err=True)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


@app.command("check-config")
def check_config(
    config: str = typer.Argument(..., help="nats-server style configuration file."),
) -> None:
    """Check a configuration file: every error with file, line and a message."""
    try:
        check_tls(build_options(OptionsSource(config=config)))
    except ConfigError as exc:
        typer.echo(f"shardbroker: {exc}", err=True)
        raise typer.Exit(1) from None
    except (OptionsError, ValueError) as exc:
        typer.echo(f"shardbroker: {config}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"shardbroker: configuration file {config} is valid")


def _broker_pid(pid: int | None, pid_file: str, port: int | None, command: str) -> int:
    from shardbroker.ops.locate import BrokerNotFoundError, supervisor_pid

    try:
        return supervisor_pid(pid, pid_file, port)
    except BrokerNotFoundError as exc:
        typer.echo(f"shardbroker {command}: {exc}", err=True)
        raise typer.Exit(1) from None


def _write_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@app.command()
def stats(
    port: int | None = typer.Option(
        None, "-p", "--port", help="The broker's client port (default 4222)."
    ),
    pid_file: str = typer.Option("", "--pid-file", "-P", help="Find the broker by pid file."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON (one object a report)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until interrupted."),
    interval: float = typer.Option(
        1.0, "--interval", "-i", help="Seconds between the samples rates are computed over."
    ),
    count: int = typer.Option(0, "--count", help="With --watch: stop after this many reports."),
) -> None:
    """Per-shard connections, subscriptions, message rates, CPU and memory of a running
    broker, read from its shared memory (no monitoring port needed)."""
    from shardbroker.ops.locate import BrokerNotFoundError, open_stats, port_of
    from shardbroker.ops.stats import run

    if interval <= 0:
        typer.echo("shardbroker stats: --interval must be positive", err=True)
        raise typer.Exit(2)
    if pid_file:
        pid = _broker_pid(None, pid_file, None, "stats")
        found = port_of(pid)
        if found is None:
            typer.echo(f"shardbroker stats: cannot tell the port of pid {pid}", err=True)
            raise typer.Exit(1)
        port = found
    if port is None:
        port = const.DEFAULT_PORT
    _broker_pid(None, "", port, "stats")  # a live broker, not a stale segment
    try:
        reader = open_stats(port)
    except BrokerNotFoundError as exc:
        typer.echo(f"shardbroker stats: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        # Not typer.echo: it drops the screen-clearing codes of --watch when piped.
        run(reader, interval, json_output, watch, count, _write_line)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()


@app.command()
def ldm(
    pid: int | None = typer.Argument(None, help="The supervisor's PID."),
    pid_file: str = typer.Option("", "--pid-file", "-P", help="Read the PID from this file."),
    port: int | None = typer.Option(
        None, "-p", "--port", help="Find the broker by its client port (default 4222)."
    ),
) -> None:
    """Put a running broker in lame duck mode (SIGUSR2): it stops accepting, tells its
    clients, closes them over lame_duck_duration, then exits."""
    import os
    import signal

    target = _broker_pid(pid, pid_file, port, "ldm")
    try:
        os.kill(target, signal.SIGUSR2)
    except OSError as exc:
        typer.echo(f"shardbroker ldm: cannot signal pid {target}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"shardbroker ldm: lame duck mode requested (pid {target})")


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"shardbroker {__version__} (nats-server protocol {const.SERVER_VERSION})")


def main() -> None:
    sys.exit(app())
