r"""The texts of ``Server`` / ``AsyncServer`` and of the functions both faces define.

(``twinsock._core.docs`` says how ``$word`` works.)
"""

from __future__ import annotations

from twinsock._core.docs import Table

__all__ = ["FUNCTIONS", "SERVER"]

_GRACE = r"""TypeError: ``grace`` is not a number.
ValueError: ``grace`` is negative or NaN."""

_SERVER_TEXTS = {
    "addresses": "The bound addresses (port 0 resolved); a server on Unix sockets has none.",
    "port": "The port of the first address (0 for a server on a Unix socket).",
    "stats": "A snapshot of the counters (a ``ServerStats``).",
    "is_serving": r"""Tell whether the server still accepts connections.

        Returns:
            ``True`` until ``close()`` or ``shutdown()`` stopped accepting.
        """,
    "close": r"""Stop accepting now; open connections go on.

        The listening sockets are closed when it returns.
        Closing a closed server does nothing.
        """,
    "shutdown": r"""Stop accepting, give the handlers ``grace`` seconds, then close the rest.

        Connections still open after ``grace`` seconds are closed, which wakes
        their waiting calls with ``SocketClosedError``.

        $shutdown_rest

        A second call waits for the first to finish.

        Args:
            grace: seconds the handlers have to return on their own;
                ``math.inf`` waits for them all.

        Raises:
            $grace_errors
        """,
    "serve_forever": r"""Wait until the server is shut down; in the main thread, handle signals.

        The first SIGINT or SIGTERM starts ``shutdown(grace)``, a second one
        closes every connection at once; the previous signal handlers are
        restored on return.

        $serve_forever_cancel

        Args:
            grace: the grace period of the shutdown a signal starts, in seconds.

        Raises:
            $grace_errors
        """,
}

#: The texts of the methods and properties both server twins define.
SERVER = Table(
    _SERVER_TEXTS,
    {
        "grace_errors": _GRACE,
        "shutdown_rest": (
            "Then ``shutdown`` waits (briefly) for their handlers to end.",
            "Tasks that still do not end are then cancelled.",
        ),
        "serve_forever_cancel": (
            "", "Cancelling ``serve_forever`` closes the server (it stops accepting).",
        ),
    },
)

_SERVE_OPTIONS = r"""backlog: ``listen``'s backlog.
sock: an already bound (or listening) socket to serve instead of ``host``
    and ``port``: a ``socket.socket``, a twinsock socket, or a file
    descriptor number (systemd socket activation).
ssl_context: serve TLS with this server context; handshakes never run in
    the accept loop, so a client that stalls its own delays nobody else.
handshake_timeout: seconds a client has to complete its TLS handshake;
    one that fails or stalls is counted and logged, and not served.
max_connections: at most this many connections open at once; at the limit
    the server stops accepting (clients wait in the kernel's backlog) until
    one closes."""

_SERVE_ERRORS = r"""AddressError: ``port`` out of range, or a ``host`` that can only be a
    malformed IP address.
ValueError: ``max_connections < 1``, a negative ``backlog``, a negative or
    NaN timeout, a ``sock`` that is no bound stream socket, or
    ``reuse_port`` where ``SO_REUSEPORT`` is missing.
SocketClosedError: ``sock`` is closed.
OSError: ``host`` does not resolve, or an address cannot be bound (the
    message names it)."""

_FUNCTION_TEXTS = {
    "dial": r"""Connect to ``address:port`` over IPv6 or IPv4, whichever answers first.

        Happy Eyeballs (RFC 8305): the resolved addresses are tried with the
        families interleaved, each attempt starting 250 ms after the previous
        one unless that failed sooner; the first connection wins and the others
        are closed.  One deadline covers resolution and every attempt.

        Args:
            address: a host name, or a numeric IPv4 or IPv6 address.
            port: the port, 0..65535.
            protocol: ``Protocol.IPPROTO_TCP`` (a stream), ``IPPROTO_UDP`` (a
                connected datagram socket), or another for a raw socket.
            buffered: whether the new socket reads through a read-ahead buffer.
            timeout: seconds for resolution and every attempt together;
                ``None`` or ``math.inf``: no limit.
            resolver: replaces ``socket.getaddrinfo``: ``resolver(host, port,
                family, type)`` returns ``getaddrinfo``-shaped tuples (tests,
                custom DNS).

        Returns:
            The connected ``$Socket``.

        Raises:
            NetTimeout: resolution and the attempts did not succeed in time;
                notes name the attempts.
            ConnectionRefusedError: every attempt failed (or another ``OSError``):
                the last attempt's error, with one note per attempt (address,
                error, elapsed time).
            OSError: ``address`` does not resolve (``socket.gaierror``) or only to
                addresses that cannot be used.
            AddressError: ``port`` out of range, or text that can only be a
                malformed IP address.
            ValueError: ``protocol`` is no ``Protocol`` value, or a negative or
                NaN ``timeout``.
            TypeError: ``address`` is not a ``str``, or ``timeout`` not a number.
        """,
    "wrap_socket": r"""Make the unconnected ``sock`` a TLS socket; the handshake comes later.

        A client's handshake runs inside ``connect``: the certificate is
        checked against the host name given there, which is also sent as SNI
        unless it is an IP literal.  A listener's runs inside ``accept``, for
        each client: one whose handshake fails or stalls (see ``accept``) is
        closed and logged, and ``accept`` waits for the next.

        Args:
            ctx: the TLS settings, from ``new_context``.
            sock: a stream socket that is not connected yet.

        Raises:
            TypeError: ``ctx`` is not an ``SslContext``, or ``sock`` not a
                twinsock socket.
            SslError: ``sock`` is not a stream socket, or is TLS already.
            SocketClosedError: ``sock`` is closed.
        """,
    "wrap_connected_socket": r"""Run the TLS handshake on the connected ``sock`` now.

        Args:
            ctx: the TLS settings, from ``new_context``.
            sock: a connected stream ``$Socket``.
            handshake: ``HandshakeType.CLIENT`` or ``HandshakeType.SERVER``.
            hostname: (client) what the server's certificate is checked against,
                also sent as SNI; a verifying client (``VerifyMode.PEER``) needs
                one.
            timeout: seconds for the whole handshake; ``None``: ``sock``'s
                ``default_timeout``.

        Raises:
            ValueError: a verifying client without ``hostname`` (before any
                I/O), or a negative or NaN ``timeout``.
            TypeError: ``ctx`` is not an ``SslContext``, ``sock`` not a twinsock
                socket, or ``handshake`` not a ``HandshakeType``.
            SslError: the handshake failed (``PskError``: the PSK did not match),
                or ``sock`` is not a stream socket or is TLS already.  A failed
                handshake closes ``sock``.
            NetTimeout: the handshake did not finish in time; ``sock`` is closed.
            OSError: the connection failed during the handshake; ``sock`` is
                closed.
            SocketClosedError: ``sock`` is closed, or another $thread closed it
                meanwhile.
            $wrap_busy
            $loop_error
        """,
    "serve": r"""Serve ``handler(conn)`` $per_connection; return the started server.

        Args:
            $handler_arg
            host: a name or numeric address; the server listens on every address
                it resolves to (``"localhost"``: ``127.0.0.1`` and ``::1``).
                ``None`` or ``""``: every interface, IPv4 and IPv6.
            port: the port; 0 picks a free one (``$Server.port``).
            $serve_options
            call_timeout: every connection's ``default_timeout``: each waiting
                call without a timeout of its own must finish within it.
            reuse_port: set ``SO_REUSEPORT`` on the listeners, so that several
                processes can serve one port.

        Returns:
            The ``$Server``, listening and already accepting.

        Raises:
            $handler_unfit
            $serve_errors
        """,
    "serve_lines": r"""Serve ``on_line(conn, line)`` for every line received; return the server.

        $lines_how

        Args:
            on_line: a plain function called with the ``LineConnection`` and
                each line, in order, as ``recv_line`` returns it (no line end;
                an empty line is ``b"\r\n"``).  A return value other than
                ``None`` (bytes or str) is sent as by ``send_line``.
            host: a name or numeric address to listen on, as for ``serve``.
            port: the port; 0 picks a free one.
            on_connect: called once with the connection when it opens (after
                the TLS handshake).
            on_close: called once with the connection and ``None`` (an orderly
                end) or the exception that ended it.
            max_length: the longest line accepted; a longer one closes its
                connection.
            $serve_options
            call_timeout: a connection that completes no line within this many
                seconds is closed.
            reuse_port: set ``SO_REUSEPORT`` (several processes on one port).

        Returns:
            The ``$Server``, listening and already accepting.

        Raises:
            TypeError: a callback that is not callable or is a coroutine
                function, or an option of the wrong type.
            $serve_errors
        """,
    "run_server": r"""Serve ``handler`` until SIGINT or SIGTERM; return the final counters.

        $run_how

        With ``workers`` above one, worker processes are forked (before any
        thread or event loop exists), each serving on its own ``SO_REUSEPORT``
        listener of the same address; the parent serves nothing, restarts a
        worker that dies, passes the signals on, and returns when every worker
        has ended.

        Args:
            handler: as for ``serve``; with ``lines=True``, the ``on_line``
                callback of ``serve_lines``.
            host: where to listen, as for ``serve``.
            port: the port; 0 picks a free one (resolved once, by the parent).
            workers: how many processes serve: 1 serves in this process, 0
                means one per CPU.
            grace: the shutdown grace period, in seconds.
            $uvloop_arg
            lines: serve ``handler`` as ``serve_lines`` does (``options`` may
                then hold ``on_connect``, ``on_close`` and ``max_length`` too).
            options: ``serve``'s keyword options (``max_connections``, ...).

        Returns:
            The final ``ServerStats`` (with workers, their sum).

        Raises:
            TypeError: ``handler`` does not fit (as for ``serve``, or
                ``serve_lines`` with ``lines=True``), ``lines`` is not a bool,
                an unknown option, or an option of the wrong type.
            ValueError: a negative ``workers`` or ``grace``, ``workers > 1``
                where fork or ``SO_REUSEPORT`` is missing, or what ``serve``
                refuses.
            AddressError: as for ``serve``.
            OSError: as for ``serve``.
            $run_errors
        """,
}

#: The texts of the module functions both faces define.
FUNCTIONS = Table(
    _FUNCTION_TEXTS,
    {
        "serve_options": _SERVE_OPTIONS,
        "serve_errors": _SERVE_ERRORS,
        "wrap_busy": ("BusyError: another thread is using ``sock``.", ""),
        "per_connection": ("in a thread per connection", "in a task per connection"),
        "handler_arg": (
            "handler: a function, run in a thread of its own for each connection\n"
            "    and called with it: a buffered ``Socket``, Nagle off, its TLS\n"
            "    handshake done.  The server closes the connection when ``handler``\n"
            "    returns or raises, and logs what escaped it.",
            "handler: a coroutine function, run in a task of its own for each\n"
            "    connection and called with it: a buffered ``AsyncSocket``, Nagle\n"
            "    off, its TLS handshake done.  The server closes the connection when\n"
            "    ``handler`` returns or raises, and logs what escaped it.",
        ),
        "handler_unfit": (
            "TypeError: ``handler`` is not callable, or is a coroutine function; or\n"
            "    an option of the wrong type.",
            "TypeError: ``handler`` is not a coroutine function, or an option of\n"
            "    the wrong type.",
        ),
        "lines_how": (
            "The blocking twin of ``asyncnet.serve_lines``: the same callbacks,\n"
            "run in each connection's own thread, with every guarantee of ``serve``.",
            "No task runs per line or per connection: the callbacks are plain\n"
            "functions called from the event loop's receive path, with every\n"
            "guarantee of ``serve`` (SPEC section 11).",
        ),
        "run_how": (
            "With one worker it is ``serve`` and ``serve_forever`` in this process.",
            "A plain blocking function that runs an event loop of its own, like\n"
            "``asyncio.run``; with one worker it is ``serve`` and ``serve_forever``\n"
            "on that loop.",
        ),
        "uvloop_arg": ("", "uvloop: run on uvloop instead of asyncio's default loop."),
        "run_errors": (
            "RuntimeError: ``workers > 1`` outside the main thread (signals need it).",
            "ImportError: ``uvloop=True`` without uvloop installed.\n"
            "RuntimeError: called while an event loop runs in this thread, or\n"
            "    ``workers > 1`` outside the main thread (signals need it).",
        ),
    },
)
