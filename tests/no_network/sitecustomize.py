"""No network for a test's subprocesses: put this folder on PYTHONPATH and set
``LIFT_TEST_NO_NETWORK=<log file>``; Python imports ``sitecustomize`` at startup, and every
attempt to open an internet connection or resolve a host name then raises ``OSError`` and is
appended to the log file (so an attempt that the code caught and survived still shows).

Local sockets (``AF_UNIX``, e.g. ``socket.socketpair``) keep working. ``block()`` does the same
in the calling process (tests/test_no_network.py). Inert without the variable.
"""

from __future__ import annotations

import os
import socket
import traceback

ENV = "LIFT_TEST_NO_NETWORK"
_INTERNET = {getattr(socket, name) for name in ("AF_INET", "AF_INET6") if hasattr(socket, name)}


class NetworkBlocked(OSError):
    """A connection this test environment does not allow."""


def block(log_path: str | None = None) -> dict:
    """Make connecting, sending to an address and resolving host names raise; returns the
    originals (for :func:`unblock`)."""
    def refuse(what: str, target) -> None:
        if log_path:
            stack = "".join(traceback.format_stack(limit=8)[:-2])
            with open(log_path, "a") as fh:
                fh.write(f"pid {os.getpid()}: {what} {target!r}\n{stack}\n")
        raise NetworkBlocked(f"network access blocked in this test: {what} {target!r}")

    saved = {"connect": socket.socket.connect, "connect_ex": socket.socket.connect_ex,
             "sendto": socket.socket.sendto, "create_connection": socket.create_connection,
             "getaddrinfo": socket.getaddrinfo, "gethostbyname": socket.gethostbyname}

    def connect(self, address):
        if self.family in _INTERNET:
            refuse("connect", address)
        return saved["connect"](self, address)

    def connect_ex(self, address):
        if self.family in _INTERNET:
            refuse("connect", address)
        return saved["connect_ex"](self, address)

    def sendto(self, data, *args):
        if self.family in _INTERNET:
            refuse("sendto", args[-1] if args else None)
        return saved["sendto"](self, data, *args)

    def create_connection(address, *args, **kwargs):
        refuse("create_connection", address)

    def getaddrinfo(host, *args, **kwargs):
        refuse("getaddrinfo", host)

    def gethostbyname(host):
        refuse("gethostbyname", host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.create_connection = create_connection
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    return saved


def unblock(saved: dict) -> None:
    for name in ("connect", "connect_ex", "sendto"):
        setattr(socket.socket, name, saved[name])
    for name in ("create_connection", "getaddrinfo", "gethostbyname"):
        setattr(socket, name, saved[name])


if os.environ.get(ENV):
    block(os.environ[ENV])
