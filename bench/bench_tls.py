"""TLS line echo and memory per idle TLS connection: twinsock against asyncio streams with ``ssl=``.

How this works: a throwaway CA from ``trustme`` issues a certificate for
127.0.0.1 into a temporary folder. Echo: each TLS server (``servers.py``:
``asyncio_streams_tls``, ``twinsock_async_tls``) runs in its own process
pinned to one CPU; ``loadgen_tls`` (the C load generator over OpenSSL, pinned
to the other CPU) keeps CONNS connections with one line in flight each and
measures requests/s after a warm-up; servers alternate for ROUNDS rounds and
medians are reported. Memory: a fresh child process (``--memory-child``)
serves and connects PAIRS TLS connections to itself (client and server in one
process, as issue 4 measures), does one echo round trip on each, and reports
its RSS growth per client+server pair. Issue 4's bars: twinsock >= 1.2x
asyncio streams requests/s on the default loop; memory per pair at most half
of asyncio streams'.

The twinsock side needs the TLS issue's ``twinsock.tls`` and
``asyncnet.wrap_socket`` / ``wrap_connected_socket``; until they exist its rows
read "not available".

    python bench/bench_tls.py [--conns 100] [--pairs 1000] [--loops default,uvloop] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    ECHO_HEADERS,
    HOST,
    Pinning,
    Samples,
    ServerSpec,
    add_common_args,
    apply_quick,
    echo_rows,
    fmt,
    interleaved_echo,
    paired_ratio,
    proc_status_kib,
    progress,
    ratio,
    table,
)

LINE = b"x" * 63 + b"\n"


def make_certs(folder: Path) -> dict[str, str]:
    """Write a CA and a 127.0.0.1 server certificate (trustme); return the paths."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    with open(paths["cert"], "wb") as chain:
        for blob in cert.cert_chain_pems:
            chain.write(blob.bytes())
    return {k: str(v) for k, v in paths.items()}


# -- memory: one child process holds PAIRS client+server TLS pairs -------------


async def hold_asyncio_pairs(pairs: int, certs: dict[str, str]) -> int:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs["cert"], certs["key"])
    client_ctx = ssl.create_default_context(cafile=certs["ca"])
    held: list[Any] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()

    server = await asyncio.start_server(serve, HOST, 0, ssl=server_ctx, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    clients = []
    for _ in range(pairs):
        reader, writer = await asyncio.open_connection(HOST, port, ssl=client_ctx)
        writer.write(LINE)
        await writer.drain()
        if await reader.readline() != LINE:
            raise RuntimeError("bad echo")
        clients.append((reader, writer))
    await asyncio.sleep(0.5)
    return len(clients)


async def hold_twinsock_pairs(pairs: int, certs: dict[str, str]) -> int:
    from twinsock import asyncnet, tls

    server_ctx = tls.new_context(verify_mode=tls.VerifyMode.NONE, cert_file=certs["cert"],
                                 key_file=certs["key"])
    client_ctx = tls.new_context(verify_mode=tls.VerifyMode.PEER, ca_file=certs["ca"])
    listener = asyncnet.AsyncSocket()
    asyncnet.wrap_socket(server_ctx, listener)
    listener.bind_addr(0, HOST)
    listener.listen(4096)
    port = listener.get_local_addr()[1]
    served: list[Any] = []

    async def serve(conn: Any) -> None:
        while line := await conn.recv_line():
            await conn.send(line + b"\n")

    async def accept_loop() -> None:
        while True:
            conn = await listener.accept()
            served.append(asyncio.create_task(serve(conn)))

    acceptor = asyncio.create_task(accept_loop())
    clients = []
    for _ in range(pairs):
        sock = asyncnet.AsyncSocket()
        asyncnet.wrap_socket(client_ctx, sock)
        await sock.connect(HOST, port)
        await sock.send(LINE)
        if await sock.recv_line() != LINE[:-1]:
            raise RuntimeError("bad echo")
        clients.append(sock)
    await asyncio.sleep(0.5)
    acceptor.cancel()
    return len(clients)


def memory_child(kind: str, pairs: int, certs: dict[str, str], use_uvloop: bool) -> None:
    """Entry point of the child process: print JSON with the RSS growth per pair."""
    holders = {"asyncio_streams": hold_asyncio_pairs, "twinsock_async": hold_twinsock_pairs}
    if kind == "twinsock_async":
        try:
            from twinsock import asyncnet, tls  # noqa: F401

            asyncnet.wrap_socket  # noqa: B018
        except (ImportError, AttributeError) as exc:
            print(json.dumps({"unavailable": str(exc)}))
            return
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # one pair first, so one-time costs (ssl contexts, imports) are not counted
    asyncio.run(holders[kind](1, certs))
    before = proc_status_kib(os.getpid(), "VmRSS")
    held = asyncio.run(holders[kind](pairs, certs))
    after = proc_status_kib(os.getpid(), "VmRSS")
    print(json.dumps({"held": held, "before_kib": before, "after_kib": after,
                      "per_pair_kib": (after - before) / held}))


def run_memory(kind: str, pairs: int, certs: dict[str, str], use_uvloop: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--memory-child", kind, "--pairs", str(pairs),
           "--certs", json.dumps(certs)]
    if use_uvloop:
        cmd.append("--uvloop")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return {"unavailable": f"failed: {proc.stderr.strip().splitlines()[-1:]}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- main -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> list[list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, duration=2.0, warmup=0.5, rounds=5)
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--line", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--loops", default="default,uvloop")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--certs", help=argparse.SUPPRESS)
    parser.add_argument("--uvloop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.pairs, json.loads(args.certs), args.uvloop)
        return []
    apply_quick(args)
    if args.quick:
        args.pairs = min(args.pairs, 100)
    pinning = Pinning.choose(not args.no_pin)
    summary: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp))
        tls_args = ("--cert", certs["cert"], "--key", certs["key"])
        for loop in args.loops.split(","):
            uv = loop == "uvloop"
            suffix = " (uvloop)" if uv else ""
            specs = [
                ServerSpec(f"twinsock_async_tls{suffix}", "twinsock_async_tls", uv, tls_args, True),
                ServerSpec(f"asyncio_streams_tls{suffix}", "asyncio_streams_tls", uv, tls_args,
                           True),
            ]
            progress(f"bench_tls: {loop} loop, {args.conns} TLS connections, {args.line}-byte "
                     f"lines, {args.rounds} rounds of {args.duration} s")
            results = interleaved_echo(specs, args.conns, args.line, args.duration, args.warmup,
                                       args.rounds, pinning)
            twin, streams = results[specs[0].label], results[specs[1].label]
            print(f"\nTLS echo, {loop} loop, {args.conns} connections, {args.line}-byte lines "
                  f"(median of {args.rounds} rounds; ratios to {streams.label})")
            print(table(ECHO_HEADERS, echo_rows(results, streams.label)))
            paired = paired_ratio(twin, streams) if twin.values else None
            summary.append([f"echo req/s, {loop} loop", fmt(twin.median), fmt(streams.median),
                            ratio(twin.median, streams.median),
                            "n/a" if paired is None else f"{paired:.2f}"])

        for loop in args.loops.split(","):
            uv = loop == "uvloop"
            mem: dict[str, Samples] = {}
            for kind in ("twinsock_async", "asyncio_streams"):
                t0 = time.monotonic()
                res = run_memory(kind, args.pairs, certs, uv)
                samples = mem[kind] = Samples(kind)
                if "unavailable" in res:
                    samples.unavailable = res["unavailable"]
                    progress(f"  memory {kind} ({loop}): not available: {res['unavailable']}")
                    continue
                samples.values.append(float(res["per_pair_kib"]))
                progress(f"  memory {kind} ({loop}): {res['held']} pairs, RSS "
                         f"{res['before_kib']:,} -> {res['after_kib']:,} KiB = "
                         f"{res['per_pair_kib']:.1f} KiB/pair ({time.monotonic() - t0:.0f} s)")
            twin_m, streams_m = mem["twinsock_async"], mem["asyncio_streams"]
            summary.append([f"KiB per idle TLS pair, {loop} loop", fmt(twin_m.median, 1),
                            fmt(streams_m.median, 1), ratio(twin_m.median, streams_m.median),
                            ""])
    print(f"\nTLS summary ({args.pairs:,} pairs for memory)")
    print(table(["measure", "twinsock", "asyncio streams ssl=", "ratio", "paired ratio"],
                summary))
    print("bars (issue 4): echo req/s ratio >= 1.2 on the default loop; memory ratio <= 0.5")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
