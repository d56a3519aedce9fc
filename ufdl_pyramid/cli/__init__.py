"""The ``ufdl`` command: ``ufdl [-c INI] AREA ACTION ...``. Each area lives in its own module."""
import argparse
import logging
import re
import sys

from sqlalchemy.exc import DBAPIError

from ..errors import ServiceError
from ..models import database_error_line
from ..settings import SettingsError
from ..plugins import PluginError
from ..services import schema
from ..worker.api import ApiError
from . import db, events, jobs, outputs, plugins, serve, templates, users, websocket, worker
from .environment import DEFAULT_CONFIG, CliEnvironment

INTERRUPTED = 130  # as a shell reports a command that SIGINT ended

AREAS = (db, users, plugins, templates, serve, worker, websocket, events, outputs, jobs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ufdl", description="Manage and run a ufdl-pyramid server.")
    parser.add_argument("-c", "--config", default=None, metavar="INI",
                        help="the PasteDeploy INI file (default: development.ini)")
    areas = parser.add_subparsers(dest="area", metavar="AREA", required=True)
    for area in AREAS:
        area.register(areas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_attach_negative_ages(sys.argv[1:] if argv is None else argv))
    environment = CliEnvironment(args.config or DEFAULT_CONFIG, given=args.config is not None)
    try:
        return args.handler(args, environment) or 0
    except (SettingsError, ServiceError, PluginError) as error:
        print(f"ufdl: {getattr(error, 'detail', error)}", file=sys.stderr)
        return 1
    except ApiError as error:  # the server refused a client command (bad credentials, not a ufdl server)
        print(f"ufdl: {error}", file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        print(f"ufdl: {error}", file=sys.stderr)
        return 1
    except DBAPIError as error:  # the database cannot be reached, or refused us: its own first line says why
        hint = _schema_hint(args, environment)
        print(f"ufdl: database error: {database_error_line(error)}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C in long work (a sync, an export, a sweep): it was a traceback
        print("ufdl: interrupted", file=sys.stderr)
        return INTERRUPTED


def _attach_negative_ages(argv: list[str]) -> list[str]:
    """``--older-than -1h`` as ``--older-than=-1h``: argparse takes a value starting with '-' for an option (unless it
    is a bare number), and answered "expected one argument" where the age's own check says what is wrong."""
    argv = list(argv)
    for index in range(len(argv) - 2, -1, -1):
        if argv[index] == "--older-than" and re.match(r"-[\d.]", argv[index + 1]):
            argv[index:index + 2] = [f"--older-than={argv[index + 1]}"]
    return argv


def _schema_hint(args, environment) -> str:
    """A command run before ``ufdl db upgrade`` said only "no such table: users": say what to do."""
    if args.area == "db":
        return ""
    quiet = logging.getLogger("alembic.runtime.migration")  # its INFO lines would split the one-line error
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        behind = not schema.is_current(environment.engine)
    except Exception:  # noqa: BLE001 - the database cannot tell (unreachable): its error says enough
        return ""
    finally:
        quiet.setLevel(level)
    return " (the database is not at the newest schema: run 'ufdl db upgrade')" if behind else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
