"""``ufdl serve``: the REST API on waitress (``--workers`` processes), and (development) the progress channel's
websocket listener beside it in a child process (``--ws-listen``, ``none`` to leave it out): waitress cannot
upgrade."""
import signal
import subprocess
import sys

from pyramid.paster import get_app

from .. import serving
from .websocket import listener_argv


def register(areas) -> None:
    serve = areas.add_parser("serve", help="serve the API with waitress")
    serve.add_argument("--listen", default="127.0.0.1:6543", metavar="HOST:PORT")
    serve.add_argument("--threads", type=int, default=8, help="threads per worker process")
    serve.add_argument("--workers", type=int, default=1,
                       help="processes sharing the listening socket (PostgreSQL; about one per core)")
    serve.add_argument("--ws-listen", default="127.0.0.1:6544", metavar="HOST:PORT",
                       help="where the progress channel listens (a child process); 'none': not started")
    serve.set_defaults(handler=run_serve)


def run_serve(args, environment) -> int:
    environment.settings  # fail early, with a clear message, on a bad configuration
    if args.workers < 1 or args.threads < 1:
        print("--workers and --threads must be at least 1", file=sys.stderr)
        return 2
    try:
        sock = serving.bind(args.listen)
    except (ValueError, OSError) as error:
        print(f"ufdl: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    listener = None
    if args.ws_listen and args.ws_listen.lower() != "none":
        listener = subprocess.Popen(listener_argv(environment.config_path, args.ws_listen))
        # A terminated server takes its listener with it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving on http://{args.listen} ({args.workers} worker(s) of {args.threads} threads)", flush=True)
    # waitress refuses bodies over 1 GiB by default; job outputs may be as large as ufdl.max_output_size.
    body_limit = max(environment.settings["ufdl.max_output_size"], environment.settings["ufdl.max_json_size"])
    try:
        # Each worker loads the app itself, after the fork: no database connection is shared between processes.
        return serving.serve(lambda: get_app(environment.config_path, "main"), sock, workers=args.workers,
                             threads=args.threads, max_request_body_size=body_limit)
    finally:
        if listener is not None:
            listener.terminate()
            listener.wait(10)
