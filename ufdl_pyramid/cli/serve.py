"""``ufdl serve``: the REST API on waitress, and (development) the progress channel's websocket listener
beside it in a child process (``--ws-listen``, ``none`` to leave it out): waitress cannot upgrade."""
import signal
import subprocess
import sys

import waitress
from pyramid.paster import get_app

from .websocket import listener_argv


def register(areas) -> None:
    serve = areas.add_parser("serve", help="serve the API with waitress")
    serve.add_argument("--listen", default="127.0.0.1:6543", metavar="HOST:PORT")
    serve.add_argument("--threads", type=int, default=8)
    serve.add_argument("--ws-listen", default="127.0.0.1:6544", metavar="HOST:PORT",
                       help="where the progress channel listens (a child process); 'none': not started")
    serve.set_defaults(handler=run_serve)


def run_serve(args, environment) -> int:
    environment.settings  # fail early, with a clear message, on a bad configuration
    app = get_app(environment.config_path, "main")
    listener = None
    if args.ws_listen and args.ws_listen.lower() != "none":
        listener = subprocess.Popen(listener_argv(environment.config_path, args.ws_listen))
        # A terminated server takes its listener with it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving on http://{args.listen}", flush=True)
    # waitress refuses bodies over 1 GiB by default; job outputs may be as large as ufdl.max_output_size.
    body_limit = max(environment.settings["ufdl.max_output_size"], environment.settings["ufdl.max_json_size"])
    try:
        waitress.serve(app, listen=args.listen, threads=args.threads, max_request_body_size=body_limit)
    finally:
        if listener is not None:
            listener.terminate()
            listener.wait(10)
    return 0
