"""Test support shipped in the package, so that plugin distributions test against the server the same way.

A fresh schema per test session (migrated with the real migrations), every table emptied and the seeded rows
restored between tests, and a WebTest client that speaks to the real WSGI app like the UFDL clients do.
Truncation rather than a rolled-back outer transaction: the server commits for real, so tests with threads,
several connections or a second process see exactly what production would.
"""
import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

import transaction
import webtest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from . import make_config
from .models import Base, get_engine, get_session_factory, get_tm_session
from .plugins import load_plugins
from .services import schema
from .services.auth import AuthConfig, AuthService
from .services.job_type_sync import sync_job_types

TEST_SETTINGS = {
    "ufdl.auth.secret": "test-secret-not-for-production-0123456789",
    # Cheap hashing: tests log in hundreds of times.
    "ufdl.auth.argon2_time_cost": "1",
    "ufdl.auth.argon2_memory_cost": "1024",
    "retry.attempts": "3",
    # No lease checks of the app's own in the background: a test expires leases when it means to.
    "ufdl.leases.check_interval": "0",
    # Encrypts the secret settings of Scale job types (32 bytes: "test-only-key-not-for-production").
    "ufdl.seed.secret_key": "dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=",
}


def database_url_for_tests(tmp_dir: str) -> str:
    return os.environ.get("UFDL_TEST_DATABASE_URL") or f"sqlite:///{tmp_dir}/ufdl-test.sqlite"


def create_test_engine(url: str) -> Engine:
    """An engine on an emptied, freshly migrated database."""
    engine = get_engine({"sqlalchemy.url": url, "ufdl.db.pool_size": 20})
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    schema.upgrade(engine)
    return engine


class DatabaseCleaner:
    """Empties every table after a test and puts back the rows every test starts from: those the migrations
    seeded and the job types of the installed plugins.

    The app syncs the plugins' types into the job-types table when it is built. The cleaner runs the same sync
    itself before taking its snapshot, so the snapshot does not depend on whether an app was built first, and
    rows synced from a test's extra plugins go with the rest of that test's rows.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.tables = list(reversed(Base.metadata.sorted_tables))
        sync_job_types(engine, load_plugins(strict=False).types)
        with engine.connect() as connection:
            self.seeds = {table: [dict(row._mapping) for row in connection.execute(table.select())]
                          for table in Base.metadata.sorted_tables}

    def reset(self) -> None:
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                names = ", ".join(f'"{table.name}"' for table in self.tables)
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in self.tables:
                    connection.execute(table.delete())
                # AUTOINCREMENT's counters, as RESTART IDENTITY does (the seeds' inserts set them again).
                connection.execute(text("DELETE FROM sqlite_sequence"))
            for table in Base.metadata.sorted_tables:
                if self.seeds[table]:
                    connection.execute(table.insert(), self.seeds[table])
                    if self.engine.dialect.name == "postgresql":
                        connection.execute(text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT max(id) FROM \"{table.name}\"))"))


_storage_path_for_tests: str | None = None


def storage_path_for_tests() -> str:
    """One temporary output directory per test process (removed at exit), unless a test names its own."""
    global _storage_path_for_tests
    if _storage_path_for_tests is None:
        _storage_path_for_tests = tempfile.mkdtemp(prefix="ufdl-test-outputs-")
        atexit.register(shutil.rmtree, _storage_path_for_tests, ignore_errors=True)
    return _storage_path_for_tests


def make_test_app(engine: Engine, extra_plugins: Iterable[object] = (), **settings):
    """The WSGI app on ``engine``; ``extra_plugins`` are plugin objects registered besides the installed ones.

    Outputs go to a temporary directory (`storage_path_for_tests`) unless ``ufdl.storage.path`` is given.
    Unlike ``ufdl_pyramid.main`` (a server starting), it does not mark the lease clock."""
    return make_config(app_settings_for_tests(engine, extra_plugins, **settings)).make_wsgi_app()


def app_settings_for_tests(engine: Engine, extra_plugins: Iterable[object] = (), **settings) -> dict:
    """The settings of ``make_test_app`` (for ``ufdl_pyramid.main``, say)."""
    settings.setdefault("ufdl.storage.path", storage_path_for_tests())
    return {**TEST_SETTINGS, "sqlalchemy.url": str(engine.url), "ufdl.db.engine": engine,
            "ufdl.plugins.extra": list(extra_plugins), **settings}


def notifications_sent(app, timeout: float = 10) -> None:
    """Wait until the notification thread of ``app`` (our WSGI app) has sent what was committed so far."""
    assert app.registry["ufdl.notifier"].outbox.drain(timeout), "notifications still unsent"


@dataclass
class ApiClient:
    """A WebTest client that sends a user's Bearer token (and Node-Id) on every request."""

    app: webtest.TestApp
    token: str | None = None
    refresh_token: str | None = None
    node_id: int | None = None
    user_id: int | None = None

    def headers(self, extra: dict | None = None) -> dict:
        headers = {"Accept": "*/*"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.node_id is not None:
            headers["Node-Id"] = str(self.node_id)
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, json=None, *, status=None, headers=None, body: bytes | None = None,
                content_type: str | None = None):
        # WebTest checks ``status`` only without expect_errors (which would let any status through).
        kwargs = {"headers": self.headers(headers), "status": status}
        if json is not None:
            return getattr(self.app, f"{method.lower()}_json")(path, json, **kwargs)
        if body is not None:
            kwargs["params"] = body
            kwargs["content_type"] = content_type or "application/octet-stream"
        return getattr(self.app, method.lower())(path, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.request("POST", path, json, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.request("PUT", path, json, **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.request("PATCH", path, json, **kwargs)

    def delete(self, path, json=None, **kwargs):
        return self.request("DELETE", path, json, **kwargs)

    def as_node(self, node_id: int | None) -> "ApiClient":
        return ApiClient(self.app, self.token, self.refresh_token, node_id, self.user_id)


class UserFactory:
    """Creates users straight in the database and logs them in through the API."""

    def __init__(self, engine: Engine, app: webtest.TestApp):
        self.engine = engine
        self.app = app
        self.config = AuthConfig.from_settings({
            "ufdl.auth.secret": TEST_SETTINGS["ufdl.auth.secret"], "ufdl.auth.access_ttl": 300,
            "ufdl.auth.refresh_ttl": 3600, "ufdl.auth.argon2_time_cost": 1, "ufdl.auth.argon2_memory_cost": 1024})

    def create(self, username: str, *, admin: bool = False, password: str = "password123") -> int:
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            db = get_tm_session(get_session_factory(self.engine), manager)
            return AuthService(db, self.config).create_user(username, password, is_admin=admin).id

    def login(self, username: str, *, admin: bool = False, password: str = "password123") -> ApiClient:
        user_id = self.create(username, admin=admin, password=password)
        tokens = self.app.post_json("/v1/auth/obtain", {"username": username, "password": password}).json
        return ApiClient(self.app, tokens["access"], tokens["refresh"], user_id=user_id)
