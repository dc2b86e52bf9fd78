"""The ``twinsock`` command (SPEC section 8), run as ``python -m twinsock`` subprocesses.

Servers are started on port 0 and announce their port on stderr; the tests
talk to them with plain stdlib sockets and stop only the process they started
(``terminate`` on its pid), then check it ended quietly with status 0.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import twinsock
from openssl_peer import OPENSSL, free_port, s_server

PYTHON = [sys.executable, "-m", "twinsock"]
LISTENING = re.compile(r"listening on (\S+):(\d+)")


def run(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYTHON, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


class Proc:
    """A ``twinsock`` subprocess whose stderr lines are collected by a thread."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [*PYTHON, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.popen.stderr is not None
        for raw in self.popen.stderr:
            line = raw.decode(errors="replace")
            self.stderr.append(line)
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern.pattern!r} on stderr: {self.stderr}") from None
            if match := pattern.search(line):
                return match

    def port(self) -> int:
        return int(self.wait_for(LISTENING).group(2))

    def stop(self) -> int:
        """Terminate this process (by its pid) and return its exit status."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
        try:
            return self.popen.wait(20)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()

    def assert_quiet_exit(self) -> None:
        assert self.stop() == 0, self.stderr
        time.sleep(0.05)
        assert not any("Traceback" in line for line in self.stderr), self.stderr


@contextlib.contextmanager
def server(*args: str) -> Iterator[tuple[Proc, int]]:
    proc = Proc(*args)
    try:
        port = proc.port()
        yield proc, port
        proc.assert_quiet_exit()
    finally:
        proc.stop()


def needs_asyncnet() -> None:
    pytest.importorskip("twinsock.asyncnet", reason="twinsock.asyncnet has not landed yet")


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_port() -> int:
    return free_port()  # bound, never listened, closed: nothing answers there


# -- the error contract and --version ----------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"twinsock {twinsock.__version__}"


def test_help_exits_0() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("chat", "echo", "connect", "listen", "bench"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["connect", "127.0.0.1"], id="missing-port"),
        pytest.param(["connect", "127.0.0.1", "http"], id="port-not-a-number"),
        pytest.param(["connect", "127.0.0.1", "70000"], id="port-too-big"),
        pytest.param(["connect", "127.0.0.1", "0"], id="port-zero"),
        pytest.param(["connect", "127.0.0.1", "80", "--timeout", "-1"], id="bad-timeout"),
        pytest.param(["connect", "127.0.0.1", "80", "--psk-identity", "me"], id="psk-no-key"),
        pytest.param(["connect", "127.0.0.1", "80", "--psk-identity", "me", "--psk-key", "xyz"],
                     id="psk-key-not-hex"),
        pytest.param(["connect", "127.0.0.1", "80", "--insecure"], id="insecure-without-tls"),
        pytest.param(["connect", "127.0.0.1", "80", "--tls", "--insecure", "--ca", "f"],
                     id="insecure-and-ca"),
        pytest.param(["echo", "--tls"], id="tls-without-cert"),
        pytest.param(["echo", "--cert", "x.pem"], id="cert-without-tls"),
        pytest.param(["echo", "--port", "-5"], id="negative-port"),
        pytest.param(["chat", "--bogus"], id="unknown-option"),
        pytest.param(["listen"], id="listen-no-port"),
        pytest.param(["listen", "0", "--host", "not-an-address"], id="listen-bad-host"),
        pytest.param(["bench", "--connections", "0"], id="bench-no-connections"),
        pytest.param(["bench", "--seconds", "soon"], id="bench-bad-seconds"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("twinsock")
    assert result.stdout == ""


def test_connect_to_a_closed_port_exits_1_with_one_line() -> None:
    port = closed_port()
    result = run("connect", "127.0.0.1", str(port))
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert f"127.0.0.1:{port}" in line
    assert "refused" in line.lower()


def test_connect_to_an_unknown_host_exits_1_with_one_line() -> None:
    result = run("connect", "no-such-host.invalid", "80", "--timeout", "20")
    assert result.returncode == 1
    assert "no-such-host.invalid" in one_line(result.stderr)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")


def test_connect_to_a_closed_ipv6_port_names_it_in_brackets() -> None:
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    result = run("connect", "::1", str(port), timeout=30)
    assert result.returncode == 1
    assert f"[::1]:{port}" in one_line(result.stderr)


@pytest.mark.parametrize("command", ["chat", "echo", "listen"])
@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
def test_a_used_address_exits_1_naming_it(command: str, host: str) -> None:
    if command != "listen":
        needs_asyncnet()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as taken:
        taken.bind((host, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        if command == "listen":
            result = run("listen", str(port), "--host", host, timeout=30)
        else:
            result = run(command, "--host", host, "--port", str(port), timeout=30)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "in use" in line.lower()
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert where in line


@pytest.mark.parametrize("command", ["chat", "echo"])
@pytest.mark.parametrize("host", ["999.1.1.1", "127.0.0.1:80", "::1::2", ""])
def test_a_server_with_an_unparsable_host_exits_2_naming_it(command: str, host: str) -> None:
    needs_asyncnet()
    result = run(command, "--host", host, "--port", "0", timeout=30)
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert "--host" in line and repr(host) in line


@pytest.mark.parametrize("host", ["999.1.1.1", "1.2.3.4:80", "::1::2", ""])
def test_connect_to_an_unparsable_host_exits_2_naming_it(host: str) -> None:
    result = run("connect", host, "80", timeout=30)
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert "host" in line and repr(host) in line


def test_help_says_what_each_command_does() -> None:
    outputs = [run("--help").stdout]
    for command in ("chat", "echo", "connect", "listen", "bench"):
        result = run(command, "--help")
        assert result.returncode == 0
        outputs.append(result.stdout)
    for text in outputs:
        assert "seed" not in text.lower(), text
    assert "chat server" in outputs[0] and "echo server" in outputs[0]


# -- connect and listen ------------------------------------------------------------------


class LineEchoPeer:
    """A stdlib server thread: accepts one client, echoes its lines, closes at its end."""

    def __init__(self, wrap: Any = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.wrap = wrap
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        if self.wrap is not None:
            try:
                conn = self.wrap(conn)
            except OSError:  # the client refused the handshake (a test expects that)
                conn.close()
                return
        with conn:
            reader = conn.makefile("rb")
            for line in reader:
                self.received += line
                conn.sendall(b"echo: " + line)
            reader.close()
            if isinstance(conn, ssl.SSLSocket):
                with contextlib.suppress(OSError):
                    conn.unwrap()

    def close(self) -> None:
        self.thread.join(20)
        self.listener.close()


def test_connect_sends_stdin_lines_and_prints_received_lines() -> None:
    peer = LineEchoPeer()
    try:
        stdin = "hello\r\n\nlast without newline"
        result = run("connect", "127.0.0.1", str(peer.port), stdin=stdin)
    finally:
        peer.close()
    assert result.returncode == 0, result.stderr
    assert peer.received == b"hello\r\n\nlast without newline\n"
    assert result.stdout.splitlines() == ["echo: hello", "echo: ", "echo: last without newline"]
    assert "Traceback" not in result.stderr


def test_connect_ends_when_the_peer_closes() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def greet_and_close() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"bye\r\n")
        conn.close()

    thread = threading.Thread(target=greet_and_close, daemon=True)
    thread.start()
    proc = subprocess.Popen(
        [*PYTHON, "connect", "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,  # left open: the peer, not stdin, ends the session
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        thread.join(5)
        listener.close()
    assert proc.returncode == 0, err
    assert out == b"bye\n"


def test_listen_bridges_one_connection() -> None:
    proc = Proc("listen", "0")
    try:
        port = proc.port()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            proc.wait_for(re.compile("connection from 127.0.0.1:"))
            client.sendall(b"from the network\r\n")
            assert proc.popen.stdin is not None and proc.popen.stdout is not None
            assert proc.popen.stdout.readline() == b"from the network\n"
            proc.popen.stdin.write(b"from stdin\n")
            proc.popen.stdin.flush()
            assert recv_exactly(client, 11) == b"from stdin\n"
            proc.popen.stdin.close()  # end of stdin: the peer sees the end of the stream
            assert client.recv(10) == b""
        assert proc.popen.wait(20) == 0
        assert not any("Traceback" in line for line in proc.stderr)
    finally:
        proc.stop()


def test_listen_is_interrupted_quietly() -> None:
    proc = Proc("listen", "0")
    try:
        proc.port()
        proc.assert_quiet_exit()
    finally:
        proc.stop()


# -- echo ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("serving", [["--tasks"], []], ids=["tasks", "lines"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_echo_server(loop: str, serving: list[str]) -> None:
    needs_asyncnet()
    extra = [*serving]
    if loop == "uvloop":
        pytest.importorskip("uvloop")
        extra.append("--uvloop")
    with server("echo", "--port", "0", *extra) as (_proc, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"one\r\n\ntwo\nthr")
            client.sendall(b"ee\n")
            assert recv_exactly(client, 19) == b"one\r\n\r\ntwo\r\nthree\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as again:
            again.sendall(b"still here\n")
            assert recv_exactly(again, 12) == b"still here\r\n"


def test_echo_server_default_address() -> None:
    needs_asyncnet()
    proc = Proc("echo")
    try:
        match = proc.wait_for(re.compile(r"listening on|Address already in use|in use"))
        if match.group(0) != "listening on":
            pytest.skip("port 12345 is taken on this machine")
        line = proc.stderr[-1]
        assert "127.0.0.1:12345" in line
        proc.assert_quiet_exit()
    finally:
        proc.stop()


def test_no_command_runs_the_chat_server() -> None:
    needs_asyncnet()
    proc = Proc()
    try:
        match = proc.wait_for(re.compile(r"listening on|in use"))
        if match.group(0) != "listening on":
            pytest.skip("port 12345 is taken on this machine")
        assert "twinsock chat: listening on 127.0.0.1:12345" in proc.stderr[-1]
        with socket.create_connection(("127.0.0.1", 12345), timeout=10) as client:
            client.sendall(b"anyone?\n")
            assert recv_exactly(client, 9) == b"anyone?\r\n"
        proc.assert_quiet_exit()
    finally:
        proc.stop()


@pytest.mark.parametrize("serving", [["--tasks"], []], ids=["tasks", "lines"])
def test_echo_ctrl_c_exits_0_quietly(serving: list[str]) -> None:
    needs_asyncnet()
    proc = Proc("echo", "--port", "0", *serving)
    try:
        proc.port()
        os.kill(proc.popen.pid, signal.SIGINT)
        assert proc.popen.wait(20) == 0
        time.sleep(0.05)
        assert not any("Traceback" in line for line in proc.stderr), proc.stderr
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("certs")
    files = {"ca": folder / "ca.pem", "chain": folder / "chain.pem", "key": folder / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    with open(files["chain"], "wb") as chain:
        for blob in cert.cert_chain_pems:
            chain.write(blob.bytes())
    return {name: str(path) for name, path in files.items()}


@pytest.mark.parametrize("serving", [["--tasks"], []], ids=["tasks", "lines"])
def test_echo_server_over_tls(certs: dict[str, str], serving: list[str]) -> None:
    needs_asyncnet()
    from twinsock import asyncnet

    if not hasattr(asyncnet, "wrap_socket"):
        pytest.skip("asyncnet.wrap_socket has not landed yet")
    tls_args = ["--tls", "--cert", certs["chain"], "--key", certs["key"], *serving]
    with server("echo", "--port", "0", *tls_args) as (_proc, port):
        context = ssl.create_default_context(cafile=certs["ca"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(
            raw, server_hostname="localhost"
        ) as client:
            client.sendall(b"secret\n")
            assert recv_exactly(client, 8) == b"secret\r\n"


@pytest.fixture(scope="module")
def bad_files(certs: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Files that cannot serve as a certificate, key or CA file, beside the good ones."""
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("bad")
    garbage = folder / "garbage.pem"
    garbage.write_text("this is not a PEM file\n")
    broken = folder / "broken.pem"  # PEM markers around text that is not base64 DER
    broken.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
        "-----BEGIN PRIVATE KEY-----\nnot base64 either\n-----END PRIVATE KEY-----\n"
    )
    other_key = folder / "other-key.pem"
    trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(other_key))
    directory = folder / "a-directory"
    directory.mkdir()
    files = {
        "missing": str(folder / "no-such-file.pem"),
        "garbage": str(garbage),
        "broken": str(broken),
        "other_key": str(other_key),
        "directory": str(directory),
    }
    return {**certs, **files}


ECHO_TLS = ["echo", "--port", "0", "--tls"]


@pytest.mark.parametrize(
    ("args", "option", "file", "words"),
    [
        pytest.param([*ECHO_TLS, "--cert", "{missing}"], "--cert", "missing", ["no such file"],
                     id="cert-missing"),
        pytest.param([*ECHO_TLS, "--cert", "{chain}", "--key", "{missing}"], "--key", "missing",
                     ["no such file"], id="key-missing"),
        pytest.param(["connect", "127.0.0.1", "{port}", "--tls", "--ca", "{missing}"], "--ca",
                     "missing", ["no such file"], id="ca-missing"),
        pytest.param([*ECHO_TLS, "--cert", "{directory}"], "--cert", "directory", [],
                     id="cert-directory"),
        pytest.param([*ECHO_TLS, "--cert", "{garbage}", "--key", "{key}"], "--cert", "garbage",
                     ["certificate"], id="cert-garbage"),
        pytest.param([*ECHO_TLS, "--cert", "{key}", "--key", "{key}"], "--cert", "key",
                     ["certificate"], id="cert-is-a-key"),
        pytest.param([*ECHO_TLS, "--cert", "{chain}", "--key", "{garbage}"], "--key", "garbage",
                     ["private key"], id="key-garbage"),
        pytest.param(["connect", "127.0.0.1", "{port}", "--tls", "--ca", "{garbage}"], "--ca",
                     "garbage", ["certificate"], id="ca-garbage"),
        pytest.param(["connect", "127.0.0.1", "{port}", "--tls", "--ca", "{broken}"], "--ca",
                     "broken", [], id="ca-broken"),
        pytest.param([*ECHO_TLS, "--cert", "{broken}"], "--cert", "broken", [],
                     id="cert-broken"),
        pytest.param([*ECHO_TLS, "--cert", "{chain}"], "--cert", "chain",
                     ["no private key", "--key"], id="cert-without-key"),
        pytest.param([*ECHO_TLS, "--cert", "{chain}", "--key", "{other_key}"], "--key",
                     "other_key", ["does not match"], id="key-of-another-certificate"),
    ],
)
def test_a_bad_tls_file_exits_2_naming_the_option_and_file(
    bad_files: dict[str, str], args: list[str], option: str, file: str, words: list[str]
) -> None:
    needs_asyncnet()
    needs_client_tls()
    names = {**bad_files, "port": str(closed_port())}
    result = run(*(arg.format(**names) for arg in args), timeout=30)
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert option in line and bad_files[file] in line, line
    for word in words:
        assert word in line.lower(), line


# -- connect over TLS and PSK ----------------------------------------------------------------


def needs_client_tls() -> None:
    from twinsock import net

    if not hasattr(net, "wrap_connected_socket"):
        pytest.skip("net.wrap_connected_socket has not landed yet")


def tls_server_wrap(certs: dict[str, str]) -> Any:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["chain"], certs["key"])
    return lambda conn: context.wrap_socket(conn, server_side=True)


def test_connect_tls_verifies_with_ca(certs: dict[str, str]) -> None:
    needs_client_tls()
    peer = LineEchoPeer(tls_server_wrap(certs))
    try:
        result = run("connect", "localhost", str(peer.port), "--tls", "--ca", certs["ca"],
                     stdin="over tls\n")
    finally:
        peer.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: over tls\n"


def test_connect_tls_insecure(certs: dict[str, str]) -> None:
    needs_client_tls()
    peer = LineEchoPeer(tls_server_wrap(certs))
    try:
        result = run("connect", "127.0.0.1", str(peer.port), "--tls", "--insecure", stdin="x\n")
    finally:
        peer.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: x\n"


def test_connect_tls_untrusted_certificate_exits_1(certs: dict[str, str]) -> None:
    needs_client_tls()
    peer = LineEchoPeer(tls_server_wrap(certs))
    try:
        result = run("connect", "localhost", str(peer.port), "--tls", stdin="x\n")
    finally:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", peer.port)):
            pass  # unblock the peer if the handshake never reached it
        peer.close()
    assert result.returncode == 1
    one_line(result.stderr)


class PlaintextGreeter:
    """A stdlib server thread that greets in plaintext (as SMTP or Redis do), reads, closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            conn.sendall(b"+OK plaintext server ready\r\n")
            with contextlib.suppress(OSError):
                conn.recv(4096)

    def close(self) -> None:
        self.thread.join(20)
        self.listener.close()


@pytest.mark.parametrize("verify", ["--insecure", "--ca"])
def test_connect_tls_to_a_plaintext_peer_says_it_does_not_speak_tls(
    certs: dict[str, str], verify: str
) -> None:
    needs_client_tls()
    peer = PlaintextGreeter()
    extra = ["--ca", certs["ca"]] if verify == "--ca" else ["--insecure"]
    try:
        result = run("connect", "127.0.0.1", str(peer.port), "--tls", *extra, stdin="x\n",
                     timeout=30)
    finally:
        peer.close()
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "does not speak TLS" in line and f"127.0.0.1:{peer.port}" in line, line


def test_plain_connect_to_a_tls_peer_suggests_tls(certs: dict[str, str]) -> None:
    peer = LineEchoPeer(tls_server_wrap(certs))  # its handshake fails on our plaintext
    try:
        result = run("connect", "127.0.0.1", str(peer.port), stdin="hello\n", timeout=30)
    finally:
        peer.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    hint = result.stderr.splitlines()[-1]
    assert f"127.0.0.1:{peer.port}" in hint and "--tls" in hint, result.stderr


def openssl_psk_server(key_hex: str, *versions: str) -> Any:
    """``openssl s_server`` with a PSK, reversing each line (``-rev``), one client."""
    return s_server("-nocert", "-psk", key_hex, "-psk_identity", "client1", "-rev", *versions)


needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl binary")


@needs_openssl
@pytest.mark.parametrize("versions", [["-tls1_3"], ["-tls1_2"]], ids=["tls1.3", "tls1.2"])
def test_connect_psk_against_openssl(versions: list[str]) -> None:
    needs_client_tls()
    key = "1a2b3c4d5e6f7081"
    with openssl_psk_server(key, *versions) as (_peer, port):
        result = run("connect", "127.0.0.1", str(port), "--psk-identity", "client1",
                     "--psk-key", key, stdin="stressed\n")
    assert result.returncode == 0, result.stderr
    assert "desserts" in result.stdout


@needs_openssl
def test_connect_psk_wrong_key_exits_1() -> None:
    needs_client_tls()
    with openssl_psk_server("1a2b3c4d5e6f7081", "-tls1_3") as (_peer, port):
        result = run("connect", "127.0.0.1", str(port), "--psk-identity", "client1",
                     "--psk-key", "ffff", stdin="x\n")
    assert result.returncode == 1
    one_line(result.stderr)


# -- chat ------------------------------------------------------------------------------------------


def test_chat_server_relays_lines_to_every_client() -> None:
    needs_asyncnet()
    with server("chat", "--port", "0") as (_proc, port):
        clients: list[socket.socket] = []
        try:
            # Join one at a time; each one's hello reaches everyone so far, itself included.
            for index in range(3):
                client = socket.create_connection(("127.0.0.1", port), timeout=10)
                clients.append(client)
                client.sendall(f"hello from {index}\n".encode())
                expected = f"hello from {index}\r\n".encode()
                for receiver in clients[: index + 1]:
                    assert recv_exactly(receiver, len(expected)) == expected
            clients[0].sendall(b"to everyone\n")
            for client in clients:
                assert recv_exactly(client, 13) == b"to everyone\r\n"
            clients[1].sendall(b"\r\n")  # an empty line
            for client in clients:
                assert recv_exactly(client, 2) == b"\r\n"
            clients[2].sendall(b"half a li")  # then disconnect mid-line
            clients[2].close()
            clients[0].sendall(b"still chatting\r\n")
            for client in clients[:2]:
                assert recv_exactly(client, 16) == b"still chatting\r\n"
            late = socket.create_connection(("127.0.0.1", port), timeout=10)
            clients.append(late)
            late.sendall(b"late\n")
            for client in (clients[0], clients[1], late):
                assert recv_exactly(client, 6) == b"late\r\n"
        finally:
            for client in clients:
                client.close()


def test_chat_announces_where_it_listens() -> None:
    needs_asyncnet()
    with server("chat", "--host", "127.0.0.1", "--port", "0") as (proc, port):
        assert f"127.0.0.1:{port}" in proc.stderr[0]
        assert len(proc.stderr) == 1


# -- bench -----------------------------------------------------------------------------------------


def test_bench_prints_a_table() -> None:
    needs_asyncnet()
    result = run("bench", "--seconds", "0.3", "--connections", "4", timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "requests/s" in out and "p50" in out and "p99" in out and "ratio" in out
    assert "Python" in out  # the client is named for what it is
    rows = [line for line in out.splitlines() if line.startswith(("asyncio streams", "twinsock"))]
    assert len(rows) == 2
    assert rows[0].split()[-1] == "1.00x"
    assert "Traceback" not in result.stderr
