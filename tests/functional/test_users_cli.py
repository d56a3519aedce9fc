"""``ufdl users ...`` against the test database: names and addresses are checked when a user is created."""
import pytest

from ufdl_pyramid.cli import main as ufdl
from ufdl_pyramid.testing import TEST_SETTINGS


@pytest.fixture
def ini(tmp_path, engine):
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    path = tmp_path / "cli.ini"
    path.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = {url}\n" + "".join(
        f"{key} = {value}\n" for key, value in TEST_SETTINGS.items()))
    return str(path)


@pytest.mark.parametrize("arguments, error", [
    (["a b"], "username must be 1 to 150 letters"),
    (["x" * 151], "username must be 1 to 150 letters"),
    (["carol\n"], "username must be 1 to 150 letters"),  # '$' would match before a final line break
    (["carol", "--email", "notanemail"], "'notanemail' is not an e-mail address"),
    (["carol", "--email", "carol @example.com"], "is not an e-mail address"),
    (["carol", "--password", "short"], "password must be at least 8 characters"),
])
def test_bad_names_addresses_and_passwords_are_refused(ini, capsys, arguments, error):
    argv = ["-c", ini, "users", "create", *arguments]
    assert ufdl(argv + ([] if "--password" in arguments else ["--password", "long enough"])) == 1
    assert error in capsys.readouterr().err


@pytest.mark.parametrize("arguments, error", [
    (["create", "carol", "--password", "caf\udce9-au-lait"], "the password is not UTF-8 text"),
    (["create", "carol", "--password", "long enough", "--email", "caf\udce9@example.com"],
     "the e-mail address is not UTF-8 text"),
    (["password", "caf\udce9", "--password", "long enough"], "the username is not UTF-8 text"),
])
def test_arguments_that_are_not_utf8_are_one_line(ini, capsys, engine, arguments, error):
    """A Latin-1 terminal's 'café': Python gets its byte 0xe9 as a lone surrogate, which no hash or database
    takes: a UnicodeEncodeError and a traceback."""
    assert ufdl(["-c", ini, "users", *arguments]) == 1
    assert capsys.readouterr().err == f"ufdl: {error} (is the terminal's encoding UTF-8?)\n"
    assert ufdl(["-c", ini, "users", "list"]) == 0
    assert "carol" not in capsys.readouterr().out


def test_a_user_is_created_once_and_bootstrap_says_when_it_has_nothing_to_do(ini, capsys):
    assert ufdl(["-c", ini, "users", "create", "carol.d+1@x", "--email", "carol@example.com",
                 "--password", "long enough"]) == 0
    assert "created user 'carol.d+1@x'" in capsys.readouterr().out
    assert ufdl(["-c", ini, "users", "create", "carol.d+1@x", "--password", "long enough"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert ufdl(["-c", ini, "users", "bootstrap"]) == 0
    assert "created the administrator 'admin'" in capsys.readouterr().out
    assert ufdl(["-c", ini, "users", "bootstrap"]) == 0
    assert capsys.readouterr().out == "an administrator exists: nothing to do\n"


def test_a_new_password_is_the_one_that_logs_in_and_ends_the_refresh_tokens(ini, capsys, users, anonymous):
    alice = users.login("alice")
    assert ufdl(["-c", ini, "users", "password", "alice", "--password", "a-new-password"]) == 0
    assert capsys.readouterr().out == "password of 'alice' changed\n"
    anonymous.post("/v1/auth/obtain", {"username": "alice", "password": "password123"}, status=401)
    anonymous.post("/v1/auth/obtain", {"username": "alice", "password": "a-new-password"}, status=200)
    anonymous.post("/v1/auth/refresh", {"refresh": alice.refresh_token}, status=401)


def test_a_command_naming_a_user_that_does_not_exist_is_one_line(ini, capsys):
    for action in (["password", "nobody", "--password", "long enough"], ["deactivate", "nobody"]):
        assert ufdl(["-c", ini, "users", *action]) == 1
        assert capsys.readouterr().err == "ufdl: no user 'nobody'\n"


def test_deactivate_ends_the_users_tokens_at_once_and_list_shows_it(ini, capsys, users, anonymous):
    alice = users.login("alice")
    users.create("root", admin=True)
    assert ufdl(["-c", ini, "users", "deactivate", "alice"]) == 0
    assert capsys.readouterr().out == "'alice' deactivated; its tokens no longer work\n"
    alice.post("/v1/job-types/list", status=401)
    anonymous.post("/v1/auth/refresh", {"refresh": alice.refresh_token}, status=401)
    assert ufdl(["-c", ini, "users", "list"]) == 0
    rows = [line.split("\t")[1:] for line in capsys.readouterr().out.splitlines()]
    assert rows == [["alice", "user", "inactive"], ["root", "admin", "active"]]


def test_activate_lets_a_deactivated_user_log_in_again_but_not_refresh_old_tokens(ini, capsys, users, anonymous):
    alice = users.login("alice")
    assert ufdl(["-c", ini, "users", "deactivate", "alice"]) == 0
    anonymous.post("/v1/auth/obtain", {"username": "alice", "password": "password123"}, status=401)
    assert ufdl(["-c", ini, "users", "activate", "alice"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "'alice' activated; it can log in again"
    anonymous.post("/v1/auth/obtain", {"username": "alice", "password": "password123"}, status=200)
    anonymous.post("/v1/auth/refresh", {"refresh": alice.refresh_token}, status=401)
    assert ufdl(["-c", ini, "users", "activate", "nobody"]) == 1
    assert capsys.readouterr().err == "ufdl: no user 'nobody'\n"


def test_the_password_comes_from_the_environment_without_password(ini, capsys, anonymous, monkeypatch):
    monkeypatch.setenv("UFDL_PASSWORD", "from-the-environment")
    assert ufdl(["-c", ini, "users", "create", "carol"]) == 0
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "from-the-environment"}, status=200)
    monkeypatch.delenv("UFDL_PASSWORD")
    assert ufdl(["-c", ini, "users", "create", "dave"]) == 1
    assert "UFDL_PASSWORD" in capsys.readouterr().err


def test_admin_creates_an_administrator(ini, capsys, testapp):
    from ufdl_pyramid.testing import ApiClient

    for name, flags in (("root", ["--admin"]), ("carol", [])):
        assert ufdl(["-c", ini, "users", "create", name, "--password", "long enough", *flags]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("created admin 'root'")
    for name, status in (("root", 200), ("carol", 403)):
        token = testapp.post_json("/v1/auth/obtain", {"username": name, "password": "long enough"}).json["access"]
        ApiClient(testapp, token).get("/v1/plugins", status=status)


def test_bootstrap_leaves_a_user_named_admin_who_is_no_administrator_alone_and_fails(ini, capsys, users,
                                                                                     anonymous):
    """No administrator can log in afterwards: exit 1 (it was 0, and ``make run`` went on to serve), one line."""
    users.create("admin")
    assert ufdl(["-c", ini, "users", "bootstrap"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("ufdl: a user 'admin' exists but is not an administrator: nothing created; "
                                 "create one with 'ufdl users create NAME --admin'\n")
    anonymous.post("/v1/auth/obtain", {"username": "admin", "password": "password123"}, status=200)


def test_bootstrap_with_every_administrator_deactivated_says_to_activate_one_and_fails(ini, capsys, users,
                                                                                       anonymous):
    users.create("admin", admin=True)
    assert ufdl(["-c", ini, "users", "deactivate", "admin"]) == 0
    capsys.readouterr()
    assert ufdl(["-c", ini, "users", "bootstrap"]) == 1
    assert capsys.readouterr() == ("", "ufdl: every administrator is deactivated ('admin'): nothing created; "
                                       "run 'ufdl users activate admin'\n")
    users.create("root", admin=True)
    assert ufdl(["-c", ini, "users", "deactivate", "root"]) == 0
    capsys.readouterr()
    assert ufdl(["-c", ini, "users", "bootstrap"]) == 1
    assert capsys.readouterr().err.endswith("('admin', 'root'): nothing created; run 'ufdl users activate NAME'\n")
    assert ufdl(["-c", ini, "users", "activate", "root"]) == 0
    assert ufdl(["-c", ini, "users", "bootstrap"]) == 0
    assert capsys.readouterr().out.endswith("an administrator exists: nothing to do\n")
    anonymous.post("/v1/auth/obtain", {"username": "admin", "password": "password123"}, status=401)


def test_a_password_of_eight_characters_is_long_enough_and_one_of_seven_is_not(ini, capsys, anonymous, users):
    assert ufdl(["-c", ini, "users", "create", "carol", "--password", "8-chars!"]) == 0
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "8-chars!"}, status=200)
    assert ufdl(["-c", ini, "users", "create", "dave", "--password", "7-chars"]) == 1
    assert "password must be at least 8 characters" in capsys.readouterr().err
    # A new password is held to the same rule, and a refused one changes nothing.
    assert ufdl(["-c", ini, "users", "password", "carol", "--password", "7-chars"]) == 1
    assert "password must be at least 8 characters" in capsys.readouterr().err
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "8-chars!"}, status=200)
    assert ufdl(["-c", ini, "users", "password", "carol", "--password", "new8char"]) == 0
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "new8char"}, status=200)


def test_a_password_longer_than_a_login_takes_is_refused(ini, capsys, anonymous):
    """A login takes a password of at most 1,024 characters: a longer one was set, and no login could use it."""
    assert ufdl(["-c", ini, "users", "create", "carol", "--password", "x" * 1025]) == 1
    assert capsys.readouterr().err == "ufdl: password must be at most 1024 characters (the longest a login takes)\n"
    assert ufdl(["-c", ini, "users", "create", "carol", "--password", "x" * 1024]) == 0
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "x" * 1024}, status=200)
    assert ufdl(["-c", ini, "users", "password", "carol", "--password", "y" * 1025]) == 1
    assert "at most 1024 characters" in capsys.readouterr().err
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "x" * 1024}, status=200)


@pytest.mark.parametrize("arguments, error", [
    # The column holds 254 characters: PostgreSQL refused a longer address with a database error, SQLite kept it.
    (["--email", "carol@" + "x" * 249], "e-mail address must be at most 254 characters"),
    # Bytes that are not UTF-8 in an argument: test_arguments_that_are_not_utf8_are_one_line.
])
def test_an_address_or_password_no_user_could_have_is_one_line(ini, capsys, arguments, error):
    argv = ["-c", ini, "users", "create", "carol", *arguments]
    assert ufdl(argv + ([] if "--password" in arguments else ["--password", "long enough"])) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("ufdl: ") and error in err and err.count("\n") == 1
    assert ufdl(["-c", ini, "users", "create", "carol", "--password", "long enough",
                 "--email", "carol@" + "x" * 248]) == 0
