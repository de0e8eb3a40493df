"""A TCP forwarder a fault test or the soak can cut and restore.

PostgreSQL or MLflow "goes down" for the processes that connect through it only, so a fault can be
injected without stopping a shared service other work depends on. ``down()`` closes the listening
socket and resets every open connection (clients see what they see when a server dies: refused
connections and broken ones); ``up()`` listens on the same port again.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from infra.stack.process import free_port

__all__ = ["TcpProxy"]


class TcpProxy:
    """A TCP forwarder the test can cut and restore: PostgreSQL 'goes down' for one worker only."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._open = False

    def up(self) -> None:
        """Listen (again); a no-op while already up."""
        if self._server is not None:
            return
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        self._open = True
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        self._open = False
        if self._server is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if not self._open:
                client.close()
                return
            try:
                backend = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            backend.settimeout(None)
            with self._lock:
                self._conns += [client, backend]
            for a, b, from_client in ((client, backend, True), (backend, client, False)):
                threading.Thread(target=self._pump, args=(a, b, from_client), daemon=True).start()

    def forwards(self, data: bytes) -> bool:
        """Whether to pass on this chunk from a client; False cuts the link there (``down()``)
        before it reaches the server. Subclasses cut at one exact request."""
        return True

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and not self.forwards(data):
                    self.down()  # the chunk is never forwarded
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
