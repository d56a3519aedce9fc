"""The server the benchmarks measure: our app, with a bare Pyramid JSON hello view mounted at /hello, on
waitress in ``workers`` processes (as ``ufdl serve --workers``) of ``threads`` threads each."""
import argparse
import logging
import sys

from pyramid.config import Configurator

from ufdl_pyramid import serving
from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import make_test_app


def hello_app():
    config = Configurator()
    config.add_route("hello", "/hello")
    config.add_view(lambda request: {"hello": "world"}, route_name="hello", renderer="json")
    return config.make_wsgi_app()


def both(url: str, threads: int):
    """The WSGI app each worker serves: hello at /hello, ours everywhere else."""
    engine = get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": threads})
    ours = make_test_app(engine)
    engine.dispose()  # the workers are forked from this process: no connection may be shared (see serving.serve)
    hello = hello_app()

    def dispatch(environ, start_response):
        app = hello if environ["PATH_INFO"] == "/hello" else ours
        return app(environ, start_response)

    return dispatch


def main(url: str, port: int, threads: int, workers: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    sockets = [serving.bind(f"127.0.0.1:{port}")]
    sys.exit(serving.serve(lambda: both(url, threads), sockets, workers=workers, threads=threads))


if __name__ == "__main__":
    # Started by bench/common.py's server(); by hand, to profile the server under a benchmark's load.
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="SQLAlchemy URL of a migrated database")
    parser.add_argument("port", type=int)
    parser.add_argument("threads", type=int)
    parser.add_argument("workers", type=int)
    arguments = parser.parse_args()
    main(arguments.url, arguments.port, arguments.threads, arguments.workers)
