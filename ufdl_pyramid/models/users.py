"""People and the refresh tokens they hold."""
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .meta import IDS_NEVER_REUSED, Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    # Never filtered on: the list filter refuses columns marked private. Any user may filter jobs and outputs
    # on their creator, so all but the username and pk of another user stay private (filtering one character
    # at a time would otherwise read an e-mail address that the user's own answer hides).
    password_hash: Mapped[str] = mapped_column(String(255), info={"private": True})
    email: Mapped[str] = mapped_column(String(254), default="", info={"private": True})
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, info={"private": True})
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, info={"private": True})
    date_joined: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, info={"private": True})


class RefreshToken(Base):
    """A refresh token, stored as a hash so that a database leak gives no usable token."""

    __tablename__ = "refresh_tokens"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info={"private": True})
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")
