"""Bringing a database's schema up to date with the migrations shipped in the package."""
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine


def alembic_config(engine: Engine, extra_versions: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "ufdl_pyramid:migrations")
    if extra_versions:  # a folder a new revision may be written to (besides the package's own)
        config.set_main_option("path_separator", "newline")  # ':' is in the package's, and may be in a path
        config.set_main_option("version_locations", f"ufdl_pyramid:migrations/versions\n{extra_versions}")
    config.attributes["engine"] = engine
    return config


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def new_revision(engine: Engine, message: str, *, autogenerate: bool = True, folder: str | None = None) -> str:
    """Write a migration (by default: what the models changed since the database's schema, which must be
    the newest); the path of its file."""
    config = alembic_config(engine, folder)
    head = ScriptDirectory.from_config(config).get_current_head() or "0000"
    # Our revisions are numbered (0001, 0002, ...), so that their order reads at a glance.
    script = command.revision(config, message, autogenerate=autogenerate, version_path=folder,
                              rev_id=f"{int(head) + 1:04d}" if head.isdigit() else None)
    return script.path


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def head() -> str:
    """The newest migration's revision: the schema this code expects."""
    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head()
