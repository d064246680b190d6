"""A private Dovecot for benchmarks: scripts/imap-test-server.sh on free loopback ports.

The tests have their own launcher (tests/imap_fixtures.py, bound to pytest); a benchmark
must not import tests/, and it needs one thing the tests do not: settings of its own. The
script reads ``DIR/local.conf`` last, so :class:`PrivateDovecot` writes the given settings
there (the benchmarks restore Dovecot's defaults for IDLE and fsync, which the test
configuration shortens for speed).

The server runs in the foreground (``run``) in its own process group; :meth:`stop` sends
SIGTERM to the group, so no imap process outlives it. Its user is ``sync@example.test``
with the password ``secret``; its TLS certificate is the self-signed one the script makes,
which is also the CA file a client trusts (``ca_file``).
"""

from __future__ import annotations

import imaplib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "imap-test-server.sh"
DOVECOT = Path("/usr/sbin/dovecot")
DOVECONF = Path("/usr/bin/doveconf")
HOST = "127.0.0.1"
USER = "sync@example.test"
PASSWORD = "secret"  # noqa: S105 - the script's own test user
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateDovecot:
    """One Dovecot 2.3 instance in ``directory`` (created by the caller, reachable by the
    user the script drops to when started as root), with ``settings`` read last."""

    def __init__(self, directory: Path, settings: Mapping[str, str] | None = None) -> None:
        if not (DOVECOT.exists() and SCRIPT.exists()):
            raise SystemExit(
                "dovecot is not installed: make dovecot (apt-get install dovecot-imapd)"
            )
        self.dir = directory
        self.host = HOST
        self.port = free_port()
        self.tls_port = free_port()
        self.username = USER
        self.password = PASSWORD
        self.settings = dict(settings or {})
        self.process: subprocess.Popen[bytes] | None = None
        lines = [f"{name} = {value}\n" for name, value in self.settings.items()]
        (directory / "local.conf").write_text("".join(lines), encoding="utf-8")

    @property
    def ca_file(self) -> Path:
        return self.dir / "ssl" / "cert.pem"

    @property
    def log_path(self) -> Path:
        return self.dir / "log" / "dovecot.log"

    @property
    def maildir(self) -> Path:
        return self.dir / "mail" / "example.test" / "sync" / "Maildir"

    def start(self) -> PrivateDovecot:
        errors = self.dir / "server.err"
        with errors.open("ab") as stderr:
            self.process = subprocess.Popen(
                [str(SCRIPT), "run", str(self.dir), str(self.port), str(self.tls_port)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group: see stop()
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = errors.read_text(errors="replace")
                raise RuntimeError(f"dovecot did not start: {text}\n{self.log()}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> PrivateDovecot:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def connect(self) -> IMAPClient:
        """A new logged-in plaintext connection (loopback), TCP_NODELAY set."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=60)
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.login(self.username, self.password)
        return client

    def effective(self, *names: str) -> dict[str, str]:
        """The values the running configuration has for ``names`` (``doveconf -h``)."""
        values = {}
        for name in names:
            answer = subprocess.run(
                [str(DOVECONF), "-c", str(self.dir / "dovecot.conf"), "-h", name],
                capture_output=True,
                text=True,
                check=True,
            )
            values[name] = answer.stdout.strip()
        return values

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _answers(self) -> bool:
        try:
            with imaplib.IMAP4(self.host, self.port, timeout=2) as probe:
                probe.login(self.username, self.password)
                probe.logout()
        except (OSError, imaplib.IMAP4.error):
            return False
        return True
