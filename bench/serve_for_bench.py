"""The server the benchmarks measure: our app, with a bare Pyramid JSON hello view mounted at /hello."""
import logging
import sys

import waitress
from pyramid.config import Configurator

from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import make_test_app


def hello_app():
    config = Configurator()
    config.add_route("hello", "/hello")
    config.add_view(lambda request: {"hello": "world"}, route_name="hello", renderer="json")
    return config.make_wsgi_app()


def main(url: str, port: int, threads: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    ours = make_test_app(get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": threads}))
    hello = hello_app()

    def dispatch(environ, start_response):
        app = hello if environ["PATH_INFO"] == "/hello" else ours
        return app(environ, start_response)

    waitress.serve(dispatch, listen=f"127.0.0.1:{port}", threads=threads, _quiet=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
