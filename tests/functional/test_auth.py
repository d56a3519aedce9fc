"""Logging in, refreshing, and what the API answers to missing, bad and expired credentials."""
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import jwt
import pytest

from ufdl_pyramid.services import auth
from ufdl_pyramid.settings import SettingsError
from ufdl_pyramid.testing import TEST_SETTINGS, ApiClient, UserFactory, make_test_app


def test_obtain_and_use_a_token(users, anonymous):
    users.create("carol", password="s3cret-pass")
    tokens = anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "s3cret-pass"}).json
    assert set(tokens) == {"access", "refresh"}
    anonymous.token = tokens["access"]
    assert isinstance(anonymous.post("/v1/job-types/list").json, list)


def test_wrong_password_and_unknown_user_are_401(users, anonymous):
    users.create("carol", password="s3cret-pass")
    for body in ({"username": "carol", "password": "wrong-pass"}, {"username": "nobody", "password": "x"}):
        response = anonymous.post("/v1/auth/obtain", body, status=401)
        assert response.json == {"detail": "No active account found with the given credentials"}


def test_obtain_needs_both_fields(anonymous):
    response = anonymous.post("/v1/auth/obtain", {"username": "carol"}, status=400)
    assert "password" in response.json["detail"]


def test_no_credentials_is_401_with_bearer_challenge(anonymous):
    response = anonymous.post("/v1/job-types/list", status=401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json == {"detail": "Authentication credentials were not provided."}
    # An empty Authorization header is none.
    response = anonymous.post("/v1/job-types/list", headers={"Authorization": ""}, status=401)
    assert response.json == {"detail": "Authentication credentials were not provided."}


def test_malformed_authorization_header_is_401(anonymous):
    for header in ("Token abc", "Bearer", "Basic dXNlcjpwYXNz"):
        response = anonymous.post("/v1/job-types/list", headers={"Authorization": header}, status=401)
        assert "Bearer" in response.json["detail"]


def test_forged_token_is_401(alice):
    forged = jwt.encode({"sub": str(alice.user_id), "exp": datetime.now(timezone.utc) + timedelta(minutes=5),
                         "type": "access"}, "another-secret-of-thirty-two-bytes-or-more", algorithm="HS256")
    alice.token = forged
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": "Token is invalid"}


@pytest.mark.filterwarnings("ignore:The HMAC key")  # the test secret is short for HS512
def test_a_token_in_another_algorithm_is_401(alice):
    # Unsigned ("none"), or signed with the secret by another algorithm than the server's: neither is accepted.
    claims = {"sub": str(alice.user_id), "exp": datetime.now(timezone.utc) + timedelta(minutes=5), "type": "access"}
    for key, algorithm in ((None, "none"), (TEST_SETTINGS["ufdl.auth.secret"], "HS512")):
        alice.token = jwt.encode(claims, key, algorithm=algorithm)
        assert alice.post("/v1/job-types/list", status=401).json == {"detail": "Token is invalid"}, algorithm


def test_a_signed_token_naming_an_id_past_the_column_is_invalid(alice):
    """Only the secret's holder can sign one, but it reached the database (a 500 on the progress channel)."""
    alice.token = jwt.encode({"sub": str(2**31), "exp": datetime.now(timezone.utc) + timedelta(minutes=5),
                              "type": "access"}, TEST_SETTINGS["ufdl.auth.secret"], algorithm="HS256")
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": "Token is invalid"}


def test_expired_token_is_401_and_refresh_gives_a_working_one(alice, anonymous):
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    alice.token = jwt.encode({"sub": str(alice.user_id), "iat": past, "exp": past + timedelta(minutes=5),
                              "type": "access"}, TEST_SETTINGS["ufdl.auth.secret"], algorithm="HS256")
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": "Token has expired"}

    fresh = anonymous.post("/v1/auth/refresh", {"refresh": alice.refresh_token}).json
    assert set(fresh) == {"access"}
    alice.token = fresh["access"]
    alice.post("/v1/job-types/list", status=200)


def test_bad_refresh_token_is_401(anonymous):
    # However long: one over 1,024 characters was a 400, which the UFDL client does not answer by logging in.
    for path, field in (("/v1/auth/refresh", "refresh"), ("/v1/auth/verify", "token")):
        anonymous.post(path, {field: "x" * 2000}, status=401)
    response = anonymous.post("/v1/auth/refresh", {"refresh": "not-a-token"}, status=401)
    assert response.json == {"detail": "Token is invalid or expired"}


def test_an_expired_refresh_token_is_401(alice, anonymous, engine):
    from sqlalchemy import update

    from ufdl_pyramid.models import RefreshToken

    with engine.begin() as connection:
        connection.execute(update(RefreshToken).where(RefreshToken.user_id == alice.user_id)
                           .values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    response = anonymous.post("/v1/auth/refresh", {"refresh": alice.refresh_token}, status=401)
    assert response.json == {"detail": "Token is invalid or expired"}


def test_a_login_deletes_the_users_dead_refresh_tokens(alice, anonymous, engine):
    """Every login adds a refresh token; the expired and revoked ones were kept for ever, a row per login ever."""
    from sqlalchemy import func, select, update

    from ufdl_pyramid.models import RefreshToken

    def login() -> str:
        return anonymous.post("/v1/auth/obtain", {"username": "alice", "password": "password123"}).json["refresh"]

    def alices(**change) -> int:
        with engine.begin() as connection:
            mine = RefreshToken.user_id == alice.user_id
            if change:
                connection.execute(update(RefreshToken).where(mine).values(**change))
            return connection.scalar(select(func.count()).select_from(RefreshToken).where(mine))

    login()
    assert alices(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)) == 2  # the fixture's and this one
    live = login()
    assert alices() == 1
    anonymous.post("/v1/auth/refresh", {"refresh": live})
    alices(revoked_at=datetime.now(timezone.utc))
    login()
    assert alices() == 1
    anonymous.post("/v1/auth/refresh", {"refresh": live}, status=401)


def test_a_signed_token_of_another_type_is_no_access_token(alice):
    now = datetime.now(timezone.utc)
    alice.token = jwt.encode({"sub": str(alice.user_id), "iat": now, "exp": now + timedelta(minutes=5),
                              "type": "refresh"}, TEST_SETTINGS["ufdl.auth.secret"], algorithm="HS256")
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": "Token is invalid"}


def test_an_access_token_is_not_a_refresh_token(alice, anonymous):
    anonymous.post("/v1/auth/refresh", {"refresh": alice.token}, status=401)


def test_deactivating_a_user_ends_its_tokens(alice, anonymous, engine):
    from sqlalchemy import update

    from ufdl_pyramid.models import User

    from job_helpers import register

    node = register(alice)
    with engine.begin() as connection:
        connection.execute(update(User).where(User.id == alice.user_id).values(is_active=False))
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": "User is inactive or no longer exists"}
    assert node.post("/v1/jobs/acquire-next", {}, status=401).json == {
        "detail": "User is inactive or no longer exists"}  # acting as its node changes nothing
    anonymous.post("/v1/auth/refresh", {"refresh": alice.refresh_token}, status=401)
    anonymous.post("/v1/auth/obtain", {"username": "alice", "password": "password123"}, status=401)


@pytest.mark.parametrize("change", ["deactivate", "set_password"])
def test_deactivating_or_a_new_password_revokes_refresh_tokens(alice, bob, anonymous, engine, change):
    import transaction
    from sqlalchemy import select

    from ufdl_pyramid.models import User, get_session_factory, get_tm_session
    from ufdl_pyramid.services.auth import AuthService
    from ufdl_pyramid.testing import UserFactory

    config = UserFactory(engine, anonymous.app).config
    manager = transaction.TransactionManager(explicit=True)
    with manager:
        db = get_tm_session(get_session_factory(engine), manager)
        service, user = AuthService(db, config), db.scalar(select(User).where(User.username == "alice"))
        service.deactivate(user) if change == "deactivate" else service.set_password(user, "a-new-password")
    anonymous.post("/v1/auth/refresh", {"refresh": alice.refresh_token}, status=401)
    anonymous.post("/v1/auth/refresh", {"refresh": bob.refresh_token}, status=200)  # only alice's tokens end


def test_a_token_accepted_before_is_refused_once_it_expires(alice, monkeypatch):
    # The signature of a token is checked once and remembered; its expiry is checked on every request.
    now = datetime.now(timezone.utc)
    alice.token = jwt.encode({"sub": str(alice.user_id), "iat": now, "exp": now + timedelta(seconds=60),
                              "type": "access"}, TEST_SETTINGS["ufdl.auth.secret"], algorithm="HS256")
    alice.post("/v1/job-types/list", status=200)
    later = now.timestamp() + 61
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: later))
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": "Token has expired"}


def test_a_bad_token_is_named_on_a_path_with_no_records_too(alice):
    """/v1/plugins looks up no record, so the refusal comes from the permission check, not the lookup: it must
    still say what is wrong with the token (a client refreshes on it), not that none was given."""
    alice.token = "nope"
    response = alice.get("/v1/plugins", status=401)
    assert response.json == {"detail": "Token is invalid"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("sub, detail", [
    (str(2**31 - 1), "User is inactive or no longer exists"),  # the largest id a column holds: no such user
    ("alice", "Token is invalid"),
    ("-1", "Token is invalid"),
    ("1.5", "Token is invalid"),
])
def test_a_signed_token_must_name_a_user_id(alice, sub, detail):
    alice.token = jwt.encode({"sub": sub, "exp": datetime.now(timezone.utc) + timedelta(minutes=5),
                              "type": "access"}, TEST_SETTINGS["ufdl.auth.secret"], algorithm="HS256")
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": detail}


def test_a_signed_token_without_an_expiry_is_invalid(alice):
    """A token that never expires must not be taken (it was read as one whose expiry is missing: a 500)."""
    alice.token = jwt.encode({"sub": str(alice.user_id), "type": "access"}, TEST_SETTINGS["ufdl.auth.secret"],
                             algorithm="HS256")
    assert alice.post("/v1/job-types/list", status=401).json == {"detail": "Token is invalid"}


def test_an_access_token_lasts_the_configured_time(users, anonymous):
    users.create("carol", password="s3cret-pass")
    access = anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "s3cret-pass"}).json["access"]
    claims = jwt.decode(access, TEST_SETTINGS["ufdl.auth.secret"], algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 300  # ufdl.auth.access_ttl's default
    assert claims["type"] == "access"


def test_the_bearer_scheme_is_case_insensitive_and_spaces_around_the_token_are_ignored(alice):
    token = alice.token
    for header in (f"bearer {token}", f"BEARER {token}", f"Bearer   {token}"):
        alice.post("/v1/job-types/list", headers={"Authorization": header}, status=200)


def test_a_refresh_token_lasts_the_configured_time(users, anonymous, engine, monkeypatch):
    from sqlalchemy import select

    from ufdl_pyramid.models import RefreshToken

    now = datetime.now(timezone.utc).replace(microsecond=0)
    monkeypatch.setattr(auth, "utcnow", lambda: now)
    user_id = users.create("carol", password="s3cret-pass")
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "s3cret-pass"})
    with engine.connect() as connection:
        expires = connection.scalar(select(RefreshToken.expires_at).where(RefreshToken.user_id == user_id))
    assert expires == now + timedelta(days=7)  # ufdl.auth.refresh_ttl's default


def test_a_password_hashed_with_other_parameters_is_hashed_again_at_login(users, anonymous, engine):
    from argon2 import PasswordHasher
    from sqlalchemy import select, update

    from ufdl_pyramid.models import User

    users.create("carol", password="s3cret-pass")
    old = PasswordHasher(time_cost=2, memory_cost=1024).hash("s3cret-pass")
    with engine.begin() as connection:
        connection.execute(update(User).where(User.username == "carol").values(password_hash=old))
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "s3cret-pass"}, status=200)
    with engine.connect() as connection:
        new = connection.scalar(select(User.password_hash).where(User.username == "carol"))
    assert new != old and ",t=1," in new  # the server's parameters (ufdl.auth.argon2_time_cost)
    anonymous.post("/v1/auth/obtain", {"username": "carol", "password": "s3cret-pass"}, status=200)


def test_verify_answers_whether_a_token_is_good(alice, anonymous, engine):
    """``POST /v1/auth/verify {token}`` (the python client's UFDLServerContext._jwt_verify, simplejwt's verify
    upstream): 200 ``{}`` for a token the server would accept now, 401 with a detail otherwise. It was a 404."""
    from sqlalchemy import update

    from ufdl_pyramid.models import User

    for token in (alice.token, alice.refresh_token):
        assert anonymous.post("/v1/auth/verify", {"token": token}, status=200).json == {}
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    expired = jwt.encode({"sub": str(alice.user_id), "iat": past, "exp": past + timedelta(minutes=5),
                          "type": "access"}, TEST_SETTINGS["ufdl.auth.secret"], algorithm="HS256")
    for token in ("not-a-token", expired):
        refused = anonymous.post("/v1/auth/verify", {"token": token}, status=401)
        assert refused.json == {"detail": "Token is invalid or expired"}
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    anonymous.post("/v1/auth/verify", {}, status=400)
    anonymous.post("/v1/auth/verify", {"token": 5}, status=400)
    with engine.begin() as connection:
        connection.execute(update(User).where(User.id == alice.user_id).values(is_active=False))
    for token in (alice.token, alice.refresh_token):  # a deactivated user's tokens are over
        anonymous.post("/v1/auth/verify", {"token": token}, status=401)


def test_token_lifetimes_of_ten_years_work_and_longer_ones_stop_the_start(engine):
    """A "never expire" lifetime (10^12 s) was taken, and every login was a 500: the expiry overflowed."""
    import webtest

    for name in ("ufdl.auth.access_ttl", "ufdl.auth.refresh_ttl"):
        with pytest.raises(SettingsError, match=name.replace(".", r"\.")):
            make_test_app(engine, **{name: "1000000000000"})
    ten_years = str(10 * 365 * 86400)
    app = webtest.TestApp(make_test_app(engine, **{"ufdl.auth.access_ttl": ten_years,
                                                   "ufdl.auth.refresh_ttl": ten_years}))
    UserFactory(engine, app).create("carol", password="s3cret-pass")
    tokens = app.post_json("/v1/auth/obtain", {"username": "carol", "password": "s3cret-pass"}).json
    access = app.post_json("/v1/auth/refresh", {"refresh": tokens["refresh"]}).json["access"]
    ApiClient(app, access).post("/v1/job-types/list", status=200)
