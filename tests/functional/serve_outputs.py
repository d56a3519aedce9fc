"""A waitress server on the test database, in its own process, for the memory tests of test_outputs.py and
test_worker_uploads.py: ``python serve_outputs.py DATABASE_URL PORT STORAGE_PATH``, or ``served(...)``."""
import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import waitress

from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import make_test_app


def main(url: str, port: int, storage_path: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    app = make_test_app(get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": 4}),
                        **{"ufdl.storage.path": storage_path, "ufdl.max_output_size": "1G"})
    waitress.serve(app, listen=f"127.0.0.1:{port}", threads=4, max_request_body_size=1 << 30, _quiet=True)


@contextlib.contextmanager
def served(engine, folder: Path):
    """The server on ``engine``'s database, its storage and log in ``folder``, once it listens: yields
    ``(port, process)``; terminated afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(folder / "server.log", "w+") as log:
        server = subprocess.Popen([sys.executable, __file__, engine.url.render_as_string(hide_password=False),
                                   str(port), str(folder / "outputs")], stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    assert server.poll() is None and time.time() < deadline, log.seek(0) or log.read()
                    time.sleep(0.1)
            yield port, server
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
