"""``ufdl serve``: the REST API on waitress (``--workers`` processes), and (development) the progress channel's
websocket listener beside it in a child process (``--ws-listen``, ``none`` to leave it out): waitress cannot
upgrade. Waitress's options come from the INI's ``[server:main]`` (as for ``pserve``); flags override them."""
import os
import signal
import subprocess
import sys
import threading
import time

import plaster
from pyramid.paster import get_app

from .. import serving
from ..notifications_config import send_what_is_left
from .websocket import CHILD_OF_SERVE, SCHEMA_NOT_CURRENT_EXIT, listener_argv

DEFAULT_LISTEN = "127.0.0.1:6543"
# ``[server:main]`` keys that are not waitress options, or that ``ufdl serve`` handles itself (it binds).
NOT_WAITRESS = {"use", "here", "__file__", "listen", "host", "port", "unix_socket"}


def register(areas) -> None:
    serve = areas.add_parser("serve", help="serve the API with waitress")
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="where to listen, *:PORT for every interface (default: [server:main] listen, or its host "
                       f"and port, else {DEFAULT_LISTEN})")
    serve.add_argument("--threads", type=int, help="threads per worker process (default: [server:main], else 8)")
    serve.add_argument("--workers", type=int, default=1,
                       help="processes sharing the listening socket (PostgreSQL; about one per core)")
    serve.add_argument("--ws-listen", default="127.0.0.1:6544", metavar="HOST:PORT",
                       help="where the progress channel listens (a child process); 'none': not started")
    serve.set_defaults(handler=run_serve)


def waitress_options(section: dict, args) -> dict:
    """Waitress's options: ``[server:main]``'s, with the flags' values over them."""
    options = {key: value for key, value in section.items() if key not in NOT_WAITRESS}
    if args.threads is not None:
        options["threads"] = args.threads
    options.setdefault("threads", 8)
    return options


def ini_host_port(section: dict) -> str | None:
    """``[server:main]``'s ``host`` and ``port`` as ``HOST:PORT`` (waitress's defaults for the one not given, as
    under pserve), or None when neither is given."""
    host, port = section.get("host"), section.get("port")
    if not host and not port:
        return None
    host = host or "0.0.0.0"
    return f"{f'[{host}]' if ':' in host else host}:{port or 8080}"


def run_serve(args, environment) -> int:
    settings = environment.settings  # fail early, with a clear message, on a bad configuration
    section = plaster.get_settings(environment.config_path, "server:main")
    options = waitress_options(section, args)
    if args.workers < 1 or not str(options["threads"]).isdigit() or int(options["threads"]) < 1:
        print("ufdl: --workers and --threads must be at least 1", file=sys.stderr)
        return 2
    # waitress refuses bodies over 1 GiB by default; job outputs may be as large as ufdl.max_output_size.
    options.setdefault("max_request_body_size",
                       max(settings["ufdl.max_output_size"], settings["ufdl.max_json_size"]))
    if section.get("unix_socket"):  # dropped, it served TCP on the default address instead
        print("ufdl: [server:main] unix_socket: ufdl serve listens on TCP only (give listen = HOST:PORT, or serve "
              "the socket with pserve)", file=sys.stderr)
        return 1
    listen = args.listen or section.get("listen") or ini_host_port(section) or DEFAULT_LISTEN
    try:
        sockets = [serving.bind(address) for address in listen.split()]
    except (ValueError, OSError) as error:
        print(f"ufdl: cannot listen on {listen}: {error}", file=sys.stderr)
        return 1
    listener = None
    with_channel = bool(args.ws_listen) and args.ws_listen.lower() != "none"
    if with_channel:
        try:  # taken (another server's listener, say): say so now, not in the child's traceback
            serving.bind(args.ws_listen).close()
        except (ValueError, OSError) as error:
            print(f"ufdl: cannot listen on {args.ws_listen} (the progress channel; --ws-listen none leaves it "
                  f"out): {error}", file=sys.stderr)
            return 1
        # A terminated server takes its listener with it (handlers first: no signal may orphan the child).
        for stop_signal in serving.STOP_SIGNALS:
            signal.signal(stop_signal, lambda *_: sys.exit(0))
    try:
        if with_channel:
            listener = ListenerChild(listener_argv(environment.config_path, args.ws_listen))

        def load_app():
            app = forkable_app(environment.config_path)
            # Said once the app is built: an app that cannot be built was announced as served, then failed.
            print(f"serving on http://{' http://'.join(listen.split())} ({args.workers} worker(s) of "
                  f"{options['threads']} threads)", flush=True)
            return app
        return serving.serve(load_app, sockets, workers=args.workers, on_stop=send_what_is_left, **options)
    except ValueError as error:  # a bad waitress option of [server:main]
        print(f"ufdl: {error}", file=sys.stderr)
        return 1
    finally:
        if listener is not None:
            listener.stop()


def forkable_app(config_path: str):
    """The app, with its connection pool emptied: the workers are forked from it, and a connection shared by
    two processes would mix their conversations. Each worker opens its own connections as it serves."""
    app = get_app(config_path, "main")
    app.registry["db.engine"].dispose()
    return app


class ListenerChild:
    """The progress channel's process beside a development server, started again when it dies (a crash, a
    kill); left stopped after three deaths in a row within seconds of their start (it cannot run), or at once when
    the database is not at the newest schema (it said so)."""

    QUICK = 5.0  # seconds: a listener that dies sooner did not really start

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.lock = threading.Lock()
        self.stopping = False
        self.process = self._start()
        self.watcher = threading.Thread(target=self._watch, name="progress-channel", daemon=True)
        self.watcher.start()

    def _start(self) -> subprocess.Popen:
        # It ignores Ctrl-C (which reaches the whole process group): this server stops it, and only then.
        return subprocess.Popen(self.argv, env={**os.environ, CHILD_OF_SERVE: "1"})

    def _watch(self) -> None:
        quick_deaths = 0
        while True:
            started = time.monotonic()
            code = self.process.wait()
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < self.QUICK else 0
            with self.lock:
                if self.stopping or code == SCHEMA_NOT_CURRENT_EXIT:  # it said what to do: to start again is not it
                    return
                if quick_deaths >= 3:
                    print(f"ufdl: the progress channel keeps stopping (exit {code}); it is left stopped",
                          file=sys.stderr, flush=True)
                    return
                print(f"ufdl: the progress channel stopped (exit {code}); starting it again", file=sys.stderr,
                      flush=True)
                time.sleep(1)
                self.process = self._start()

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.process.terminate()
        self.process.wait(10)
