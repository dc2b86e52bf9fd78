r"""The texts of the methods ``net.Socket`` and ``asyncnet.AsyncSocket`` both define.

(``twinsock._core.docs`` says how ``$word`` works; the methods both twins
inherit from ``SocketBase`` keep their texts in ``twinsock._base``.)
"""

from __future__ import annotations

from twinsock._core.docs import Table

__all__ = ["SOCKET"]

_WORDS: dict[str, str | tuple[str, str]] = {
    # -- Args entries --------------------------------------------------------------------
    "timeout_arg": r"""timeout: seconds for the whole call, however many waits it makes;
    ``None``: the socket's ``default_timeout``; ``math.inf``: no limit;
    ``0``: do not wait.""",
    "recv_flags_arg": r"""flags: ``SocketFlag.SAFE_DISCONN`` (the default) reports a
    disconnection (reset, broken pipe) as the end of the stream;
    ``SocketFlag.PEEK`` returns the data without consuming it.""",
    "max_length_arg": "max_length: the longest line accepted, its terminator not counted.",
    "data_arg": "data: bytes-like, or ``str`` (sent as UTF-8).",
    "send_flags_arg": r"""flags: kept for the seed's signature and ignored: sending never
    hides an error.""",
    # -- Raises lines --------------------------------------------------------------------
    "closed": r"""SocketClosedError: the socket is closed, or another $thread closed it
    while the call waited.""",
    "read_failed": r"""BusyError: another $thread is already reading from the socket.
OSError: the connection failed (a disconnection too, when ``flags`` lack
    ``SAFE_DISCONN``: ``ConnectionResetError``, ...), or the socket is not
    connected.
SslError: (TLS) a record that does not decrypt, or the stream ended without
    close_notify and the context does not allow truncation.""",
    "bad_timeout": "ValueError: a negative or NaN ``timeout``.",
    "send_failed": r"""NetTimeout: the data could not all be handed over in time; part of
    it may have gone out.
BrokenPipeError: the peer is gone (``ConnectionResetError``: it reset the
    connection); both socket kinds and every event loop raise these.
OSError: another failure of the connection (``ETIMEDOUT``, ...).
BusyError: another $thread is already sending on the socket.""",
    "connect_claims": r"""BusyError: another $thread is using the socket (connecting claims both
    its sides).""",
    # -- what differs ----------------------------------------------------------------------
    "adopted_mode": (
        "The OS socket is put in blocking mode (its own timeout is removed: the\n"
        "calls' ``timeout`` arguments are the deadlines).",
        "The OS socket is put in non-blocking mode.",
    ),
    "close_tls": (
        "On TLS, close_notify goes out first (best effort, within a bounded time).",
        "Data already queued is still written, and on TLS close_notify is queued,\n"
        "in the background for at most one second; then the connection is\n"
        "aborted, so a peer that never reads cannot hold the file descriptor\n"
        "(``aclose`` waits for the same).",
    ),
    "skip_failed": (
        "OSError: the connection failed with an error other than a disconnection\n"
        "    (which ends the stream early).\n"
        "SslError: (TLS) a record that does not decrypt, or the stream ended\n"
        "    without close_notify and the context does not allow truncation.",
        "",
    ),
    "send_returns": (
        "Returns once every byte was handed to the OS.",
        "Returns once the data is handed to the OS or queued in the transport\n"
        "below ``WRITE_HIGH_WATER`` bytes; above that mark it waits for the peer\n"
        "to read (backpressure), so an unread peer cannot grow memory.",
    ),
    "try_send_how": (
        "It waits as ``send`` without a timeout does (up to ``default_timeout``).",
        "It never waits: the data is queued for the transport, or refused.",
    ),
    "try_send_false": (
        "the socket is closed or broken, the send timed out, or another\n"
        "    thread is sending",
        "the socket is closed or broken, another task is sending, or the\n"
        "    transport holds more than ``WRITE_HIGH_WATER`` bytes",
    ),
    "recv_into_direct": (
        "Without TLS, requests of 64 KiB or more (and every read of an unbuffered\n"
        "socket) go straight into ``buffer``, not through the read buffer.",
        "",
    ),
    "try_send_raises": "TypeError: ``data`` is neither bytes-like nor ``str``.",
    "accept_busy": ("", "BusyError: another task is already accepting on this listener."),
}

_TEXTS = {
    "from_native": r"""Adopt an existing OS socket.

        $adopted_mode

        Args:
            sock: a ``socket.socket`` of any family and type, or the number of an
                open socket descriptor; the new ``$Socket`` owns it from now on.
            buffered: read through the read-ahead buffer (see ``buffered``).

        Returns:
            The new ``$Socket``, connected (or listening) as ``sock`` was.

        Raises:
            TypeError: ``sock`` is neither a ``socket.socket`` nor an ``int``.
            SocketClosedError: ``sock`` is already closed.
            OSError: ``sock`` is a number that is no open socket descriptor
                (``EBADF``, ``ENOTSOCK``).
        """,
    "close": r"""Close the socket now; closing a closed socket does nothing.

        Every call waiting on the socket in another $thread ends at once with
        ``SocketClosedError``, as does every later I/O call; bytes received but
        not read are dropped.

        $close_tls
        """,
    "recv_line": r"""Read one line (SPEC section 5).

        A line ends at ``b"\n"``; a ``b"\r"`` just before it is stripped, and a
        lone ``b"\r"`` is ordinary data.  A line the buffer already holds is
        returned without a system call.

        Args:
            $timeout_arg
            $recv_flags_arg
            $max_length_arg

        Returns:
            The line without its terminator, ``b"\r\n"`` for an empty line, or
            ``b""`` at the end of the stream (a partial last line stays buffered
            for ``read_line`` and ``recv``).

        Raises:
            NetTimeout: no whole line arrived in time; nothing is consumed.
            LineTooLong: the line is longer than ``max_length``; nothing is
                consumed and the socket stays usable.
            TypeError: ``timeout``, ``flags`` or ``max_length`` of the wrong type.
            ValueError: a negative or NaN ``timeout``, a negative ``max_length``.
            $closed
            $read_failed
            $loop_error
        """,
    "recv_line_into": r"""``recv_line`` into ``buffer``: cleared first, it then holds the line.

        Args:
            buffer: the ``bytearray`` to fill; it is left as it was when the call
                raises.
            $timeout_arg
            $recv_flags_arg
            $max_length_arg

        Raises:
            TypeError: ``buffer`` is not a ``bytearray``, or another argument has
                the wrong type.
            NetTimeout: no whole line arrived in time; nothing is consumed.
            LineTooLong: the line is longer than ``max_length``; nothing is consumed.
            ValueError: a negative or NaN ``timeout``, a negative ``max_length``.
            $closed
            $read_failed
            $loop_error
        """,
    "read_line": r"""Read one line without sentinels: a timeout is a result, not an error.

        Args:
            $timeout_arg
            $recv_flags_arg
            $max_length_arg

        Returns:
            A ``LineResult(status, line)``.  ``FULL_LINE`` with the line without
            its terminator (an empty line is ``b""``); ``PARTIAL_LINE`` when the
            stream ended mid-line, with the partial data (consumed unless
            ``PEEK``); ``DISCONNECTED`` when the stream ended with nothing
            buffered; ``NONE`` when the timeout expired first (nothing consumed).

        Raises:
            LineTooLong: the line is longer than ``max_length``; nothing is consumed.
            TypeError: ``timeout``, ``flags`` or ``max_length`` of the wrong type.
            ValueError: a negative or NaN ``timeout``, a negative ``max_length``.
            $closed
            $read_failed
            $loop_error
        """,
    "recv": r"""Receive ``size`` bytes.

        A buffered socket waits until ``size`` bytes arrived or the stream
        ended; an unbuffered one returns what has arrived, at least one byte.
        Memory grows with what arrives, never with ``size``: a peer-chosen
        ``recv(2**31)`` allocates nothing up front.

        Args:
            size: how many bytes to read; ``0`` returns ``b""`` at once.
            $timeout_arg
            $recv_flags_arg

        Returns:
            The bytes, fewer than ``size`` only at the end of the stream, and
            ``b""`` once it ended.

        Raises:
            NetTimeout: not enough arrived in time; what did stays buffered.
            TypeError: ``size`` is not an int, or ``timeout`` or ``flags`` has the
                wrong type.
            ValueError: a negative ``size``, a negative or NaN ``timeout``.
            $closed
            $read_failed
            $loop_error
        """,
    "recv_into": r"""Like ``recv``, into a writable buffer.

        $recv_into_direct

        Args:
            buffer: a writable bytes-like object (``bytearray``, ``memoryview``,
                ``array``, ...).
            size: how many bytes to read; ``None``: ``len(buffer)`` (in bytes).
            $timeout_arg
            $recv_flags_arg

        Returns:
            How many bytes were written to the start of ``buffer``; ``0`` at the
            end of the stream or for ``size=0``.

        Raises:
            NetTimeout: not enough arrived in time; what did stays buffered for
                the next read.
            TypeError: ``buffer`` is not a writable bytes-like object, ``size`` is
                not an int, or ``timeout`` or ``flags`` has the wrong type.
            ValueError: a negative ``size`` or one larger than ``buffer``, a
                negative or NaN ``timeout``.
            $closed
            $read_failed
            $loop_error
        """,
    "skip": r"""Discard the next ``size`` bytes.

        Args:
            size: how many bytes to discard.
            $timeout_arg

        Returns:
            How many bytes were discarded, ``size`` unless the stream ended
            first.

        Raises:
            NetTimeout: not enough arrived in time (what did is discarded).
            TypeError: ``size`` is not an int, or ``timeout`` is not a number.
            ValueError: a negative ``size``, a negative or NaN ``timeout``.
            $closed
            BusyError: another $thread is already reading from the socket.
            $skip_failed
            $loop_error
        """,
    "recv_until": r"""Read up to and including ``separator`` (asyncio's ``readuntil``).

        Args:
            separator: the non-empty bytes-like delimiter to wait for (``str`` is
                refused: the bytes on the wire are what is searched).
            $timeout_arg
            $recv_flags_arg
            max_length: the most bytes accepted before the separator.

        Returns:
            The bytes up to and including the first ``separator``, or ``b""`` at
            the end of the stream with nothing buffered.

        Raises:
            LineTooLong: ``max_length`` bytes arrived without the separator;
                nothing is consumed.
            IncompleteRead: the stream ended without the separator; the bytes
                stay buffered (``partial`` holds a copy).
            NetTimeout: the separator did not arrive in time; nothing is consumed.
            TypeError: ``separator`` is not bytes-like (or is a ``str``), or
                another argument has the wrong type.
            ValueError: an empty ``separator``, a negative ``max_length``, a
                negative or NaN ``timeout``.
            $closed
            $read_failed
            $loop_error
        """,
    "send": r"""Send all of ``data``.

        $send_returns

        Args:
            $data_arg
            $send_flags_arg
            $timeout_arg

        Raises:
            TypeError: ``data`` is neither bytes-like nor ``str``, or ``timeout``
                is not a number.
            $bad_timeout
            $closed
            $send_failed
            $loop_error
        """,
    "try_send": r"""Send ``data`` as ``send`` does, answering ``False`` instead of raising.

        $try_send_how

        Args:
            $data_arg

        Returns:
            ``True`` once the data went out (or was queued), ``False`` when
            $try_send_false.

        Raises:
            $try_send_raises
        """,
    "send_line": r"""Send ``data`` and ``b"\r\n"``.

        The empty-line sentinel ``b"\r\n"`` that ``recv_line`` returns goes out
        as one ``b"\r\n"``, so relaying ``recv_line`` results keeps every line
        as it was.

        $send_returns

        Args:
            data: the line without its terminator: bytes-like, or ``str`` (sent
                as UTF-8).
            $send_flags_arg
            $timeout_arg

        Raises:
            TypeError: ``data`` is neither bytes-like nor ``str``, or ``timeout``
                is not a number.
            $bad_timeout
            $closed
            $send_failed
            $loop_error
        """,
    "connect": r"""Connect to ``address:port``, trying each resolved address of the socket's
        family in turn.

        One deadline covers resolution, every attempt and, on a socket made TLS
        by ``wrap_socket``, the handshake (the certificate is checked against
        ``address``, which is also sent as SNI unless it is an IP literal).

        Args:
            address: a host name, or a numeric address of the socket's family.
            port: the port, 0..65535.
            $timeout_arg

        Raises:
            NetTimeout: no attempt (or the handshake) finished in time.
            ConnectionRefusedError: every attempt failed (or another ``OSError``):
                the last attempt's error, with one note per attempt (address,
                error, elapsed time).
            AddressError: ``port`` out of range, a numeric ``address`` of the
                other family, or text that can only be a malformed IP address.
            OSError: ``address`` does not resolve (``socket.gaierror``).
            SslError: (TLS) the handshake failed (``PskError`` for a PSK one); the
                socket is closed.
            TypeError: ``address`` is not a ``str``, or ``timeout`` not a number.
            $bad_timeout
            $closed
            $connect_claims
            $loop_error
        """,
    "connect_unix": r"""Connect an AF_UNIX socket to ``path``.

        Args:
            path: the listener's path (``str``, ``bytes`` or path-like); one that
                starts with ``"\0"`` is a Linux abstract name.
            $timeout_arg

        Raises:
            NetTimeout: the connection was not made in time (the listener's
                backlog stayed full).
            FileNotFoundError: nothing is bound at ``path``.
            ConnectionRefusedError: nobody listens at ``path``.
            ValueError: not an AF_UNIX socket, an empty ``path``, or a negative
                or NaN ``timeout``.
            TypeError: ``path`` is not a ``str``, ``bytes`` or path-like, or
                ``timeout`` not a number.
            $closed
            $connect_claims
            $loop_error
        """,
    "accept": r"""Wait for a client and return its connected socket.

        The client inherits ``buffered`` and, from a listener made TLS by
        ``wrap_socket``, TLS with the handshake done: a client whose handshake
        fails or stalls past the handshake timeout (10 s) is closed and
        logged, and the wait goes on.

        Args:
            flags: ``SAFE_DISCONN`` (the default) skips a client that reset its
                connection before it was accepted.
            $timeout_arg
            inheritable: let child processes inherit the client's descriptor.

        Returns:
            The client's ``$Socket``.

        Raises:
            NetTimeout: no client arrived in time.
            TypeError: ``flags`` is not a ``SocketFlag``, or ``timeout`` not a
                number.
            $bad_timeout
            SocketClosedError: the listener is closed, or another $thread closed
                it while the call waited.
            $accept_busy
            OSError: the socket is not listening (``EINVAL``), or the OS refused
                (``EMFILE``, ...).
            $loop_error
        """,
    "accept_addr": r"""Wait for a client; return its connected socket and its address.

        The client is made as by ``accept``.

        Args:
            flags: ``SAFE_DISCONN`` (the default) skips a client that reset its
                connection before it was accepted.
            $timeout_arg
            inheritable: let child processes inherit the client's descriptor.

        Returns:
            ``(client, address)``, the client's ``$Socket`` and its address text
            (IPv6 text for an IPv6 peer; the path, or ``""``, on Unix sockets).

        Raises:
            NetTimeout: no client arrived in time.
            TypeError: ``flags`` is not a ``SocketFlag``, or ``timeout`` not a
                number.
            $bad_timeout
            SocketClosedError: the listener is closed, or another $thread closed
                it while the call waited.
            $accept_busy
            OSError: the socket is not listening (``EINVAL``), or the OS refused
                (``EMFILE``, ...).
            $loop_error
        """,
    "recv_from": r"""Receive one datagram.

        Args:
            size: the most bytes to return; the rest of a longer datagram is
                dropped.
            flags: ``SocketFlag.PEEK`` leaves the datagram queued;
                ``SAFE_DISCONN`` changes nothing here.
            $timeout_arg

        Returns:
            ``(data, address, port)``, the datagram (cut to ``size``) and its
            sender's address text and port.

        Raises:
            NetTimeout: no datagram arrived in time.
            TypeError: ``size`` is not an int, ``flags`` not a ``SocketFlag``, or
                ``timeout`` not a number.
            ValueError: a negative ``size``, a negative or NaN ``timeout``.
            $closed
            BusyError: another $thread is already reading from the socket.
            OSError: the OS reported an error (on a connected UDP socket, a
                ``ConnectionRefusedError`` for an earlier datagram nobody took).
            $loop_error
        """,
    "send_to": r"""Send one datagram to ``address:port``.

        A host name tries each resolved address in turn.  There is no timeout:
        a datagram send waits only while the socket's send buffer is full.

        Args:
            address: a host name, or a numeric address of the socket's family.
            port: the port, 0..65535.
            $data_arg
            $send_flags_arg

        Raises:
            SslError: the socket is a TLS socket (datagrams are not encrypted).
            AddressError: ``port`` out of range, a numeric ``address`` of the
                other family, or text that can only be a malformed IP address.
            TypeError: ``data`` is neither bytes-like nor ``str``, or ``address``
                is not a ``str``.
            OSError: not a datagram socket (``EOPNOTSUPP``), a datagram too long
                (``EMSGSIZE``), a name that does not resolve, or every address
                failed (the last error, with one note per attempt).
            $closed
            BusyError: the send had to wait while another $thread was sending on
                the socket.
            $loop_error
        """,
}

_CLASS_TEXT = r"""$socket_kind with a read buffer, line reading and deadlines.

$loop_note

Args:
    domain: the address family (``Domain.AF_INET``, ``AF_INET6``,
        ``AF_UNIX``).
    sock_type: ``SockType.SOCK_STREAM``, ``SOCK_DGRAM``, ...
    protocol: ``Protocol.IPPROTO_TCP``, ``IPPROTO_UDP``, ...; on
        ``AF_UNIX`` the TCP and UDP values mean the family's default.
    buffered: read through the read-ahead buffer: a read may take more
        from the OS than it returns, and keeps the rest for the next one.
    inheritable: let child processes inherit the descriptor.

Raises:
    OSError: the OS refused the combination (``EAFNOSUPPORT``, a raw
        socket without the privilege, ...).
"""

_CLASS_WORDS: dict[str, str | tuple[str, str]] = {
    "socket_kind": ("A blocking socket", "An asyncio socket"),
    "loop_note": (
        "",
        "It runs on the event loop that first awaits one of its calls (the default\n"
        "loop or uvloop).",
    ),
}

#: The texts of the methods both socket twins define, and the class's own
#: (``shared_docs(SOCKET, ...)``).
SOCKET = Table(_TEXTS, _WORDS | _CLASS_WORDS, class_text=_CLASS_TEXT)
