"""The chat server from Nim's asyncnet documentation, written with twinsock.

Same structure as the seed (seeds/000): a list of clients, one task per client
that reads lines and sends each one to every client, and a serve() loop that
accepts forever.  Lines go out with ``send_line``, which sends the empty-line
sentinel ``b"\\r\\n"`` as one ``b"\\r\\n"`` (the seed's ``line & "\\c\\L"``
turns an empty line into two).  Two additions keep one client from disturbing
the others: a client that disconnects is removed from the list, and a client
whose connection broke is skipped when relaying.

Run it with ``python examples/chat_server.py`` (or ``twinsock chat``, the
hardened version in the package), then connect with ``twinsock connect
127.0.0.1 12345`` from two terminals.
"""

from __future__ import annotations

import asyncio
import contextlib

from twinsock.asyncnet import AsyncSocket, SockOpt

clients: list[AsyncSocket] = []


async def process_client(client: AsyncSocket) -> None:
    while True:
        line = await client.recv_line()
        if len(line) == 0:
            break
        for c in list(clients):
            # A client whose connection broke is skipped; its own task removes it.
            with contextlib.suppress(OSError):
                await c.send_line(line)
    clients.remove(client)
    client.close()


async def serve(
    host: str = "127.0.0.1", port: int = 12345, ready: asyncio.Future[int] | None = None
) -> None:
    clients.clear()
    server = AsyncSocket()
    server.set_sock_opt(SockOpt.REUSE_ADDR, True)
    server.bind_addr(port, host)
    server.listen()
    if ready is not None:
        ready.set_result(server.get_local_addr()[1])
    tasks = set()
    try:
        while True:
            client = await server.accept()
            clients.append(client)
            task = asyncio.ensure_future(process_client(client))
            tasks.add(task)  # keep a reference, like asyncCheck does
            task.add_done_callback(tasks.discard)
    finally:
        server.close()


if __name__ == "__main__":
    asyncio.run(serve())
