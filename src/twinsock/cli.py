"""The ``twinsock`` command (also ``python -m twinsock``): SPEC section 8.

How this works.  ``main`` parses the arguments with one ``argparse``
sub-parser per command and runs the command's function, which returns the
exit status.  The error contract lives in ``main``: a bad argument
(argparse's own errors, the argument types and file checks of
``twinsock._cli_args``, and the library's ``AddressError`` for a host text,
which the commands word as a bad ``--host``) prints one line naming the
argument or file and exits 2; a network or TLS failure (``OSError``, which
includes ``NetTimeout`` and ``SslError``) prints one line and exits 1.  The
commands put the address in that line (``cannot connect to host:port: ...``,
``cannot listen on host:port: ...``); a traceback never reaches the user for
either.  Ctrl-C or SIGTERM ends quietly with 0.  Status lines go to stderr,
so that stdout carries only data (``connect`` and ``listen`` print received
lines there).  The exit statuses and the two exceptions live in
``twinsock._cli_args``, shared with ``_cli_servers``.

- ``twinsock`` without a command runs ``chat`` on its default address.
- ``chat`` and ``echo`` run on ``asyncnet.run_server`` until SIGINT or
  SIGTERM (``twinsock._cli_servers``; the chat room and the echo handlers
  are in ``twinsock._chat``).
- ``connect`` and ``listen`` bridge stdin and stdout to one blocking
  connection: a thread sends stdin's lines, another prints the received
  lines.  At the end of stdin the sending side is shut down, so the peer
  sees the end of the stream, and the command ends when the peer closes.
- ``bench`` is in ``twinsock._bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, NoReturn

from twinsock import __version__, _cli_args, _cli_servers
from twinsock._cli_args import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    CommandError,
    UsageError,
    check_tls_files,
    describe_error,
    host_port,
)
from twinsock.errors import AddressError

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "UsageError", "main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 12345

#: After the end of stdin, how long a TLS ``connect`` waits for more data.
TLS_LINGER = 1.0


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (``main`` prints them)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


# -- the parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``twinsock`` argument parser (one sub-parser per command)."""
    parser = _Parser(
        prog=PROG,
        description="Line-oriented TCP tools built on twinsock's sockets.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", help="without one, twinsock runs the chat server"
    )

    def command(name: str, what: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = commands.add_parser(name, help=what, description=what)
        return sub

    chat = command(
        "chat",
        "run a chat server: each line a client sends goes to every client "
        "(a client that does not read is disconnected)",
    )
    _add_listen_address(chat)
    _cli_servers.add_serving_options(chat, workers=False)
    chat.set_defaults(run=_cli_servers.run_chat)

    echo = command("echo", "run an echo server: each line goes back to its sender")
    _add_listen_address(echo)
    _cli_servers.add_serving_options(echo, workers=True)
    echo.add_argument("--tls", action="store_true", help="serve TLS (needs --cert)")
    echo.add_argument("--cert", metavar="FILE", help="PEM certificate chain (may hold the key)")
    echo.add_argument("--key", metavar="FILE", help="PEM private key")
    echo.add_argument("--uvloop", action="store_true", help="run on uvloop")
    serving = echo.add_mutually_exclusive_group()
    serving.add_argument(
        "--lines",
        action="store_true",
        help="serve with serve_lines, a callback per line (the default: the faster on both loops)",
    )
    serving.add_argument(
        "--tasks", action="store_true", help="serve with serve, a task per connection"
    )
    echo.set_defaults(run=_cli_servers.run_echo)

    connect = command(
        "connect", "connect to HOST PORT: send stdin's lines, print the lines that come back"
    )
    connect.add_argument("host", type=_cli_args.peer_host, help="host name or IP address")
    connect.add_argument("port", type=_cli_args.remote_port, help="TCP port")
    connect.add_argument("--tls", action="store_true", help="use TLS (certificate verified)")
    connect.add_argument("--ca", metavar="FILE", help="trust the CAs in this PEM file")
    connect.add_argument(
        "--insecure", action="store_true", help="TLS without verifying the certificate"
    )
    connect.add_argument("--psk-identity", metavar="ID", help="TLS with a pre-shared key")
    connect.add_argument("--psk-key", metavar="HEX", type=_cli_args.hex_key, help="the key, in hex")
    connect.add_argument(
        "--timeout", type=_cli_args.seconds, default=10.0, help="connect timeout in seconds (10)"
    )
    connect.set_defaults(run=_cmd_connect)

    listen = command("listen", "wait for one connection on PORT and bridge it to stdin/stdout")
    listen.add_argument("port", type=_cli_args.port, help="TCP port (0: any free port)")
    listen.add_argument(
        "--host", default=DEFAULT_HOST, help=f"numeric address to listen on ({DEFAULT_HOST})"
    )
    listen.set_defaults(run=_cmd_listen)

    bench = command("bench", "echo benchmark: twinsock against asyncio streams on this machine")
    bench.add_argument(
        "--seconds", type=_cli_args.seconds, default=2.0, help="measuring time per server (2)"
    )
    bench.add_argument(
        "--connections",
        type=_cli_args.count(1, 5000),
        default=50,
        help="client connections (50)",
    )
    bench.add_argument(
        "--size", type=_cli_args.count(2, 65536), default=64, help="line length (64)"
    )
    bench.add_argument("--uvloop", action="store_true", help="run the servers on uvloop")
    bench.add_argument("--serve", choices=["twinsock", "asyncio"], help=argparse.SUPPRESS)
    bench.set_defaults(run=_cmd_bench)
    return parser


def _add_listen_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        type=_cli_args.listen_host,
        default=DEFAULT_HOST,
        help=f"address or host name to listen on ({DEFAULT_HOST})",
    )
    parser.add_argument(
        "--port",
        type=_cli_args.port,
        default=DEFAULT_PORT,
        help=f"TCP port, 0: any free ({DEFAULT_PORT})",
    )


# -- main ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``twinsock`` command line; return the exit status."""
    parser = build_parser()
    command = PROG
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        argv = ["chat"]  # without arguments: the chat server on its default address
    try:  # the error contract (module docstring) is kept here and only here
        args = parser.parse_args(argv)
        if args.command is None:  # options but no command: the chat server, default address
            args = parser.parse_args(["chat"])
        command = f"{PROG} {args.command}"
        status: int = args.run(args)
        return status
    except UsageError as exc:
        _say(f"{exc} (try --help)" if exc.help_hint else str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except CommandError as exc:
        _say(f"{command}: {exc}")
        return EXIT_ERROR
    except (OSError, ssl.SSLError) as exc:
        _say(f"{command}: {describe_error(exc)}")
        return EXIT_ERROR


def _say(line: str) -> None:
    """Write one status line to stderr."""
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM end a blocking command the way Ctrl-C does: quietly, exit status 0."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _run_async(coro: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    """Run a server coroutine until Ctrl-C (``KeyboardInterrupt``) or SIGTERM (returns)."""
    if not use_uvloop:
        asyncio.run(_until_terminated(coro))
        return
    try:
        import uvloop
    except ImportError:
        coro.close()
        raise CommandError("uvloop is not installed (pip install 'twinsock[uvloop]')") from None
    uvloop.run(_until_terminated(coro))


async def _until_terminated(coro: Coroutine[Any, Any, None]) -> None:
    """Await ``coro``; SIGTERM cancels it and counts as a normal end."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        await task
    except asyncio.CancelledError:
        if not terminated:
            raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _require_asyncnet() -> None:
    try:
        import twinsock.asyncnet  # noqa: F401
    except ImportError as exc:
        raise CommandError(f"twinsock.asyncnet is not available: {exc}") from None


# -- connect and listen ---------------------------------------------------------------------


def _client_context(args: argparse.Namespace) -> Any:
    """The TLS context ``connect`` asked for, or ``None`` for plain TCP."""
    prog = f"{PROG} connect"
    psk = args.psk_identity is not None or args.psk_key is not None
    if psk and (args.psk_identity is None or args.psk_key is None):
        raise UsageError(f"{prog}: --psk-identity and --psk-key go together")
    if args.insecure and args.ca:
        raise UsageError(f"{prog}: --insecure and --ca contradict each other")
    if psk and (args.ca or args.insecure):
        raise UsageError(f"{prog}: PSK uses no certificates (--ca, --insecure)")
    if (args.ca or args.insecure) and not args.tls:
        raise UsageError(f"{prog}: --ca and --insecure need --tls")
    if not (args.tls or psk):
        return None
    from twinsock import tls

    if psk:
        identity: str = args.psk_identity
        key: bytes = args.psk_key
        context = tls.new_context(verify_mode=tls.VerifyMode.NONE, cipher_list="PSK")
        context.client_get_psk_func = lambda hint: (identity, key)
        return context
    check_tls_files(prog, {"ca": args.ca})
    mode = tls.VerifyMode.NONE if args.insecure else tls.VerifyMode.PEER
    try:
        return tls.new_context(verify_mode=mode, ca_file=args.ca)
    except OSError as exc:  # SslError: the CA file does not make a context
        raise UsageError(
            _cli_args.tls_setup_problem(prog, exc, ca=args.ca), help_hint=False
        ) from None


def _cmd_connect(args: argparse.Namespace) -> int:
    from twinsock import net

    context = _client_context(args)
    if context is not None and not hasattr(net, "wrap_connected_socket"):
        raise CommandError("TLS is not available: twinsock.net has no wrap_connected_socket")
    where = host_port(args.host, args.port)
    try:
        sock = net.dial(args.host, args.port, timeout=args.timeout)
    except AddressError as exc:  # the library refused the host text
        raise UsageError(f"{PROG} connect: argument host: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot connect to {where}: {describe_error(exc)}") from exc
    try:
        if context is not None:
            from twinsock.tls import HandshakeType

            net.wrap_connected_socket(  # type: ignore[attr-defined,unused-ignore]
                context, sock, HandshakeType.CLIENT, hostname=args.host, timeout=args.timeout
            )
        _say(f"connected to {_peer_text(sock)}")
        heard, said = _bridge(sock)
    except OSError as exc:
        raise CommandError(f"{where}: {describe_error(exc)}") from exc
    finally:
        sock.close()
    if said and not heard and context is None:
        # A TLS server waits for a ClientHello and drops plaintext without a word.
        _say(f"{where} closed the connection without a word; if it speaks TLS, add --tls")
    return EXIT_OK


def _cmd_listen(args: argparse.Namespace) -> int:
    from twinsock import simple
    from twinsock.addresses import IPFamily, SocketAddress

    try:
        address = SocketAddress.create(args.host, args.port, IPFamily.UNSPEC)
    except ValueError as exc:
        raise UsageError(f"{PROG} listen: argument --host: {exc}") from None
    _interrupt_on_sigterm()
    try:
        listener = simple.listen(address, backlog=1)
    except OSError as exc:
        raise CommandError(f"cannot listen on {address}: {describe_error(exc)}") from exc
    with listener:
        _say(f"listening on {listener.addr} (one connection)")
        try:
            conn = listener.accept()
        except OSError as exc:
            raise CommandError(f"accepting on {listener.addr}: {describe_error(exc)}") from exc
    with conn:
        _say(f"connection from {conn.addr}")
        try:
            _bridge(conn)
        except OSError as exc:
            raise CommandError(f"connection from {conn.addr}: {describe_error(exc)}") from exc
    return EXIT_OK


def _peer_text(sock: Any) -> str:
    host, port = sock.get_peer_addr()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bridge(sock: Any) -> tuple[bool, bool]:
    """Copy stdin's lines to ``sock`` and ``sock``'s lines to stdout until the peer closes.

    At the end of stdin a plain TCP connection is half-closed and the bridge
    waits for the peer to finish.  TLS has no half-close, so a TLS bridge
    waits until the peer has been quiet for ``TLS_LINGER`` seconds, then closes.

    Returns:
        Whether the peer sent anything, and whether we did.
    """
    failure: list[BaseException] = []
    heard = threading.Event()
    said = threading.Event()
    peer_done = threading.Event()
    stdin_done = threading.Event()
    last_heard = [time.monotonic()]

    def receive() -> None:
        out = sys.stdout.buffer
        try:
            while line := sock.recv_line():
                out.write(b"\n" if line == b"\r\n" else line + b"\n")
                out.flush()
                heard.set()
                last_heard[0] = time.monotonic()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)
        finally:
            peer_done.set()

    def send() -> None:
        try:
            for line in _stdin_lines():
                said.set()  # before the send: the peer may answer it by closing at once
                sock.send(line)
            last_heard[0] = time.monotonic()
            _shutdown_write(sock)
        except BaseException as exc:
            if not peer_done.is_set():
                failure.append(exc)
                peer_done.set()
        finally:
            stdin_done.set()

    threading.Thread(target=receive, name="twinsock-receive", daemon=True).start()
    threading.Thread(target=send, name="twinsock-send", daemon=True).start()
    tls = sock.is_ssl()
    while not peer_done.wait(0.1):
        if tls and stdin_done.is_set() and time.monotonic() - last_heard[0] > TLS_LINGER:
            break
    if failure:
        raise failure[0]
    return heard.is_set(), said.is_set()


def _stdin_lines() -> Iterator[bytes]:
    """Stdin's lines, each ending in ``\n`` (one is added to a last line without it).

    Reads the file descriptor directly: a daemon thread blocked inside
    ``sys.stdin.buffer`` would hold its lock and abort the interpreter's exit
    when the peer ends the session first.
    """
    pending = b""
    while chunk := os.read(sys.stdin.fileno(), 65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending + b"\n"


def _shutdown_write(sock: Any) -> None:
    """Tell the peer no more data comes (TCP half-close; TLS: close_notify on close)."""
    if sock.is_ssl() or sock.is_closed():
        return
    twin = socket.socket(fileno=os.dup(sock.fileno()))
    try:
        twin.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # already disconnected: the receiving side will notice
    finally:
        twin.close()


# -- bench ----------------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from twinsock import _bench

    if args.serve:
        if args.serve == "twinsock":
            _require_asyncnet()
        _run_async(_bench.serve(args.serve), args.uvloop)
        return EXIT_OK
    if args.uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise CommandError("uvloop is not installed (pip install 'twinsock[uvloop]')") from None
    return _bench.run(
        seconds=args.seconds,
        connections=args.connections,
        size=args.size,
        use_uvloop=args.uvloop,
    )
