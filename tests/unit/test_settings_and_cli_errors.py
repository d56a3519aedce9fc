"""Settings that cannot work stop the start with one line, and so does a database the CLI cannot use (a
negative ping interval dropped every watcher at once; a bad URL printed 120 lines of traceback)."""
import pytest

from ufdl_pyramid.cli import main as ufdl
from ufdl_pyramid.settings import SettingsError, load_settings

BASE = {"sqlalchemy.url": "sqlite://", "ufdl.auth.secret": "x" * 32}


@pytest.mark.parametrize("name, value", [
    ("ufdl.ws_ping_interval", "-1"), ("ufdl.ws_ping_interval", "0"), ("ufdl.node_timeout", "nan"),
    ("ufdl.max_tries", "0"), ("ufdl.events.retention", "30x"), ("ufdl.events.retention", "0d"),
    ("ufdl.max_page_size", "-5"), ("ufdl.node_timeout", "inf"), ("ufdl.node_timeout", "1e300"),
    ("ufdl.events.retention", "1e300d"), ("ufdl.max_json_size", "0"), ("ufdl.max_output_size", "-1M"),
    ("ufdl.max_output_size", "0.5"), ("ufdl.max_registry_size", "nan"),
    # Taken as they were: the first login (or the start-up's dummy hash) then failed with argon2's traceback.
    ("ufdl.auth.argon2_time_cost", "0"), ("ufdl.auth.argon2_time_cost", "-1"),
    ("ufdl.auth.argon2_memory_cost", "0"), ("ufdl.auth.argon2_memory_cost", "31"),
    ("ufdl.auth.argon2_memory_cost", "-19456"), ("ufdl.auth.argon2_memory_cost", str(2 ** 32)),
    # Token lifetimes past what a date holds ("never expire"): every login was a 500 (the expiry overflowed).
    ("ufdl.auth.access_ttl", "1000000000000"), ("ufdl.auth.refresh_ttl", "1000000000000"),
    ("ufdl.auth.refresh_ttl", str(10 * 365 * 86400 + 1)),
    # Taken as they were: every e-mail notification then failed to send.
    ("ufdl.smtp.port", "0"), ("ufdl.smtp.port", "-25"), ("ufdl.smtp.port", "65536"),
    # Not a Fernet key: the first Scale job type with a secret setting would fail instead.
    ("ufdl.seed.secret_key", "short"), ("ufdl.seed.secret_key", "x" * 44),
])
def test_settings_that_cannot_work_are_refused(name, value):
    with pytest.raises(SettingsError, match=name.replace(".", r"\.")):
        load_settings({**BASE, name: value}, environ={})


@pytest.mark.parametrize("name, value, message", [
    ("ufdl.node_timeout", "abc", "must be a number above 0, not 'abc'"),
    ("ufdl.max_tries", "2.5", "must be a whole number above 0, not '2.5'"),
    ("ufdl.max_output_size", "lots", "must be a size such as 512K, 1M or 10G, not 'lots'"),
    ("ufdl.max_json_size", "0", "must be a size of at least 1 byte, not '0'"),
    ("ufdl.leases.check_interval", "", "must be a number of seconds (0: off), not ''"),
    ("ufdl.smtp.port", "70000", "must be a whole number from 1 to 65535, not '70000'"),
    ("ufdl.auth.argon2_memory_cost", "8", "must be a whole number from 32 to 4294967295, not '8'"),
    ("ufdl.events.retention", "30x", "must be an age above 0 such as 30d, 12h, 15m or 90s, not '30x'"),
    ("ufdl.events.retention", "0d", "must be an age above 0 such as 30d, 12h, 15m or 90s, not '0d'"),
])
def test_a_value_that_does_not_parse_is_said_in_the_settings_terms(name, value, message):
    """Python's own words before: "could not convert string to float: 'abc'"."""
    with pytest.raises(SettingsError) as refused:
        load_settings({**BASE, name: value}, environ={})
    assert str(refused.value).endswith(f": {message}"), refused.value


def test_good_settings_load():
    settings = load_settings({**BASE, "ufdl.events.retention": "30d", "ufdl.ws_ping_interval": "0.5"}, environ={})
    assert settings["ufdl.events.retention"] == "30d" and settings["ufdl.ws_ping_interval"] == 0.5
    settings = load_settings({**BASE, "ufdl.smtp.port": "587", "ufdl.auth.argon2_time_cost": "1",
                              "ufdl.auth.argon2_memory_cost": "32"}, environ={})
    assert (settings["ufdl.smtp.port"], settings["ufdl.auth.argon2_time_cost"],
            settings["ufdl.auth.argon2_memory_cost"]) == (587, 1, 32)
    # An empty variable (a usual way to unset one in compose or systemd files) is unset: events kept for ever.
    assert load_settings(BASE, environ={"UFDL_EVENTS_RETENTION": ""})["ufdl.events.retention"] is None


@pytest.mark.parametrize("url, expected", [
    ("postgresql+psycopg://postgres@127.0.0.1:1/nothing", "ufdl: database error: "),
    ("mysql://x/y", "ufdl: the database URL cannot be used: "),
    ("nosuchdialect://x/y", "ufdl: the database URL cannot be used: "),
    # A port that is no number, an IPv6 address without brackets: a ValueError traceback.
    ("postgresql+psycopg://postgres@127.0.0.1:notaport/db", "ufdl: the database URL cannot be used: invalid literal"),
    ("postgresql+psycopg://postgres@::1:5432/db", "ufdl: the database URL cannot be used: invalid literal"),
    # A SQLite file whose folder cannot be made (a file in its way): a FileExistsError traceback.
    ("sqlite:///{tmp_path}/cli.ini/ufdl.sqlite", "ufdl: the database URL cannot be used: cannot make the folder "
                                                 "{tmp_path}/cli.ini of its SQLite file: File exists"),
])
def test_a_database_the_cli_cannot_use_is_one_line(tmp_path, monkeypatch, capsys, url, expected):
    ini = tmp_path / "cli.ini"
    ini.write_text("[app:main]\nuse = egg:ufdl-pyramid\n")
    url, expected = url.format(tmp_path=tmp_path), expected.format(tmp_path=tmp_path)
    monkeypatch.setenv("UFDL_DATABASE_URL", url)
    monkeypatch.setenv("UFDL_AUTH_SECRET", "y" * 32)
    assert ufdl(["-c", str(ini), "db", "upgrade"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(expected) and error.count("\n") == 1, error


@pytest.mark.parametrize("line, environ, expected", [
    # A page size is a LIMIT: one past 64 bits was taken, and a list asking for that many answered 500.
    ("", {"UFDL_MAX_PAGE_SIZE": str(2**63)}, "ufdl: setting ufdl.max_page_size (UFDL_MAX_PAGE_SIZE): must be a whole "
                                             f"number from 1 to {2**63 - 1}, not '{2**63}'"),
    # pyramid_retry's own int() and assert: a ConfigurationExecutionError traceback at the start.
    ("retry.attempts = 0\n", {}, "ufdl: setting retry.attempts: must be a finite number above 0, not '0'"),
    ("retry.attempts = three\n", {}, "ufdl: setting retry.attempts: must be a whole number above 0, not 'three'"),
])
def test_a_setting_that_cannot_work_stops_the_cli_with_one_line(tmp_path, monkeypatch, capsys, line, environ,
                                                                  expected):
    ini = tmp_path / "cli.ini"
    ini.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = sqlite:///{tmp_path / 'db.sqlite'}\n"
                   f"ufdl.auth.secret = {'y' * 32}\n{line}")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert ufdl(["-c", str(ini), "db", "upgrade"]) == 1
    assert capsys.readouterr().err == f"{expected}\n"


@pytest.mark.parametrize("line, expected", [
    ("ufdl.max_tries = 0\n",
     "ufdl: setting ufdl.max_tries (UFDL_MAX_TRIES): must be a finite number above 0, not '0'"),
    ("ufdl.plugins.strict = true\n",
     "ufdl: plugin 'ufdl_broken_plugin' (ufdl-broken 0.9) failed to load: cannot import 'ufdl_broken_plugin': "
     "RuntimeError: the plugin is broken (ufdl.plugins.strict is set)"),
])
def test_pserve_refuses_a_bad_setting_in_one_line(tmp_path, line, expected):
    """The app factory's SettingsError (or PluginError) reached pserve as a traceback (`ufdl serve` said it on one
    line)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    # A plugin distribution that fails to import, found through PYTHONPATH (ignored unless strict).
    (tmp_path / "ufdl_broken_plugin.py").write_text('raise RuntimeError("the plugin is broken")\n')
    info = tmp_path / "ufdl_broken-0.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ufdl-broken\nVersion: 0.9\n")
    (info / "entry_points.txt").write_text("[ufdl_pyramid]\nufdl_broken_plugin = ufdl_broken_plugin\n")
    ini = tmp_path / "pserve.ini"
    ini.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = sqlite:///{tmp_path / 'db.sqlite'}\n"
                   f"ufdl.auth.secret = {'y' * 32}\n{line}"
                   "[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:0\n")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("UFDL_")}
    done = subprocess.run([str(Path(sys.executable).with_name("pserve")), str(ini)], capture_output=True, text=True,
                          timeout=120, env={**environ, "PYTHONPATH": str(tmp_path)})
    assert (done.returncode, done.stderr) == (1, f"{expected}\n")


@pytest.mark.parametrize("text, reason", [
    ("garbage\n", "File contains no section headers."),
    ("[server:main]\nuse = egg:waitress#main\n", "No section 'main'"),
    ("[app:main]\nuse = egg:ufdl-pyramid\n[loggers]\nkeys = root\n", "no 'formatters' in it"),
    ("[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = %(nope)s\n", "Bad value substitution"),
])
def test_an_ini_file_that_cannot_be_read_is_one_line(tmp_path, capsys, text, reason):
    """An INI with no [app:main], a line outside any section, an incomplete logging set-up: tracebacks before."""
    ini = tmp_path / "broken.ini"
    ini.write_text(text)
    assert ufdl(["-c", str(ini), "users", "list"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"ufdl: cannot read {ini}: ") and reason in error and error.count("\n") == 1, error


@pytest.mark.parametrize("name, content, reason", [
    ("latin1.ini", "[app:main]\nuse = egg:ufdl-pyramid\n# caf\xe9\n".encode("latin-1"),
     "not UTF-8 text (invalid continuation byte)"),
    ("development.conf", b"[app:main]\nuse = egg:ufdl-pyramid\n", "an INI file's name must end in .ini"),
    ("development", b"[app:main]\nuse = egg:ufdl-pyramid\n", "an INI file's name must end in .ini"),
    ("a-directory", None, "a directory, not an INI file"),
])
def test_an_ini_file_of_the_wrong_encoding_name_or_kind_is_one_line(tmp_path, capsys, name, content, reason):
    """A Latin-1 INI, an INI named without .ini, a directory given to -c: a UnicodeDecodeError or plaster's
    InvalidURI or LoaderNotFound, with a traceback."""
    ini = tmp_path / name
    if content is None:
        ini.mkdir()
    else:
        ini.write_bytes(content)
    assert ufdl(["-c", str(ini), "users", "list"]) == 1
    assert capsys.readouterr().err == f"ufdl: cannot read {ini}: {reason}\n"


def test_a_command_run_before_db_upgrade_says_to_run_it(tmp_path, monkeypatch, capsys):
    """It said only "database error: no such table: users"."""
    ini = tmp_path / "cli.ini"
    ini.write_text("[app:main]\nuse = egg:ufdl-pyramid\n")
    monkeypatch.setenv("UFDL_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite'}")
    monkeypatch.setenv("UFDL_AUTH_SECRET", "y" * 32)
    assert ufdl(["-c", str(ini), "users", "list"]) == 1
    assert capsys.readouterr().err == ("ufdl: database error: no such table: users (the database is not at the newest "
                                       "schema: run 'ufdl db upgrade')\n")
    assert ufdl(["-c", str(ini), "db", "upgrade"]) == 0
    assert ufdl(["-c", str(ini), "users", "list"]) == 0


@pytest.mark.parametrize("logging_sections", [True, False])
def test_db_echo_logs_each_statement_once(tmp_path, logging_sections):
    """Each statement came twice: once through SQLAlchemy's own handler (echo) and once through the INI's
    logging (or, without logging sections, the basic set-up the CLI makes then)."""
    import subprocess
    import sys
    from pathlib import Path

    ini = tmp_path / "echo.ini"
    ini.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = sqlite:///{tmp_path / 'echo.sqlite'}\n"
                   f"ufdl.auth.secret = {'y' * 32}\nufdl.db.echo = true\n" + (
                       "[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
                       "[logger_root]\nlevel = INFO\nhandlers = console\n"
                       "[handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nformatter = generic\n"
                       "[formatter_generic]\nformat = %(levelname)s [%(name)s] %(message)s\n"
                       if logging_sections else ""))
    ufdl = str(Path(sys.executable).with_name("ufdl"))
    assert subprocess.run([ufdl, "-c", str(ini), "db", "upgrade"], capture_output=True, timeout=120).returncode == 0
    done = subprocess.run([ufdl, "-c", str(ini), "users", "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = (done.stdout + done.stderr).splitlines()
    assert len([line for line in said if line.endswith("SELECT users.id, users.username, users.password_hash, "
                                                        "users.email, users.is_admin, users.is_active, "
                                                        "users.date_joined ")]) == 1, said


@pytest.mark.parametrize("command, said, not_said", [
    # export only reads: its --url help said that the server applies the registry in one transaction.
    (["templates", "export"], "a request per template", "applies the registry"),
    (["templates", "sync"], "applies the registry in one transaction", None),
    # The defaults the README gives were not in the help.
    (["websocket"], "default: 127.0.0.1:6544", None),
    (["jobs", "watch"], "default: http://127.0.0.1:6543", None),
])
def test_the_help_says_what_the_command_does(capsys, monkeypatch, command, said, not_said):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: the phrases are not wrapped
    with pytest.raises(SystemExit) as ended:
        ufdl([*command, "--help"])
    assert ended.value.code == 0
    text = capsys.readouterr().out
    assert said in text, text
    assert not_said is None or not_said not in text, text


def test_the_seed_secret_key_comes_from_the_environment_and_blank_is_unset():
    key = "dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24="
    assert load_settings(BASE, environ={"UFDL_SEED_SECRET_KEY": key})["ufdl.seed.secret_key"] == key
    assert load_settings({**BASE, "ufdl.seed.secret_key": " "}, environ={})["ufdl.seed.secret_key"] is None
    assert load_settings(BASE, environ={})["ufdl.seed.secret_key"] is None
