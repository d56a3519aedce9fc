"""Passwords and tokens: who may log in, and the access/refresh tokens that prove it afterwards.

Access tokens are short-lived signed JWTs (nothing stored); refresh tokens are random strings whose SHA-256
is stored, so they can be revoked and a database leak yields none. Deactivating a user ends both: the access
check loads the user and refuses an inactive one, and refresh refuses it too.
"""
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput, NotAuthenticated
from ..models import Node, RefreshToken, User, mark_written
from ..models.meta import MAX_ID, utcnow
from .validation import unstorable

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AuthConfig:
    secret: str
    access_ttl: int
    refresh_ttl: int
    hasher: PasswordHasher
    # Checked against when the username is unknown, so that timing does not tell which usernames exist.
    dummy_hash: str

    @classmethod
    def from_settings(cls, settings: dict) -> "AuthConfig":
        hasher = PasswordHasher(time_cost=settings["ufdl.auth.argon2_time_cost"],
                                memory_cost=settings["ufdl.auth.argon2_memory_cost"])
        return cls(secret=settings["ufdl.auth.secret"], access_ttl=settings["ufdl.auth.access_ttl"],
                   refresh_ttl=settings["ufdl.auth.refresh_ttl"], hasher=hasher,
                   dummy_hash=hasher.hash(secrets.token_hex(8)))


@dataclass(frozen=True)
class ActiveUser:
    """The user a valid access token names, as checked on every request."""
    id: int
    is_admin: bool


@dataclass(frozen=True)
class ActingNode:
    """The node a request acts as (``Node-Id``): what the state machine checks, read as it is marked seen."""
    id: int
    owner_id: int
    current_job_id: int | None
    cpu_mem: int | None  # bytes, as registered (None: the node did not say)
    gpu_mem: int | None  # likewise (None or 0: no GPU)
    cpus: int | None  # cores, as registered (None: the node did not say)
    gpus: int | None  # GPUs, likewise (None: one at least if it has gpu_mem, none otherwise)


_USERS = User.__table__
_NODES = Node.__table__
_ACTIVE_USER = select(_USERS.c.id, _USERS.c.is_admin, _USERS.c.is_active).where(_USERS.c.id == bindparam("id"))
_NODE_COLUMNS = (_NODES.c.id, _NODES.c.owner_id, _NODES.c.current_job_id, _NODES.c.cpu_mem, _NODES.c.gpu_mem,
                 _NODES.c.cpus, _NODES.c.gpus)
_SEE_NODE = (update(_NODES).where(_NODES.c.id == bindparam("node_id")).values(last_seen=bindparam("now"))
             .returning(*_NODE_COLUMNS))
# A node's request checks its user and its node, and marks the node seen, in this one statement: the node is
# updated only if the token's user is active and owns it (or is an admin). Nothing returned: see why apart.
_CALLER = _USERS.alias("caller")
_SEE_NODE_AS_USER = (
    update(_NODES).where(_NODES.c.id == bindparam("node_id"), exists().where(
        _CALLER.c.id == bindparam("user_id"), _CALLER.c.is_active.is_(True),
        or_(_CALLER.c.id == _NODES.c.owner_id, _CALLER.c.is_admin.is_(True))))
    .values(last_seen=bindparam("now"))
    .returning(*_NODE_COLUMNS, select(_CALLER.c.is_admin).where(_CALLER.c.id == bindparam("user_id"))
               .scalar_subquery().label("is_admin")))


def user_id_of_access_token(secret: str, token: str) -> int:
    """The user id a valid, unexpired access token names; NotAuthenticated with the reason otherwise."""
    user_id, expires = _decode_access_token(secret, token)
    if expires <= time.time():  # as PyJWT decides it, for a token whose signature was checked earlier
        raise NotAuthenticated("Token has expired")
    return user_id


# Every request of a node presents the same token until it is refreshed: its signature is checked once, not
# each time (about 85 us). Only valid tokens are kept (an exception is not cached); expiry is checked above.
@lru_cache(maxsize=4096)
def _decode_access_token(secret: str, token: str) -> tuple[int, float]:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise NotAuthenticated("Token has expired") from None
    except jwt.InvalidTokenError:
        raise NotAuthenticated("Token is invalid") from None
    if claims.get("type") != "access" or not str(claims["sub"]).isdigit() or int(claims["sub"]) > MAX_ID:
        raise NotAuthenticated("Token is invalid")
    return int(claims["sub"]), float(claims["exp"])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_USERNAME = re.compile(r"\A[\w.@+-]{1,150}\Z")  # Django's rule: upstream's user names fit it
_EMAIL = re.compile(r"\A[^@\s]+@[^@\s]+\Z")  # user@localhost is one too
_EMAIL_LENGTH = User.__table__.c.email.type.length
# The longest username or password a login takes (views/auth.py): a longer password could be set, never used.
MAX_CREDENTIAL_LENGTH = 1024


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("password must be at least 8 characters")
    if len(password) > MAX_CREDENTIAL_LENGTH:
        raise InvalidInput(f"password must be at most {MAX_CREDENTIAL_LENGTH} characters (the longest a login takes)")
    # An argument's bytes that are not UTF-8 come as lone surrogates, which no JSON login can send (nor hash).
    if unstorable(password):
        raise InvalidInput("password holds a character a login cannot send (NUL, or bytes that are not UTF-8)")


class AuthService:
    def __init__(self, db: Session, config: AuthConfig):
        self.db = db
        self.config = config

    # Users

    def create_user(self, username: str, password: str, *, is_admin: bool = False, email: str = "") -> User:
        if not _USERNAME.match(username):
            raise InvalidInput("username must be 1 to 150 letters, digits and @ . + - _ (as the UFDL clients expect)")
        if email and (not _EMAIL.match(email) or unstorable(email)):
            raise InvalidInput(f"{email!r} is not an e-mail address (it would only show when a notification fails)")
        if len(email) > _EMAIL_LENGTH:
            raise InvalidInput(f"e-mail address must be at most {_EMAIL_LENGTH} characters")
        _check_password(password)
        if self.db.scalar(select(User.id).where(User.username == username)) is not None:
            raise Conflict(f"user {username!r} already exists")
        user = User(username=username, password_hash=self.config.hasher.hash(password), is_admin=is_admin,
                    email=email)
        self.db.add(user)
        self.db.flush()
        return user

    def set_password(self, user: User, password: str) -> None:
        _check_password(password)
        user.password_hash = self.config.hasher.hash(password)
        self._revoke_all(user)  # a new password ends the sessions the old one opened

    def deactivate(self, user: User) -> None:
        user.is_active = False
        self._revoke_all(user)

    def _revoke_all(self, user: User) -> None:
        self.db.execute(update(RefreshToken).where(RefreshToken.user_id == user.id,
                                                    RefreshToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))

    # Tokens

    def obtain(self, username: str, password: str) -> dict:
        user = self.db.scalar(select(User).where(User.username == username))
        hash_to_check = user.password_hash if user else self.config.dummy_hash
        try:
            self.config.hasher.verify(hash_to_check, password)
        except (VerificationError, InvalidHashError):
            user = None
        if user is None or not user.is_active:
            raise NotAuthenticated("No active account found with the given credentials")
        if self.config.hasher.check_needs_rehash(user.password_hash):
            user.password_hash = self.config.hasher.hash(password)
        return {"access": self.access_token(user), "refresh": self._new_refresh_token(user)}

    def refresh(self, refresh_token: str) -> dict:
        row = self.db.scalar(select(RefreshToken).where(RefreshToken.token_hash == _digest(refresh_token)))
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow() or not row.user.is_active:
            raise NotAuthenticated("Token is invalid or expired")
        return {"access": self.access_token(row.user)}

    def verify(self, token: str) -> None:
        """As simplejwt's verify: a token (access or refresh) that would be accepted now passes; any other is
        NotAuthenticated. An access token's user must still be active, as every request checks."""
        try:
            self.active_user_for_access_token(token)
            return
        except NotAuthenticated:
            pass
        self.refresh(token)  # NotAuthenticated unless a live refresh token of an active user

    def access_token(self, user: User, now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        claims = {"sub": str(user.id), "iat": now, "exp": now + timedelta(seconds=self.config.access_ttl),
                  "type": "access"}
        return jwt.encode(claims, self.config.secret, algorithm=ALGORITHM)

    def user_for_access_token(self, token: str) -> User:
        """The active user an access token names; NotAuthenticated with the reason otherwise."""
        user = self.db.get(User, self._user_id_of(token))
        if user is None or not user.is_active:
            raise NotAuthenticated("User is inactive or no longer exists")
        return user

    def active_user_for_access_token(self, token: str) -> "ActiveUser":
        """Like ``user_for_access_token`` (the row is read on every call, so deactivation ends tokens at once),
        but reads only the columns every request needs, without building an ORM object: this runs on each
        authenticated request."""
        row = self.db.connection().execute(_ACTIVE_USER, {"id": self._user_id_of(token)}).first()
        if row is None or not row.is_active:
            raise NotAuthenticated("User is inactive or no longer exists")
        return ActiveUser(row.id, bool(row.is_admin))

    def active_user_acting_as(self, token: str, node_id: int, *,
                              unlocked: bool = False) -> tuple[ActiveUser, ActingNode] | None:
        """The token's user and the node it acts as, marked seen, if the user is active and may act as the node
        (one statement: a node's every request asks this); None when either check fails. ``unlocked``: marked
        seen in a transaction of its own, committed at once, so that the request holds neither the node's row
        nor SQLite's write lock (an upload, until its bytes are stored: see ``JobOutputService.add``)."""
        user_id = self._user_id_of(token)
        values = {"node_id": node_id, "user_id": user_id, "now": utcnow()}
        if unlocked:
            with self.db.get_bind().connect().execution_options(sqlite_immediate=True) as connection:
                row = connection.execute(_SEE_NODE_AS_USER, values).first()
                connection.commit()
        else:
            row = self.db.connection().execute(_SEE_NODE_AS_USER, values).first()
            if row is not None:
                mark_written(self.db)
        if row is None:
            return None
        return ActiveUser(user_id, bool(row.is_admin)), ActingNode(row.id, row.owner_id, row.current_job_id,
                                                                   row.cpu_mem, row.gpu_mem, row.cpus, row.gpus)

    def see_node(self, node_id: int) -> ActingNode | None:
        """The node, marked seen; None if there is none."""
        row = self.db.connection().execute(_SEE_NODE, {"node_id": node_id, "now": utcnow()}).first()
        if row is None:
            return None
        mark_written(self.db)
        return ActingNode(*row)

    def _user_id_of(self, token: str) -> int:
        return user_id_of_access_token(self.config.secret, token)

    def _new_refresh_token(self, user: User) -> str:
        # A login is when the user's dead tokens (expired or revoked: no refresh takes them) go: the table holds
        # about a row per live session, not a row per login ever.
        dead = or_(RefreshToken.expires_at <= utcnow(), RefreshToken.revoked_at.is_not(None))
        self.db.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id, dead))
        token = secrets.token_urlsafe(32)
        self.db.add(RefreshToken(user_id=user.id, token_hash=_digest(token),
                                 expires_at=utcnow() + timedelta(seconds=self.config.refresh_ttl)))
        return token
