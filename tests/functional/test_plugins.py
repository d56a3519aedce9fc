"""Plugins seen from outside: discovery of installed distributions, the job-types table they fill at start-up,
``GET /v1/plugins`` and ``ufdl plugins list``. Distributions installed for one test are written into tmp_path
(a module and its ``*.dist-info``) and put on sys.path."""
import importlib
import importlib.metadata
import logging
import sys
import textwrap

import pytest
import webtest
from sqlalchemy import inspect

from ufdl_pyramid import main
from ufdl_pyramid.cli import main as ufdl
from ufdl_pyramid.models import get_engine
from ufdl_pyramid.plugins import PluginError, load_plugins
from ufdl_pyramid.services import schema
from ufdl_pyramid.services.job_types import import_type_class
from ufdl_pyramid.testing import TEST_SETTINGS, ApiClient, app_settings_for_tests, make_test_app

CORE_VERSION = importlib.metadata.version("ufdl-core-types")
CORE_LABEL = f"plugin 'core_types' (ufdl-core-types {CORE_VERSION})"

GADGETS = """
    from ufdl_pyramid.plugins import hookimpl
    from ufdl_pyramid.types import UFDLType


    class Gadget(UFDLType):
        name = "Gadget"


    @hookimpl
    def ufdl_register_types():
        return [Gadget]
"""

TYPO = """
    from ufdl_pyramid.plugins import hookimpl


    @hookimpl
    def ufdl_register_typos():
        return []
"""

BROKEN = """
    raise RuntimeError("the plugin is broken")
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Installs a plugin distribution for this test only: ``install(distribution, module, source, version)``;
    with ``distribution=None``, only the module."""
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = []

    def install(distribution: str | None, module: str, source: str, version: str = "1.0", folder=tmp_path):
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
        modules.append(module)
        importlib.invalidate_caches()  # the import system and importlib.metadata cache directory listings
        if distribution is None:
            return
        info = folder / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[ufdl_pyramid]\n{module} = {module}\n")
        importlib.invalidate_caches()

    yield install
    for module in modules:
        sys.modules.pop(module, None)


def client_of(app, user: ApiClient) -> ApiClient:
    """``user``'s token on another app built on the same database."""
    return ApiClient(webtest.TestApp(app), user.token)


def job_types(client: ApiClient) -> dict[str, dict]:
    return {row["name"]: row for row in client.post("/v1/job-types/list").json}


def test_the_core_types_are_in_the_job_types_table_and_import_back(alice):
    rows = job_types(alice)
    assert set(load_plugins(strict=True).types) <= set(rows)
    for name in ("str", "int", "Array", "Map", "Domain", "Dataset", "Model", "Contract", "Train", "Predict"):
        cls = import_type_class(rows[name]["pkg"], rows[name]["cls"])
        assert cls.name == name
    assert {key: rows["Train"][key] for key in ("pkg", "cls")} == {"pkg": "ufdl_core_types.contracts", "cls": "Train"}
    assert {key: rows["str"][key] for key in ("pkg", "cls")} == {"pkg": "ufdl_core_types.values", "cls": "String"}
    assert {key: rows["Contract"][key] for key in ("pkg", "cls")} == {
        "pkg": "ufdl_pyramid.types.contracts", "cls": "Contract"}


def test_start_up_puts_plugin_rows_back_and_keeps_the_others(engine, admin):
    before = job_types(admin)
    admin.delete(f"/v1/job-types/{before['Array']['pk']}")
    admin.patch(f"/v1/job-types/{before['str']['pk']}", {"cls": "ufdl_core_types.values.String"})
    own = admin.post("/v1/job-types/create", {"name": "Any", "pkg": "ufdl_pyramid.types", "cls": "AnyType"},
                     status=201).json

    after = job_types(client_of(make_test_app(engine), admin))
    assert after["str"] == before["str"]
    assert {key: after["Array"][key] for key in ("name", "pkg", "cls")} == {
        key: before["Array"][key] for key in ("name", "pkg", "cls")}
    assert after["Any"] == own


def test_plugin_objects_given_to_the_app_are_loaded_and_synced(engine, admin, install):
    install(None, "ufdl_gadgets_module", GADGETS)
    module = importlib.import_module("ufdl_gadgets_module")
    client = client_of(make_test_app(engine, extra_plugins=[module]), admin)
    assert {"name": "ufdl_gadgets_module", "distribution": None, "version": None, "types": ["Gadget"],
            "contracts": [], "executors": [], "notifiers": [], "error": None} in client.get("/v1/plugins").json
    row = job_types(client)["Gadget"]
    assert (row["pkg"], row["cls"]) == ("ufdl_gadgets_module", "Gadget")


def test_an_installed_distribution_is_discovered_and_its_types_synced(engine, admin, install):
    install("ufdl-gadgets", "ufdl_gadgets_plugin", GADGETS, version="2.3")
    gadgets = next(plugin for plugin in load_plugins(strict=True).plugins if plugin.name == "ufdl_gadgets_plugin")
    assert (gadgets.distribution, gadgets.version, gadgets.types) == ("ufdl-gadgets", "2.3", ("Gadget",))

    client = client_of(make_test_app(engine), admin)
    assert {"name": "ufdl_gadgets_plugin", "distribution": "ufdl-gadgets", "version": "2.3", "types": ["Gadget"],
            "contracts": [], "executors": [], "notifiers": [], "error": None} in client.get("/v1/plugins").json
    row = job_types(client)["Gadget"]
    assert (row["pkg"], row["cls"]) == ("ufdl_gadgets_plugin", "Gadget")
    assert import_type_class(row["pkg"], row["cls"]).name == "Gadget"


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(engine, admin, install, caplog):
    install("ufdl-broken", "ufdl_broken_plugin", BROKEN, version="0.9")
    reason = "cannot import 'ufdl_broken_plugin': RuntimeError: the plugin is broken"
    client = client_of(make_test_app(engine), admin)
    assert {"name": "ufdl_broken_plugin", "distribution": "ufdl-broken", "version": "0.9", "types": [],
            "contracts": [], "executors": [], "notifiers": [], "error": reason} in client.get("/v1/plugins").json
    assert f"plugin 'ufdl_broken_plugin' (ufdl-broken 0.9) skipped: {reason}" in caplog.text
    assert "Train" in job_types(client)


def test_a_plugin_that_fails_to_import_is_fatal_when_strict(engine, install):
    install("ufdl-broken", "ufdl_broken_plugin", BROKEN, version="0.9")
    with pytest.raises(PluginError, match=r"plugin 'ufdl_broken_plugin' \(ufdl-broken 0.9\) failed to load: "
                                          "cannot import 'ufdl_broken_plugin': RuntimeError: the plugin is broken"):
        make_test_app(engine, **{"ufdl.plugins.strict": "true"})


def test_a_misspelled_hook_fails_start_up_naming_the_plugin(engine, install):
    install("ufdl-typo", "ufdl_typo_plugin", TYPO)
    with pytest.raises(PluginError) as caught:
        make_test_app(engine)
    assert "plugin 'ufdl_typo_plugin' (ufdl-typo 1.0)" in str(caught.value)
    assert "unknown hook 'ufdl_register_typos'" in str(caught.value)


def test_a_type_name_from_two_distributions_fails_naming_both(engine, install):
    install("ufdl-gadgets-a", "ufdl_gadgets_a", GADGETS)
    install("ufdl-gadgets-b", "ufdl_gadgets_b", GADGETS)
    with pytest.raises(PluginError) as caught:
        make_test_app(engine)
    assert str(caught.value) == ("The type name 'Gadget' is registered by both plugin 'ufdl_gadgets_a' "
                                 "(ufdl-gadgets-a 1.0) and plugin 'ufdl_gadgets_b' (ufdl-gadgets-b 1.0)")


def test_a_core_type_name_claimed_again_fails_naming_both(install):
    install("ufdl-strings", "ufdl_strings", GADGETS.replace('"Gadget"', '"str"'))
    with pytest.raises(PluginError) as caught:
        load_plugins(strict=False)
    assert str(caught.value) == (f"The type name 'str' is registered by both {CORE_LABEL} and plugin "
                                 "'ufdl_strings' (ufdl-strings 1.0)")


def test_one_distribution_found_twice_on_the_path_is_loaded_once(tmp_path, monkeypatch, install):
    install("ufdl-gadgets", "ufdl_gadgets_plugin", GADGETS)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    install("ufdl_Gadgets", "ufdl_gadgets_plugin_copy", GADGETS, folder=shadow)
    (shadow / "ufdl_Gadgets-1.0.dist-info" / "entry_points.txt").write_text(
        "[ufdl_pyramid]\nufdl_gadgets_plugin = ufdl_gadgets_plugin_copy\n")
    monkeypatch.syspath_prepend(str(shadow))
    names = [plugin.name for plugin in load_plugins(strict=True).plugins]
    assert names.count("ufdl_gadgets_plugin") == 1
    # The copy comes first on sys.path: it is the one Python would import, so it is the one loaded.
    assert "ufdl_gadgets_plugin_copy" in sys.modules and "ufdl_gadgets_plugin" not in sys.modules


def test_two_distributions_with_one_entry_point_name_fail(tmp_path, install):
    install("ufdl-gadgets-a", "ufdl_gadgets_a", GADGETS)
    install("ufdl-gadgets-b", "ufdl_gadgets_b", GADGETS)
    (tmp_path / "ufdl_gadgets_b-1.0.dist-info" / "entry_points.txt").write_text(
        "[ufdl_pyramid]\nufdl_gadgets_a = ufdl_gadgets_b\n")
    importlib.invalidate_caches()
    with pytest.raises(PluginError, match=r"plugin 'ufdl_gadgets_a' \(ufdl-gadgets-a 1.0\) and plugin "
                                          r"'ufdl_gadgets_a' \(ufdl-gadgets-b 1.0\) use the same entry-point name"):
        load_plugins(strict=False)


def test_plugins_api_is_for_admins(admin, alice, anonymous):
    plugins = admin.get("/v1/plugins").json
    core = next(plugin for plugin in plugins if plugin["name"] == "core_types")
    assert core["distribution"] == "ufdl-core-types" and core["version"] == CORE_VERSION
    assert core["contracts"] == ["Contract", "Train", "Predict", "Process"]
    assert "str" in core["types"] and "Array" in core["types"]
    assert (core["executors"], core["notifiers"], core["error"]) == ([], [], None)
    assert alice.get("/v1/plugins", status=403).json == {"detail": "You do not have permission to perform this action."}
    response = anonymous.get("/v1/plugins", status=401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    admin.post("/v1/plugins", status=405)
    admin.get("/v1/plugins/core_types", status=404)


def test_no_sync_before_the_schema_is_current(tmp_path, caplog):
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/unmigrated.sqlite"})
    try:
        make_test_app(engine)
        assert "the database schema is not current" in caplog.text
        assert not inspect(engine).has_table("job_types")
    finally:
        engine.dispose()


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "cli.ini"
    path.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = sqlite:///{tmp_path}/cli.sqlite\n"
                    f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n")
    return str(path)


def test_cli_lists_plugins_and_what_they_registered(ini, install, capsys):
    install("ufdl-gadgets", "ufdl_gadgets_plugin", GADGETS, version="2.3")
    install("ufdl-broken", "ufdl_broken_plugin", BROKEN, version="0.9")
    assert ufdl(["-c", ini, "plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert (f"core_types\tufdl-core-types {CORE_VERSION}\n  types: str, float, int, bool, JSON, Nothing, BLOB, "
            "Array, Map, PK, Name, Domain, Framework, Licence, Model, Dataset, JobOutput\n"
            "  contracts: Contract, Train, Predict, Process\n  executors: -\n  notifiers: -\n") in out
    assert ("ufdl_gadgets_plugin\tufdl-gadgets 2.3\n  types: Gadget\n  contracts: -\n  executors: -\n"
            "  notifiers: -\n") in out
    assert ("ufdl_broken_plugin\tufdl-broken 0.9\n"
            "  error: cannot import 'ufdl_broken_plugin': RuntimeError: the plugin is broken\n") in out


def test_cli_fails_on_a_broken_plugin_when_strict(ini, install, capsys, monkeypatch):
    install("ufdl-broken", "ufdl_broken_plugin", BROKEN, version="0.9")
    monkeypatch.setenv("UFDL_PLUGINS_STRICT", "true")
    assert ufdl(["-c", ini, "plugins", "list"]) == 1
    assert capsys.readouterr().err == (
        "ufdl: plugin 'ufdl_broken_plugin' (ufdl-broken 0.9) failed to load: cannot import 'ufdl_broken_plugin': "
        "RuntimeError: the plugin is broken (ufdl.plugins.strict is set)\n")


def test_cli_lists_plugins_without_an_ini(tmp_path, install, capsys, monkeypatch):
    """It needs only the installed entry points (and ufdl.plugins.strict): it said "no configuration file
    'development.ini'" where there was none, and "no database" with production.ini and no UFDL_DATABASE_URL."""
    monkeypatch.chdir(tmp_path)  # no development.ini here
    monkeypatch.delenv("UFDL_DATABASE_URL", raising=False)
    monkeypatch.delenv("UFDL_AUTH_SECRET", raising=False)
    assert ufdl(["plugins", "list"]) == 0
    assert f"core_types\tufdl-core-types {CORE_VERSION}\n" in capsys.readouterr().out
    production = tmp_path / "production.ini"
    production.write_text("[app:main]\nuse = egg:ufdl-pyramid\n")
    assert ufdl(["-c", str(production), "plugins", "list"]) == 0
    assert f"core_types\tufdl-core-types {CORE_VERSION}\n" in capsys.readouterr().out
    install("ufdl-broken", "ufdl_broken_plugin", BROKEN, version="0.9")
    monkeypatch.setenv("UFDL_PLUGINS_STRICT", "true")  # the environment still counts
    assert ufdl(["plugins", "list"]) == 1
    assert "(ufdl.plugins.strict is set)" in capsys.readouterr().err
    production.write_text("[app:main]\nuse = egg:ufdl-pyramid\nufdl.plugins.strict = maybe\n")
    monkeypatch.delenv("UFDL_PLUGINS_STRICT")
    assert ufdl(["-c", str(production), "plugins", "list"]) == 1
    assert capsys.readouterr().err == ("ufdl: setting ufdl.plugins.strict (UFDL_PLUGINS_STRICT): not a boolean: "
                                       "'maybe'\n")


def test_cli_plugins_list_with_an_ini_named_that_does_not_exist_is_an_error(tmp_path, capsys):
    """A -c given is meant: a misspelt one says so rather than listing with the defaults."""
    assert ufdl(["-c", str(tmp_path / "prodution.ini"), "plugins", "list"]) == 1
    assert capsys.readouterr().err == f"ufdl: no configuration file {str(tmp_path / 'prodution.ini')!r} (give one " \
                                      "with -c)\n"


def test_start_up_logs_what_it_changed_in_the_job_types_table(engine, admin, caplog):
    caplog.set_level(logging.INFO, logger="ufdl_pyramid.plugins_config")
    make_test_app(engine)
    assert "job types from plugins" not in caplog.text  # all there already: nothing to tell
    before = job_types(admin)
    admin.delete(f"/v1/job-types/{before['Array']['pk']}")
    admin.patch(f"/v1/job-types/{before['str']['pk']}", {"cls": "ufdl_core_types.values.String"})
    make_test_app(engine)
    assert "job types from plugins: added Array; updated str" in caplog.text


def test_no_sync_while_the_schema_is_behind(tmp_path, caplog):
    """A database migrated, but not to the newest revision, is not current either. The server still starts
    (``main``: its start is not marked on the lease clock, whose table is not there yet)."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/behind.sqlite"})
    try:
        schema.upgrade(engine, "0001")
        main({}, **app_settings_for_tests(engine))
        assert "the database schema is not current" in caplog.text
        assert not inspect(engine).has_table("lease_clock")
    finally:
        engine.dispose()


def test_a_job_type_whose_module_fails_to_import_is_400(admin, install):
    """Not only a missing module: any error a module raises while it is imported is the caller's bad input."""
    install(None, "ufdl_broken_module", BROKEN)
    refused = admin.post("/v1/job-types/create", {"name": "Broken", "pkg": "ufdl_broken_module", "cls": "Broken"},
                         status=400).json
    assert refused == {"detail": "Cannot import package 'ufdl_broken_module': RuntimeError: the plugin is broken"}
