"""The HTTP side: a threaded stdlib server, the emulator's Python API and ``serve``."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, TextIO

from mailbot.sim.netsuite.data import DataError, check_data, load_data
from mailbot.sim.netsuite.errors import ApiError
from mailbot.sim.netsuite.faults import FaultPlan, LoggedRequest
from mailbot.sim.netsuite.service import (
    ERROR_CONTENT_TYPE,
    REST_ROOT,
    TOKEN_PATH,
    Answer,
    NetSuiteService,
    Request,
    Settings,
)

MAX_BODY_BYTES = 16 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT_S = 30
EXIT_OK = 0
EXIT_FAILED = 1

logger = logging.getLogger("mailbot.sim.netsuite")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of parallel clients must not wait for SYN retries

    def __init__(self, address: tuple[str, int], service: NetSuiteService) -> None:
        self.service = service
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "NetSuiteEmulator"
    sys_version = ""
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (bad request line, unknown method) get NetSuite's error shape."""
        self.close_connection = True
        error = ApiError(code, "INVALID_REQUEST", message or "The request is malformed.")
        body = json.dumps(error.body()).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ERROR_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header, from the account's clock (which a test may set off)."""
        return super().date_time_string(
            self.server.service.clock() if timestamp is None else timestamp
        )

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the service logs one line per request, without headers."""

    def _serve(self) -> None:
        started = time.perf_counter()
        body, refusal = self._read_body()
        request = self._request(body)
        answer = refusal or self.server.service.respond(request)
        # Logged before the answer leaves: a client that has its answer finds it in the log.
        duration_ms = (time.perf_counter() - started) * 1000.0
        self.server.service.record(request, answer, duration_ms)
        if answer.status is None:
            self._reset()
        else:
            self._write(answer, close=refusal is not None)

    def _read_body(self) -> tuple[bytes, Answer | None]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return b"", _plain(411, "A Content-Length is required.")
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.isdigit():
            return b"", _plain(400, "Invalid Content-Length.")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            return b"", _plain(413, "The request body is too large.")
        return self.rfile.read(length), None

    def _request(self, body: bytes) -> Request:
        path, _, query = self.path.partition("?")
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Request(self.command, path, query, headers, body, host)

    def _write(self, answer: Answer, *, close: bool) -> None:
        status = answer.status or 500
        try:
            self.send_response(status)
            for name, value in answer.headers:
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Length", str(len(answer.body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if status != 204:
                self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True

    def _reset(self) -> None:
        """Hang up without a word, as a dropped connection looks to the client."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _plain(status: int, detail: str) -> Answer:
    """A refusal before the request reaches the service (the connection is then closed)."""
    error = ApiError(status, "INVALID_REQUEST", detail)
    return Answer(
        status,
        json.dumps(error.body()).encode("utf-8"),
        (("Content-Type", ERROR_CONTENT_TYPE),),
        error_code=error.code,
    )


class NetSuiteEmulator:
    """A NetSuite account on a local port: REST records, SuiteQL, TBA and OAuth 2.0."""

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        recurrence_fields: bool = False,
        concurrency_limit: int = 5,
        token_lifetime_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if data is None:
            data = load_data(None)
        else:
            check_data(data)
        self.credentials: dict[str, Any] = dict(data["credentials"])
        self.account: str = self.credentials["account"]
        settings = Settings(recurrence_fields, concurrency_limit, token_lifetime_s)
        self._service = NetSuiteService(data, settings, clock)
        self._address = (host, port)
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> NetSuiteEmulator:
        if self._server is None:
            self._server = _HTTPServer(self._address, self._service)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name="netsuite-emulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> NetSuiteEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Where it listens

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` without a trailing slash; the REST root is this + /services/rest."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode("ascii")
        shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host  # noqa: S104
        return f"http://{shown}:{port}"

    @property
    def rest_url(self) -> str:
        return self.base_url + REST_ROOT

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    # Test and benchmark hooks

    def set_faults(self, plan: FaultPlan) -> None:
        self._service.faults.set_plan(plan)

    @property
    def faults(self) -> FaultPlan:
        return self._service.faults.plan

    def request_log(self) -> list[LoggedRequest]:
        return self._service.log.entries()

    def reset_log(self) -> None:
        self._service.log.reset()

    def status_counts(self) -> dict[int | None, int]:
        """Requests per answered status; ``None`` counts connections closed without answer."""
        return self._service.log.status_counts()

    @property
    def peak_concurrency(self) -> int:
        """The most requests that were in flight at once."""
        return self._service.gate.peak

    def records(self, record_type: str) -> list[dict[str, Any]]:
        """Stored records: calendarEvent as written (with attendee items), or entity rows."""
        kind = record_type.lower()
        if kind == "calendarevent":
            return self._service.store.events()
        tables = {
            "employee": "employee",
            "customer": "customer",
            "contact": "contact",
            "opportunity": "transaction",
            "transaction": "transaction",
        }
        if kind not in tables:
            raise ValueError(f"unknown record type {record_type!r}")
        return self._service.store.rows(tables[kind])

    def register_oauth2_client(
        self, client_id: str, certificate_id: str, public_pem: bytes
    ) -> None:
        """Maps a certificate (or bare public key) to an integration, as the M2M setup page does."""
        self._service.oauth2.register(client_id, certificate_id, public_pem)


def serve(host: str, port: int, data_path: str | None, out: TextIO = sys.stdout) -> int:
    """``mailbot sim netsuite``: serves until SIGINT or SIGTERM; the first line is the base URL."""
    try:
        emulator = NetSuiteEmulator(load_data(data_path), host=host, port=port).start()
    except DataError as error:
        print(f"mailbot: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        print(
            f"mailbot: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr
        )
        return EXIT_FAILED
    print(emulator.base_url, file=out, flush=True)
    print(
        f"NetSuite emulator for account {emulator.account}; REST root {emulator.rest_url}; "
        "stop with Ctrl-C",
        file=out,
        flush=True,
    )
    stop = threading.Event()
    with _request_lines_on_stderr(), _stop_on_signals(stop):
        while not stop.wait(0.2):
            pass
    emulator.stop()
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _request_lines_on_stderr() -> Any:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
