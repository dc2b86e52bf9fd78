"""Argument checks for the ``twinsock`` command: what is refused before any I/O.

How this works.  ``argparse`` calls the type functions here (``port``,
``seconds``, ``count``, ``hex_key``, ``listen_host``, ...) on an argument's
text; they raise ``argparse.ArgumentTypeError``, which the parser reports as
one line naming the argument.  ``tls_file_problem`` reads the certificate,
key and CA files a command was given before any TLS context is built, and
``tls_setup_problem`` words a failure of the context itself (a key that does
not match its certificate, a file whose PEM blocks do not decode); both give
one line that names the option and the file, which ``cli`` raises as a
``UsageError`` (printed by ``cli.main``, exit status 2).  Whether a host text
is a well-formed address is the library's rule (``AddressError``), so it is
not repeated here: ``cli`` words that error the same way.

The exit statuses, ``UsageError`` and ``CommandError`` (the two failures
``cli.main`` reports in one line) and ``describe_error`` live here too, so
that every command module (``cli``, ``_cli_servers``) raises the same ones.
"""

from __future__ import annotations

import argparse
import os
import re
import ssl
import stat
from collections.abc import Callable

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "CommandError",
    "UsageError",
    "check_tls_files",
    "describe_error",
    "grace",
    "count",
    "hex_key",
    "host_port",
    "listen_host",
    "peer_host",
    "port",
    "remote_port",
    "seconds",
    "tls_file_problem",
    "tls_setup_problem",
]

#: A certificate, key or CA file larger than this is refused unread.
MAX_PEM_FILE = 16 * 1024 * 1024

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

PROG = "twinsock"


class UsageError(Exception):
    """A bad command line: reported in one line, exit status 2."""

    # help_hint: whether the line points at --help (it cannot help with a bad file).
    def __init__(self, message: str, *, help_hint: bool = True) -> None:
        super().__init__(message)
        self.help_hint = help_hint


class CommandError(Exception):
    """A failure that already has its one-line message: exit status 1."""


def describe_error(exc: BaseException) -> str:
    """One line for an error: the OS's words without ``[Errno N]`` where there are some."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        text = exc.strerror
        if exc.filename:
            text = f"{exc.filename}: {text}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


_CERTIFICATE = re.compile(r"-----BEGIN (?:TRUSTED |X509 )?CERTIFICATE-----")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----")
_ENCRYPTED_KEY = re.compile(r"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED")


# -- argument types -----------------------------------------------------------------


def port(text: str) -> int:
    """A TCP port, 0..65535."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0..65535")
    return value


def remote_port(text: str) -> int:
    """A TCP port to connect to, 1..65535."""
    value = port(text)
    if value == 0:
        raise argparse.ArgumentTypeError("cannot connect to port 0")
    return value


def _number_of_seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None


def seconds(text: str) -> float:
    """A duration in seconds, in (0, 3600]."""
    value = _number_of_seconds(text)
    if not 0 < value <= 3600:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 3600] seconds")
    return value


def grace(text: str) -> float:
    """A grace period in seconds, in [0, 3600] (0: close the connections at once)."""
    value = _number_of_seconds(text)
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 3600] seconds")
    return value


def count(low: int, high: int) -> Callable[[str], int]:
    """The type of a whole number in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return parse


def hex_key(text: str) -> bytes:
    """A non-empty key written in hexadecimal."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a hexadecimal key: {text!r}") from None
    if not key:
        raise argparse.ArgumentTypeError("the key is empty")
    return key


def listen_host(text: str) -> str:
    """A host to listen on; empty text (an unset shell variable, most likely) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"{text!r} names no host (0.0.0.0 or :: listen on every interface)"
        )
    return text


def peer_host(text: str) -> str:
    """A host to connect to; empty text is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no host")
    return text


def host_port(name: str, number: int) -> str:
    """``host:port`` as people write it: an IPv6 address in brackets."""
    return f"[{name}]:{number}" if ":" in name else f"{name}:{number}"


# -- certificate, key and CA files ---------------------------------------------------


class _BadFile(Exception):
    """A file that cannot be what its option says (the message says why)."""


def _read(prog: str, option: str, path: str) -> str:
    """The text of the file given to ``option`` (PEM is ASCII; other bytes pass as latin-1)."""
    where = f"{prog}: argument {option}: {path!r}"
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise _BadFile(f"{where} is not a file")
        if info.st_size > MAX_PEM_FILE:
            raise _BadFile(f"{where} is too large for a PEM file")
        with open(path, "rb") as file:
            return file.read(MAX_PEM_FILE).decode("latin-1")
    except OSError as exc:
        raise _BadFile(f"{where}: {exc.strerror or exc}") from None


def _check_key(prog: str, option: str, path: str, text: str) -> None:
    if _ENCRYPTED_KEY.search(text):
        raise _BadFile(
            f"{prog}: argument {option}: the private key in {path!r} is encrypted "
            "(twinsock needs an unencrypted key)"
        )


def tls_file_problem(
    prog: str, *, cert: str | None = None, key: str | None = None, ca: str | None = None
) -> str | None:
    """Say what is wrong with a certificate, key or CA file, before any TLS context is built.

    Args:
        prog: the command, for the start of the message (``"twinsock echo"``).
        cert: the ``--cert`` file: a PEM certificate chain, holding the
            private key too when ``key`` is ``None``.
        key: the ``--key`` file: a PEM private key.
        ca: the ``--ca`` file: PEM certificates of trusted CAs.

    Returns:
        ``None`` when each file given holds what its option needs; otherwise
        one line (starting with ``prog``) that names the option and the file:
        missing, unreadable, not a regular file, without the PEM blocks it
        needs, or holding an encrypted key.
    """
    try:
        _check_tls_files(prog, cert, key, ca)
    except _BadFile as exc:
        return str(exc)
    return None


def _check_tls_files(prog: str, cert: str | None, key: str | None, ca: str | None) -> None:
    if cert is not None:
        text = _read(prog, "--cert", cert)
        if not _CERTIFICATE.search(text):
            raise _BadFile(f"{prog}: argument --cert: {cert!r} holds no PEM certificate")
        if key is None:
            if not _PRIVATE_KEY.search(text):
                raise _BadFile(
                    f"{prog}: argument --cert: {cert!r} holds a certificate but no private "
                    "key (give the key file with --key FILE)"
                )
            _check_key(prog, "--cert", cert, text)
    if key is not None:
        text = _read(prog, "--key", key)
        if not _PRIVATE_KEY.search(text):
            raise _BadFile(f"{prog}: argument --key: {key!r} holds no PEM private key")
        _check_key(prog, "--key", key, text)
    if ca is not None and not _CERTIFICATE.search(_read(prog, "--ca", ca)):
        raise _BadFile(f"{prog}: argument --ca: {ca!r} holds no PEM certificate")


def check_tls_files(prog: str, files: dict[str, str | None]) -> None:
    """Raise ``UsageError`` (no ``--help`` hint) for a certificate, key or CA file that
    cannot serve (``tls_file_problem``); before any I/O."""
    problem = tls_file_problem(prog, **files)
    if problem is not None:
        raise UsageError(problem, help_hint=False)


def tls_setup_problem(
    prog: str,
    exc: OSError,
    *,
    cert: str | None = None,
    key: str | None = None,
    ca: str | None = None,
) -> str:
    """The one line for a TLS context that the files given could not set up.

    Args:
        prog: the command, for the start of the message.
        exc: what building the context raised (``SslError``).
        cert: the ``--cert`` file, if one was given.
        key: the ``--key`` file, if one was given.
        ca: the ``--ca`` file, if one was given.

    Returns:
        The line, starting with ``prog``: it names the option and file to
        blame, or every file given when OpenSSL does not say which.
    """
    text = " ".join(str(exc).split())
    if "KEY_VALUES_MISMATCH" in text and cert is not None:
        holder = f"--key: {key!r}" if key is not None else f"--cert: {cert!r}"
        return (
            f"{prog}: argument {holder}: the private key does not match the certificate "
            f"in {cert!r} (KEY_VALUES_MISMATCH)"
        )
    given = [(o, f) for o, f in (("--cert", cert), ("--key", key), ("--ca", ca)) if f is not None]
    files = " and ".join(f"{option} {path!r}" for option, path in given)
    if "PEM lib" in text:  # OpenSSL could not decode a PEM block (bad base64 or DER)
        where = "in one of them" if len(given) > 1 else "in it"
        text = f"a PEM block {where} does not decode (OpenSSL: PEM lib)"
    return f"{prog}: argument{'s' if len(given) > 1 else ''} {files}: {text}"
