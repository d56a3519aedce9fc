"""``ufdl db upgrade``: create or migrate the database schema."""
from ..services import schema


def register(areas) -> None:
    area = areas.add_parser("db", help="database schema")
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="migrate the database to the newest schema")
    upgrade.set_defaults(handler=run_upgrade)


def run_upgrade(args, environment) -> int:
    schema.upgrade(environment.engine)
    print(f"database at the newest schema ({environment.engine.url.render_as_string(hide_password=True)})")
    return 0
