"""``twinsock chat`` and ``twinsock echo``: the command line's servers, on the serving layer.

How this works.  Both commands hand their handler to ``asyncnet.run_server``
(SPEC sections 8 and 10), which serves until SIGINT or SIGTERM and returns
the final counters: ``echo`` serves ``_chat.echo_line`` (a callback per
line, ``serve_lines``: 1.3-1.4x the task per connection on both loops in
``bench_serve_lines``) or, with ``--tasks``, ``_chat.echo`` (a task per
connection), on as many worker processes as ``--workers`` asks; ``chat`` serves one
``_chat.ChatRoom`` in this process (a room cannot span processes).  What the
servers say goes through the standard ``logging`` of the ``twinsock``
loggers, which ``_log_to_stderr`` sends to stderr, one line per record,
prefixed with the command: ``listening on HOST:PORT`` for every address,
``stopped serving ...`` with the counters (``ServerStats.summary()``) at the
end, warnings (a chat client disconnected for not reading, accept back-off)
and handler errors.  The first signal shuts the server down gracefully
within ``--grace`` seconds (exit status 0), a second one closes everything
at once.  A bad ``--host`` is a usage error (exit 2) and a failure to
listen is one line that names the address (exit 1), through the exceptions
of ``twinsock._cli_args``, which ``cli.main`` reports.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from twinsock import _cli_args
from twinsock._cli_args import (
    EXIT_OK,
    PROG,
    CommandError,
    UsageError,
    check_tls_files,
    describe_error,
    host_port,
)
from twinsock._core.serving import DEFAULT_GRACE
from twinsock.errors import AddressError

__all__ = ["add_serving_options", "run_chat", "run_echo"]


def add_serving_options(parser: argparse.ArgumentParser, *, workers: bool) -> None:
    """The options of ``run_server`` that both server commands take (``--workers``: echo)."""
    if workers:
        parser.add_argument(
            "--workers",
            type=_cli_args.count(0, 1024),
            default=1,
            metavar="N",
            help="serve in N processes on one port (SO_REUSEPORT; 0: one per CPU) (1)",
        )
    parser.add_argument(
        "--max-connections",
        type=_cli_args.count(1, 10_000_000),
        default=10_000,
        metavar="N",
        help="at most N connections at once; more wait to be accepted (10000)",
    )
    parser.add_argument(
        "--call-timeout",
        type=_cli_args.seconds,
        default=None,
        metavar="S",
        help="close a connection that completes no line within S seconds, or whose output "
        "waits that long (none)",
    )
    parser.add_argument(
        "--grace",
        type=_cli_args.grace,
        default=DEFAULT_GRACE,
        metavar="S",
        help=f"on SIGINT/SIGTERM, let connections end within S seconds ({DEFAULT_GRACE:g})",
    )


def run_chat(args: argparse.Namespace) -> int:
    """``twinsock chat``: one ``ChatRoom`` served until SIGINT/SIGTERM."""
    from twinsock._chat import ChatRoom

    return _serve(args, ChatRoom().handle)


def run_echo(args: argparse.Namespace) -> int:
    """``twinsock echo``: the line echo, a callback per line or (``--tasks``) a task per
    connection."""
    prog = f"{PROG} echo"
    if (args.cert or args.key) and not args.tls:
        raise UsageError(f"{prog}: --cert and --key need --tls")
    if args.tls and not args.cert:
        raise UsageError(f"{prog}: --tls needs --cert FILE (and --key FILE)")

    options: dict[str, Any] = {}
    if args.tls:
        from twinsock import tls

        files = {"cert": args.cert, "key": args.key}
        check_tls_files(prog, files)
        try:
            # A line echo has no message whose end could be cut short, and many
            # clients (Python's ssl, curl) close without close_notify.
            options["ssl_context"] = tls.new_context(
                cert_file=args.cert, key_file=args.key, allow_truncation=True
            )
        except OSError as exc:  # SslError: the files do not make a context
            problem = _cli_args.tls_setup_problem(prog, exc, **files)
            raise UsageError(problem, help_hint=False) from None
    if args.uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise CommandError("uvloop is not installed (pip install 'twinsock[uvloop]')") from None
    handler, lines = echo_handler(args)
    return _serve(args, handler, workers=args.workers, uvloop=args.uvloop, lines=lines, **options)


def echo_handler(args: argparse.Namespace) -> tuple[Any, bool]:
    """What ``twinsock echo`` serves: ``(handler, lines)`` for ``run_server``.

    ``serve_lines`` unless ``--tasks``: it answered 1.3-1.4x the requests of the
    coroutine echo on both loops when measured side by side (bench/README.md).
    """
    from twinsock import _chat

    if args.tasks:
        return _chat.echo, False
    return _chat.echo_line, True


def _serve(args: argparse.Namespace, handler: Any, workers: int = 1, **options: Any) -> int:
    """Run ``handler`` on ``run_server`` until a signal; the errors as ``cli.main`` wants them."""
    from twinsock import asyncnet

    prog = f"{PROG} {args.command}"
    _log_to_stderr(prog)
    _sigterm_like_sigint()
    try:
        asyncnet.run_server(
            handler,
            args.host,
            args.port,
            workers=workers,
            grace=args.grace,
            max_connections=args.max_connections,
            call_timeout=args.call_timeout,
            **options,
        )
    except AddressError as exc:  # the library refused the --host text
        raise UsageError(f"{prog}: argument --host: {exc}") from None
    except ValueError as exc:  # workers > 1 where fork or SO_REUSEPORT is missing
        raise UsageError(f"{prog}: argument --workers: {exc}", help_hint=False) from None
    except OSError as exc:
        where = host_port(args.host, args.port)
        raise CommandError(f"cannot listen on {where}: {describe_error(exc)}") from exc
    return EXIT_OK


class _Lines(logging.Formatter):
    """``twinsock echo: listening on ...``; warnings and errors say what they are."""

    def __init__(self, prog: str) -> None:
        super().__init__(f"{prog}: %(message)s")
        self._loud = logging.Formatter(f"{prog}: %(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return self._loud.format(record)
        return super().format(record)


def _log_to_stderr(prog: str) -> None:
    """Send the ``twinsock`` loggers' INFO and above to stderr, one line per record."""
    logger = logging.getLogger("twinsock")
    if any(getattr(h, "twinsock_cli", False) for h in logger.handlers):
        return  # main() ran before in this process (tests call it directly)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Lines(prog))
    handler.twinsock_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _sigterm_like_sigint() -> None:
    """A SIGTERM before the server handles signals ends the command as Ctrl-C does (0).

    ``run_server`` replaces this handler while it serves and puts it back after.
    """

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
