"""Line-echo servers for the benchmarks, one per implementation.

How this works: ``python bench/servers.py NAME PORT [--uvloop] [--cert F --key F]`` starts the
echo server NAME on 127.0.0.1:PORT (PORT 0 picks a free port), prints
``LISTENING <port>`` on stdout once it accepts connections and serves until it
is killed. Every server echoes each received line with a ``\\n`` terminator.
When the implementation cannot run (twinsock's sockets not written yet,
uvloop missing) it prints ``UNAVAILABLE <reason>`` and exits with status 3, so
the benchmark can report "not available" instead of crashing. The soft
RLIMIT_NOFILE is raised to the hard limit so that a server can hold 10,000
connections.

Servers:
    stdlib_thread_makefile  thread per connection, makefile("rb").readline + sendall
    twinsock_thread         thread per connection, twinsock Socket.recv_line + send
    asyncio_streams         asyncio.start_server, readline + write + drain
    asyncio_protocol        a raw asyncio.Protocol that splits lines and writes them back
    asyncio_buffered_protocol  the same as an asyncio.BufferedProtocol (recv_into, no allocation)
    twinsock_async          twinsock AsyncSocket, recv_line + send, a task per connection
    twinsock_serve          the same handler on asyncnet.serve (the library's accept loop)
    twinsock_serve_lines    asyncnet.serve_lines: on_line sends the line back (no task at all)
    twinsock_run_server     twinsock_serve's handler on asyncnet.run_server (--workers N)
    twinsock_run_server_lines  twinsock_serve_lines' callback on run_server(lines=True)
    asyncio_streams_tls     asyncio_streams with ssl= (needs --cert/--key)
    twinsock_async_tls      twinsock_async on a wrap_socket'ed listener (needs --cert/--key)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import resource
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

UNAVAILABLE_STATUS = 3
HOST = "127.0.0.1"
BACKLOG = 4096


def announce(port: int) -> None:
    """Tell the parent process that the server listens, and on which port."""
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()


def unavailable(reason: str) -> None:
    sys.stdout.write(f"UNAVAILABLE {reason}\n")
    sys.stdout.flush()
    sys.exit(UNAVAILABLE_STATUS)


def raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- blocking, a thread per connection ---------------------------------------


def stdlib_thread_makefile(port: int) -> None:
    listener = socket.create_server((HOST, port), backlog=BACKLOG)
    announce(listener.getsockname()[1])

    def serve(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while line := reader.readline():
                conn.sendall(line)
        except OSError:
            pass
        finally:
            reader.close()
            conn.close()

    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def twinsock_thread(port: int) -> None:
    try:
        from twinsock.net import Socket, SockOpt
    except ImportError as exc:
        unavailable(f"twinsock.net: {exc}")
    listener = Socket()
    listener.bind_addr(port, HOST)
    listener.listen(BACKLOG)
    announce(listener.get_local_addr()[1])

    def serve(conn: Any) -> None:
        try:
            while line := conn.recv_line():
                conn.send((b"" if line == b"\r\n" else line) + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        conn = listener.accept()
        conn.set_sock_opt(SockOpt.NO_DELAY, True)  # as the stdlib server does
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


# -- asyncio -----------------------------------------------------------------


async def asyncio_streams(port: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, HOST, port, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


class LineEchoProtocol(asyncio.Protocol):
    """Callbacks only: the ceiling for any coroutine API on the same loop."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.pending:
            self.pending += data
            data = bytes(self.pending)
            self.pending.clear()
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            self.transport.write(data[start : end + 1])
            start = end + 1
        if start < len(data):
            self.pending += data[start:]


class LineEchoBufferedProtocol(asyncio.BufferedProtocol):
    """Callbacks with the loop receiving into our own buffer (``recv_into``).

    On Python 3.11's default loop a plain ``Protocol`` pays for ``recv(256 KiB)``
    on every read (a fresh 256 KiB allocation each time, about 11 us here); a
    ``BufferedProtocol`` does not, so this is the real ceiling for a
    buffer-based design such as twinsock's.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray(65536)
        self.view = memoryview(self.buf)
        self.used = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.used == len(self.buf):  # a line longer than the buffer: grow it
            # a new buffer: a bytearray with live views cannot be resized
            grown = bytearray(2 * len(self.buf))
            grown[: self.used] = self.buf
            self.buf, self.view = grown, memoryview(grown)
        return self.view[self.used :]

    def buffer_updated(self, nbytes: int) -> None:
        assert self.transport is not None
        start, end = 0, self.used + nbytes
        while (nl := self.buf.find(b"\n", start, end)) >= 0:
            self.transport.write(self.buf[start : nl + 1])
            start = nl + 1
        if start:
            self.buf[: end - start] = self.buf[start:end]
        self.used = end - start


async def asyncio_buffered_protocol(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LineEchoBufferedProtocol, HOST, port, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


async def asyncio_protocol(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LineEchoProtocol, HOST, port, backlog=BACKLOG)
    announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


async def twinsock_async(port: int) -> None:
    try:
        from twinsock.asyncnet import AsyncSocket
    except ImportError as exc:
        unavailable(f"twinsock.asyncnet: {exc}")
    listener = AsyncSocket()
    listener.bind_addr(port, HOST)
    listener.listen(BACKLOG)
    announce(listener.get_local_addr()[1])

    async def serve(conn: Any) -> None:
        try:
            while line := await conn.recv_line():
                await conn.send((b"" if line == b"\r\n" else line) + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn = await listener.accept()
        task = asyncio.create_task(serve(conn))
        tasks.add(task)  # keep a reference: the loop holds tasks weakly
        task.add_done_callback(tasks.discard)


async def _echo_handler(conn: Any) -> None:  # twinsock_serve's handler; the server closes conn
    try:
        while line := await conn.recv_line():
            await conn.send((b"" if line == b"\r\n" else line) + b"\n")
    except OSError:
        pass


async def twinsock_serve(port: int) -> None:
    try:
        from twinsock import asyncnet
    except ImportError as exc:
        unavailable(f"twinsock.asyncnet: {exc}")
    if not hasattr(asyncnet, "serve"):
        unavailable("asyncnet.serve has not landed yet")
    server = await asyncnet.serve(_echo_handler, HOST, port, backlog=BACKLOG)
    announce(server.port)
    await server.serve_forever(grace=1.0)


def _echo_line(conn: Any, line: bytes) -> None:
    # The load generator's lines end in LF alone and it counts the bytes that
    # come back, so the echo ends in LF too (a return value would be sent as
    # by send_line, with CRLF).
    conn.send((b"" if line == b"\r\n" else line) + b"\n")


async def twinsock_serve_lines(port: int) -> None:
    try:
        from twinsock import asyncnet
    except ImportError as exc:
        unavailable(f"twinsock.asyncnet: {exc}")
    if not hasattr(asyncnet, "serve_lines"):
        unavailable("asyncnet.serve_lines has not landed yet")
    server = await asyncnet.serve_lines(_echo_line, HOST, port, backlog=BACKLOG)
    announce(server.port)
    await server.serve_forever(grace=1.0)


# -- run_server: one process, or a supervisor and forked workers -------------


class _AnnounceListening(logging.Handler):
    """Turns each ``listening on HOST:PORT`` record into a ``LISTENING <port>`` line."""

    def emit(self, record: logging.LogRecord) -> None:
        found = re.match(r"listening on .*:(\d+)$", record.getMessage())
        if found:
            os.write(1, f"LISTENING {found.group(1)}\n".encode())  # one write per line


def twinsock_run_server(port: int, workers: int, use_uvloop: bool, lines: bool) -> None:
    try:
        from twinsock import asyncnet
    except ImportError as exc:
        unavailable(f"twinsock.asyncnet: {exc}")
    if not hasattr(asyncnet, "run_server"):
        unavailable("asyncnet.run_server has not landed yet")
    if use_uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError as exc:
            unavailable(f"uvloop: {exc}")
    logger = logging.getLogger("twinsock.server")
    logger.setLevel(logging.INFO)
    logger.addHandler(_AnnounceListening())
    problems = logging.StreamHandler()  # a worker that failed, ... (stderr)
    problems.setLevel(logging.WARNING)
    logger.addHandler(problems)
    logger.propagate = False  # the INFO records (stopped serving, ...) stay quiet
    handler: Any = _echo_line if lines else _echo_handler
    asyncnet.run_server(handler, HOST, port, workers=workers, grace=1.0, uvloop=use_uvloop,
                        lines=lines, backlog=BACKLOG)


# -- TLS (issue 4): certificate and key paths come from --cert / --key ---------

TLS_FILES: dict[str, str] = {}


def server_ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(TLS_FILES["cert"], TLS_FILES["key"])
    return ctx


async def asyncio_streams_tls(port: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, HOST, port, backlog=BACKLOG,
                                        ssl=server_ssl_context())
    announce(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


async def twinsock_async_tls(port: int) -> None:
    try:
        from twinsock import tls
        from twinsock.asyncnet import AsyncSocket, wrap_socket
    except ImportError as exc:
        unavailable(f"twinsock TLS on AsyncSocket: {exc}")
    ctx = tls.new_context(verify_mode=tls.VerifyMode.NONE, cert_file=TLS_FILES["cert"],
                          key_file=TLS_FILES["key"])
    listener = AsyncSocket()
    wrap_socket(ctx, listener)
    listener.bind_addr(port, HOST)
    listener.listen(BACKLOG)
    announce(listener.get_local_addr()[1])

    async def serve(conn: Any) -> None:
        try:
            while line := await conn.recv_line():
                await conn.send((b"" if line == b"\r\n" else line) + b"\n")
        except OSError:  # SslError is an OSError too (ssl.SSLError)
            pass
        finally:
            conn.close()

    tasks: set[asyncio.Task[None]] = set()
    while True:
        conn = await listener.accept()
        task = asyncio.create_task(serve(conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


BLOCKING: dict[str, Callable[[int], None]] = {
    "stdlib_thread_makefile": stdlib_thread_makefile,
    "twinsock_thread": twinsock_thread,
}
ASYNC: dict[str, Callable[[int], Coroutine[Any, Any, None]]] = {
    "asyncio_streams": asyncio_streams,
    "asyncio_protocol": asyncio_protocol,
    "asyncio_buffered_protocol": asyncio_buffered_protocol,
    "twinsock_async": twinsock_async,
    "twinsock_serve": twinsock_serve,
    "twinsock_serve_lines": twinsock_serve_lines,
    "asyncio_streams_tls": asyncio_streams_tls,
    "twinsock_async_tls": twinsock_async_tls,
}
TLS_SERVERS = ("asyncio_streams_tls", "twinsock_async_tls")
RUN_SERVER = {"twinsock_run_server": False, "twinsock_run_server_lines": True}  # name: lines
NAMES = (*BLOCKING, *ASYNC, *RUN_SERVER)


def run_async(main: Coroutine[Any, Any, None], use_uvloop: bool) -> None:
    if not use_uvloop:
        asyncio.run(main)
        return
    try:
        import uvloop
    except ImportError as exc:
        main.close()
        unavailable(f"uvloop: {exc}")
    uvloop.run(main)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run one benchmark echo server.")
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("port", type=int, help="0 picks a free port")
    parser.add_argument("--uvloop", action="store_true", help="async servers: run on uvloop")
    parser.add_argument("--cert", help="TLS servers: certificate chain (PEM)")
    parser.add_argument("--key", help="TLS servers: private key (PEM)")
    parser.add_argument("--workers", type=int, default=1,
                        help="twinsock_run_server*: worker processes (default 1: no fork)")
    args = parser.parse_args(argv)
    if args.workers != 1 and args.name not in RUN_SERVER:
        parser.error(f"{args.name}: --workers applies to {' and '.join(RUN_SERVER)} only")
    if args.name in TLS_SERVERS:
        if not (args.cert and args.key):
            parser.error(f"{args.name} needs --cert and --key")
        TLS_FILES.update(cert=args.cert, key=args.key)
    raise_nofile_limit()
    try:
        if args.name in RUN_SERVER:
            twinsock_run_server(args.port, args.workers, args.uvloop, RUN_SERVER[args.name])
        elif args.name in BLOCKING:
            if args.uvloop:
                parser.error(f"{args.name} is blocking: --uvloop does not apply")
            BLOCKING[args.name](args.port)
        else:
            run_async(ASYNC[args.name](args.port), args.uvloop)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
