"""``ufdl db upgrade``: create or migrate the database schema; ``ufdl db revision``: write a new migration."""
import sys

from alembic.util import CommandError

from ..services import schema


def register(areas) -> None:
    area = areas.add_parser("db", help="database schema")
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="migrate the database to the newest schema")
    upgrade.set_defaults(handler=run_upgrade)
    revision = actions.add_parser("revision", help="(development) write a migration of what the models changed, "
                                                   "compared with the database (at the newest schema)")
    revision.add_argument("-m", "--message", required=True, help="what it changes, one line")
    revision.add_argument("--empty", action="store_true", help="compare nothing: an empty migration to fill in")
    revision.add_argument("--dir", help="write it there (default: the package's migrations/versions)")
    revision.set_defaults(handler=run_revision)


def run_upgrade(args, environment) -> int:
    try:
        schema.upgrade(environment.engine)
    except CommandError as error:  # it was a traceback
        # A revision this code does not know: a newer release migrated the database (it has no downgrade here).
        newer = " (a newer ufdl-pyramid migrated this database: run that one)" if "Can't locate" in str(error) else ""
        print(f"ufdl: {error}{newer}", file=sys.stderr)
        return 1
    print(f"database at the newest schema ({environment.engine.url.render_as_string(hide_password=True)})")
    return 0


def run_revision(args, environment) -> int:
    try:
        path = schema.new_revision(environment.engine, args.message, autogenerate=not args.empty,
                                   folder=args.dir)
    except CommandError as error:  # e.g. the database is not at the newest schema: upgrade it first
        print(f"ufdl: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}: review it before committing")
    return 0
