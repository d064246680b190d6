"""systemd's notification protocol (sd_notify) over ``$NOTIFY_SOCKET``, standard library only.

With ``Type=notify`` systemd hands the service the path of a datagram socket in
``NOTIFY_SOCKET``; each datagram is a list of ``NAME=value`` lines:

* ``READY=1``: start-up is over (``systemctl start`` returns, dependants start);
* ``STATUS=...``: one line shown by ``systemctl status``;
* ``WATCHDOG=1``: the main loop is alive; with ``WatchdogSec=`` set, systemd exports
  ``WATCHDOG_USEC`` and kills the service when no ping came within that time;
* ``STOPPING=1``: the service is shutting down.

A path starting with ``@`` is in Linux's abstract namespace (a leading NUL byte). When
``NOTIFY_SOCKET`` is unset (a terminal, a test, ``Type=simple``) every call does nothing.
A notification that cannot be sent is logged and dropped, and sending never blocks (the
socket is non-blocking): a slow or stuck receiver must never stop the robot.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Final, Self

LOG = logging.getLogger(__name__)

STATUS_MAX: Final = 200  # characters of STATUS= kept (systemctl shows one line)


class SystemdNotifier:
    """Sends sd_notify datagrams to one socket address, or nothing at all (``address=None``).

    ``watchdog_usec`` is systemd's ``WATCHDOG_USEC``; :attr:`watchdog_interval` is half of
    it, the longest the main loop may go without calling :meth:`watchdog`.
    """

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The notifier systemd asked for: ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` (honoured
        only when ``WATCHDOG_PID`` is unset or names this process)."""
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog_usec=_watchdog_usec(environ))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between two pings (half of ``WATCHDOG_USEC``), None without a watchdog."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self) -> None:
        self._send("READY=1")

    def status(self, text: str) -> None:
        self._send(f"STATUS={one_line(text, STATUS_MAX)}")

    def watchdog(self) -> None:
        if self._watchdog_usec is not None:
            self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                self._socket = socket.socket(socket.AF_UNIX, kind)
            self._socket.sendto(message.encode("utf-8"), self._address)
        except BlockingIOError:
            # the receiver's queue is full: never block the robot on it; a lost WATCHDOG=1
            # is made up by the next one, a lost STATUS by the next status
            LOG.debug("systemd's notification queue is full; %s dropped", message[:20])
        except OSError as error:
            LOG.warning("cannot notify systemd (%s): %s", message.partition("=")[0], error)


def one_line(text: str, limit: int) -> str:
    """``text`` as one line of at most ``limit`` characters: every control character
    becomes a space, so a STATUS can never carry a second ``NAME=value`` line."""
    flat = "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in text)
    flat = " ".join(flat.replace("\u2028", " ").replace("\u2029", " ").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _socket_address(path: str) -> str | bytes:
    if path.startswith("@"):
        return b"\0" + path[1:].encode("utf-8")
    return path


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    pid = environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return value if value > 0 else None
