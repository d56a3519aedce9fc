"""A TCP proxy that plays a database going away and coming back."""
import socket
import threading


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``. ``sever`` drops the open connections (a restarted database
    or a broken network: the pool's connections are dead), ``cut`` also refuses new ones until ``restore``.
    ``sever_at(marker, times)`` severs them when a client next sends bytes holding ``marker`` (which never arrive),
    the next ``times`` times it does."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.refusing = False
        self.marker: bytes | None = None
        self.severs_left = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.refusing:
                    client.close()  # as a database that is down: the connection ends at once
                    continue
                server = socket.create_connection(self.target)
                self.open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink, source is client), daemon=True).start()

    def _pump(self, source, sink, from_client: bool):
        try:
            while data := source.recv(65536):
                if from_client and self.marker is not None and self.marker in data:
                    self.severs_left -= 1
                    if not self.severs_left:
                        self.marker = None
                    self.sever()
                    return
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def sever(self):
        with self.lock:
            for end in self.open:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()
            self.open = []

    def sever_at(self, marker: bytes, times: int = 1):
        self.marker, self.severs_left = marker, times

    def cut(self):
        with self.lock:
            self.refusing = True
        self.sever()

    def restore(self):
        with self.lock:
            self.refusing = False

    def close(self):
        self.cut()
        self.listener.close()
