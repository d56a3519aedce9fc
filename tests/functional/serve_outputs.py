"""A waitress server on the test database, in its own process, for the memory test of test_outputs.py:
``python serve_outputs.py DATABASE_URL PORT STORAGE_PATH``."""
import logging
import sys

import waitress

from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import make_test_app


def main(url: str, port: int, storage_path: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    app = make_test_app(get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": 4}),
                        **{"ufdl.storage.path": storage_path, "ufdl.max_output_size": "1G"})
    waitress.serve(app, listen=f"127.0.0.1:{port}", threads=4, max_request_body_size=1 << 30, _quiet=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
