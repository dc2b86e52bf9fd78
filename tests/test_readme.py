"""The README's first command: bare ``twinsock`` runs the chat server on 127.0.0.1:12345.

Binding a fixed port in a test is fragile, so this test only needs to know
who holds 12345: it holds the port itself (or finds it taken), and bare
``twinsock`` must then fail exactly as ``twinsock chat`` does, naming the
chat command and the busy address, with exit status 1 and no traceback.
The holder sets ``SO_REUSEADDR`` as the server does: connections of an
earlier run (the README's own first command) may still sit in TIME_WAIT on
12345, which would keep a plain ``bind`` out and let the server start.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys


def test_bare_twinsock_is_the_chat_server_on_its_default_port() -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError):
        holder.bind(("127.0.0.1", 12345))
        holder.listen()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "twinsock"], capture_output=True, text=True, timeout=30
        )
    finally:
        holder.close()
    assert result.returncode == 1
    assert result.stderr.startswith("twinsock chat:")
    assert "in use" in result.stderr
    assert "Traceback" not in result.stderr
