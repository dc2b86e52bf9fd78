"""One test body for both socket kinds.

A *kind* creates twinsock sockets and runs their methods.  ``BlockingKind``
calls ``net.Socket`` directly.  ``AsyncKind`` owns an event loop running in a
thread (the default loop or uvloop) and runs every ``AsyncSocket`` method
there, waiting for coroutines, so a test written in plain blocking style
exercises the async socket too.  Tests therefore never duplicate a behaviour
per kind: they ask the fixture for a kind and use the proxy it returns.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from collections.abc import Callable
from typing import Any


class BlockingKind:
    name = "blocking"

    def __init__(self) -> None:
        from twinsock import net

        self.module = net

    def new(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.Socket(*args, **kwargs)

    def from_native(self, sock: socket.socket, **kwargs: Any) -> Any:
        return self.module.Socket.from_native(sock, **kwargs)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a module-level function of the kind (``dial``, ...)."""
        return fn(*args, **kwargs)

    def close(self) -> None:
        pass


class AsyncProxy:
    """Runs every method of an ``AsyncSocket`` on the kind's loop, blocking."""

    def __init__(self, kind: AsyncKind, target: Any) -> None:
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_target", target)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._kind.run_sync(attr, *args, **kwargs)

        return call

    def __enter__(self) -> AsyncProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncKind:
    def __init__(self, use_uvloop: bool) -> None:
        from twinsock import asyncnet

        self.module = asyncnet
        self.name = "uvloop" if use_uvloop else "asyncio"
        if use_uvloop:
            import uvloop

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Proxies stand for the socket they wrap when passed to module functions.
        args = tuple(a._target if isinstance(a, AsyncProxy) else a for a in args)

        async def runner() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return self.wrap(result)

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout=60)

    def wrap(self, value: Any) -> Any:
        if isinstance(value, self.module.AsyncSocket):
            return AsyncProxy(self, value)
        if isinstance(value, tuple) and value and isinstance(value[0], self.module.AsyncSocket):
            return (AsyncProxy(self, value[0]), *value[1:])
        return value

    def new(self, *args: Any, **kwargs: Any) -> Any:
        return self.run_sync(self.module.AsyncSocket, *args, **kwargs)

    def from_native(self, sock: socket.socket, **kwargs: Any) -> Any:
        return self.run_sync(self.module.AsyncSocket.from_native, sock, **kwargs)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.run_sync(fn, *args, **kwargs)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def available_kinds() -> list[str]:
    kinds = ["blocking"]
    try:
        import twinsock.asyncnet  # noqa: F401
    except ImportError:
        return kinds
    kinds.append("asyncio")
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return kinds
    kinds.append("uvloop")
    return kinds


def make_kind(name: str) -> Any:
    if name == "blocking":
        return BlockingKind()
    return AsyncKind(use_uvloop=(name == "uvloop"))
