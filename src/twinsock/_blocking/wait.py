"""How the blocking shell waits: ``poll`` bounded by a deadline.

How this works.  Blocking sockets stay in blocking mode, so a call without a
timeout is one plain system call.  A call with a timeout first tries the
system call with ``MSG_DONTWAIT`` (data is often there already) and only on
``BlockingIOError`` polls for at most the deadline's remaining time.
"""

from __future__ import annotations

import select
import socket

from twinsock._core.deadline import Deadline

__all__ = ["wait_readable", "wait_writable", "wait_any_writable"]


def _poll(fd: int, events: int, deadline: Deadline, where: str) -> None:
    poller = select.poll()
    poller.register(fd, events)
    remaining = deadline.remaining()
    if remaining == 0.0:
        if not poller.poll(0):
            raise deadline.error(where)
        return
    timeout_ms = None if remaining is None else max(1, int(remaining * 1000 + 0.999))
    if not poller.poll(timeout_ms) and deadline.expired():
        raise deadline.error(where)


def wait_readable(sock: socket.socket, deadline: Deadline, where: str = "") -> None:
    """Return once ``sock`` is readable; raise ``NetTimeout`` at the deadline."""
    _poll(sock.fileno(), select.POLLIN, deadline, where)


def wait_writable(sock: socket.socket, deadline: Deadline, where: str = "") -> None:
    """Return once ``sock`` is writable; raise ``NetTimeout`` at the deadline."""
    _poll(sock.fileno(), select.POLLOUT, deadline, where)


def wait_any_writable(socks: list[socket.socket], timeout: float | None) -> list[socket.socket]:
    """The sockets of ``socks`` that became writable (or failed) within ``timeout``."""
    poller = select.poll()
    by_fd = {}
    for sock in socks:
        by_fd[sock.fileno()] = sock
        poller.register(sock, select.POLLOUT)
    timeout_ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return [by_fd[fd] for fd, _ in poller.poll(timeout_ms)]
