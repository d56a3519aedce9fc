"""``ufdl websocket``: the progress channel's gevent listener, in a process of its own.

gevent must monkey-patch before psycopg is imported, and this command's process already imported it: it
replaces itself (exec) with a fresh interpreter that patches first.
"""
import os
import sys

from ..serving import parse_listen

# In the environment of the listener that `ufdl serve` starts beside itself (it then ignores Ctrl-C).
CHILD_OF_SERVE = "UFDL_LISTENER_CHILD_OF_SERVE"
# The listener's exit status when the database is not at the newest schema: `ufdl serve` does not start it again.
SCHEMA_NOT_CURRENT_EXIT = 3
LAUNCH = ("from gevent import monkey; monkey.patch_all()\n"
          "import sys\n"
          "from ufdl_pyramid.websocket import main\n"
          "sys.exit(main(sys.argv[1:]))\n")


def register(areas) -> None:
    command = areas.add_parser("websocket", help="serve the progress channel (gevent websocket listener)")
    command.add_argument("--listen", default="127.0.0.1:6544", metavar="HOST:PORT",
                         help="where to listen (default: 127.0.0.1:6544)")
    command.set_defaults(handler=run_websocket)


def listener_argv(config_path: str, listen: str) -> list[str]:
    return [sys.executable, "-c", LAUNCH, "-c", config_path, "--listen", listen]


def run_websocket(args, environment) -> int:
    environment.settings  # fail early, with a clear message, on a bad configuration
    try:  # here, before the exec: the listener's own check would come after its start-up logging
        parse_listen(args.listen, default_host="127.0.0.1")
    except ValueError as error:
        print(f"ufdl websocket: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    argv = listener_argv(environment.config_path, args.listen)
    os.execv(argv[0], argv)
