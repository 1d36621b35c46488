"""HTTP plumbing: a werkzeug threaded server with keep-alive and deliberate connection drops.

werkzeug 3.1's own `WSGIRequestHandler.run_wsgi` always answers `Connection: close`
(keep-alive is disabled there) and then waits up to 10 ms draining the socket, which
would make every benchmark request pay a TCP handshake and a new thread. This handler
reads the request body completely before calling the app, writes each response in one
`sendall` with a Content-Length, and keeps the connection open for the next request, so
a `requests.Session` pool really reuses its connections.

It also implements the stand-in's "drop": when the app sets `DROP_CONNECTION` in the
environ, the socket is shut down without a byte of response, so the client sees a
connection error (the ambiguous "was my batch stored?" case), without a traceback here.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
import time
import traceback
from email.utils import formatdate
from typing import IO, TYPE_CHECKING, Any, cast

from werkzeug.serving import DechunkedInput, ThreadedWSGIServer, WSGIRequestHandler

from leanpay_standin.app import ARRIVED, DROP_CONNECTION

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

LOOPBACK = "127.0.0.1"
"""The only address the stand-in ever binds."""

MAX_BODY_BYTES = 64 * 1024 * 1024
_SKIPPED_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache  # noqa: PLW0603 - a one-second cache of the Date header
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class StandInServer(ThreadedWSGIServer):
    """A thread per connection, bound to 127.0.0.1 only; knows its open connections."""

    request_queue_size = 128

    def __init__(self, port: int, app: WSGIApplication) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self.connections_opened = 0
        """How many client connections were accepted (keep-alive keeps this low)."""
        super().__init__(LOOPBACK, port, app, handler=KeepAliveHandler)

    def track(self, connection: socket.socket, *, is_open: bool) -> None:
        """Remember (or forget) a client connection, to close it when stopping."""
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
                self.connections_opened += 1
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open client connection, so idle keep-alive threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about sockets the client (or `stop`) closed under us."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class KeepAliveHandler(WSGIRequestHandler):
    """Runs the WSGI app with HTTP/1.1 keep-alive and supports dropping the connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: StandInServer

    def setup(self) -> None:
        """Register the connection with the server."""
        super().setup()
        self.server.track(self.connection, is_open=True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.track(self.connection, is_open=False)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No per-request logging here: the app logs when asked to (--verbose)."""

    def run_wsgi(self) -> None:
        """Serve one request: read the whole body, call the app, answer or drop."""
        arrived = time.monotonic()  # the request line and headers are in: it has arrived
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_body()
        if body is None:
            return
        environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["wsgi.input_terminated"] = True  # read to the end: also right when de-chunked
        environ["CONTENT_LENGTH"] = str(len(body))
        environ[ARRIVED] = arrived
        self.environ = environ

        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        try:
            chunks = self.server.app(environ, start_response)
            try:
                payload = b"".join(chunks)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        except Exception:  # a bug in the app: answer 500, keep the traceback visible
            traceback.print_exc()
            self.close_connection = True
            self._send("500 INTERNAL SERVER ERROR", [], b"")
            return
        if environ.get(DROP_CONNECTION):
            self._drop()
            return
        self._send(started[0], started[1], payload)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering an unreadable one."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # trailers are not parsed: do not reuse
            try:
                return DechunkedInput(cast(IO[bytes], self.rfile)).read()
            except OSError:
                self._send("400 BAD REQUEST", [], b"")
                return None
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send("400 BAD REQUEST" if length < 0 else "413 PAYLOAD TOO LARGE", [], b"")
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-body
            self.close_connection = True
            return None
        return body

    def _send(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        lines = [f"{self.protocol_version} {status}\r\n"]
        length = str(len(payload))
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length" and self.command == "HEAD":
                length = value  # HEAD announces the length a GET would have
            elif lowered not in _SKIPPED_HEADERS:
                lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {length}\r\n")
        lines.append(f"Date: {_http_date()}\r\nServer: leanpay-standin\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + payload)

    def _drop(self) -> None:
        """Close the connection without answering: the client sees a connection error."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
