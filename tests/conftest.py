"""Fixtures: one migrated database per session (SQLite, or PostgreSQL via UFDL_TEST_DATABASE_URL), emptied
after every test; the real WSGI app; clients logged in as an admin and as ordinary users."""
import logging

import pytest
import webtest

from ufdl_pyramid.testing import (ApiClient, DatabaseCleaner, UserFactory, create_test_engine, make_test_app,
                                  database_url_for_tests)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    engine = create_test_engine(database_url_for_tests(str(tmp_path_factory.mktemp("db"))))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def cleaner(engine):
    return DatabaseCleaner(engine)


@pytest.fixture(autouse=True)
def clean_database(cleaner):
    yield
    cleaner.reset()


@pytest.fixture(scope="session")
def wsgi_app(engine):
    return make_test_app(engine)


@pytest.fixture
def testapp(wsgi_app, cleaner):
    return webtest.TestApp(wsgi_app)


@pytest.fixture
def anonymous(testapp):
    return ApiClient(testapp)


@pytest.fixture
def users(engine, testapp):
    return UserFactory(engine, testapp)


@pytest.fixture
def admin(users):
    return users.login("admin", admin=True)


@pytest.fixture
def alice(users):
    return users.login("alice")


@pytest.fixture
def bob(users):
    return users.login("bob")


@pytest.fixture(autouse=True)
def no_server_errors(request, caplog):
    """Fail any test during which the server answered 500: bad input must never reach that far."""
    yield
    if request.node.get_closest_marker("allow_500"):
        return
    # The records of the test itself: in teardown, caplog.records holds only the teardown's own.
    crashes = [record for phase in ("setup", "call") for record in caplog.get_records(phase)
               if record.name == "ufdl_pyramid.views.errors" and record.levelno >= logging.ERROR]
    assert not crashes, f"the server answered 500: {crashes[0].getMessage()}"
