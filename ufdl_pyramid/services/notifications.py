"""Notifications: telling people that a job changed, once the change is committed.

Each transition (``acquire``, ``release``, ``start``, ``progress``, ``finish``, ``error`` -- a finish with an
error --, ``reset``, ``abort``, ``cancel``) may carry a list of notifications ``{"type", "message", "to",
"subject"}`` under ``on_<transition>``. The server's defaults come from the setting
``ufdl.notifications.defaults``; a job created with ``notification_override: {"actions": {...},
"keep_default": bool}`` uses its own actions, after the defaults when ``keep_default`` is true and instead of
them otherwise (the default).

Kinds: ``print`` writes the message to the server's standard output; ``email`` sends it through the SMTP
server of the ``ufdl.smtp.*`` settings to ``to`` (default: the job creator's address); ``websocket`` sends
nothing more, since the progress channel already pushes every event to its listeners. Plugins add kinds with
the ``ufdl_register_notifiers`` hook: ``callable(message, job_json, notification)``.

The work is split around the commit: `Notifier.before_commit` takes the transaction's place in the `Outbox`,
reads the events the transaction wrote (``db.info["ufdl.new_events"]``) and prepares the messages while the
session can still query; `after_commit` puts them in that place, whose turn the outbox's thread waits for;
`after_rollback` leaves it empty, so nothing is sent for a change that did not happen. A failing notification
is logged and never fails the request, and a slow one (a mail server that does not answer) never holds it
either. No Pyramid here.
"""
import atexit
import collections
import logging
import os
import re
import smtplib
import string
import threading
import weakref
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Callable, Mapping

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from ..models import Job, User
from ..representations import job_json
from .events import NEW_EVENTS

log = logging.getLogger(__name__)

TRANSITIONS = ("acquire", "release", "start", "progress", "finish", "error", "reset", "abort", "cancel")
DEFAULT_MESSAGE = "Job {pk} ({template}): {transition}, status {status}, progress {progress}"
DEFAULT_SUBJECT = "UFDL job {pk}: {transition}"
PENDING = "ufdl.pending_notifications"
SLOT = "ufdl.notifications_slot"


MAX_RENDERED = 100_000  # characters: what a template may grow to once filled in
MAX_WIDTH = 1000  # the widest field a format spec may ask for

KINDS = ("print", "email", "websocket")


def actions_schema(kinds=KINDS) -> dict:
    """The JSON schema of ``{"on_<transition>": [notification, ...]}``: create-job's overrides, the defaults."""
    notification = {"type": "object", "required": ["type"], "additionalProperties": False, "properties": {
        "type": {"enum": list(kinds)}, "message": {"type": "string", "maxLength": 10000},
        # One address, and nothing that would end the header (CR, LF) or add recipients.
        "to": {"type": "string", "maxLength": 254, "pattern": r"\A[^@\s,;:<>()\[\]\"\\]+@[^@\s,;:<>()\[\]\"\\]+\Z",
               "description": "one e-mail address"},
        "subject": {"type": "string", "maxLength": 1000, "pattern": r"\A[^\r\n]*\Z", "description": "one line"}}}
    return {"type": "object", "additionalProperties": False, "properties": {
        f"on_{transition}": {"type": "array", "maxItems": 20, "items": notification}
        for transition in TRANSITIONS}}


_PARSER = string.Formatter()


def render(template: str, values: Mapping[str, Any]) -> str:
    """The message with ``{pk}``, ``{node}``, ... filled in, at most `MAX_RENDERED` characters; never raises.

    Plain names only: ``{pk.__class__}``, ``{pk[0]}``, a conversion, a format spec that does not apply or
    asks for more than `MAX_WIDTH` characters (``{pk:>999999999}`` would build a huge string) stay as written,
    as does a name the message does not know; a template whose braces do not parse is sent as it is."""
    try:
        pieces = list(_PARSER.parse(template))
    except ValueError:
        return template[:MAX_RENDERED]
    text, size = [], 0
    for literal, name, spec, conversion in pieces:
        text.append(literal)
        if name is not None:
            text.append(_field(values, name, spec, conversion))
        size += len(literal) + len(text[-1])
        if size > MAX_RENDERED:
            break
    return "".join(text)[:MAX_RENDERED]


def _field(values: Mapping[str, Any], name: str, spec: str, conversion: str | None) -> str:
    """One ``{name:spec}`` filled in, or as written when it is not one `render` fills."""
    as_written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
    if conversion or not name.isidentifier() or name not in values or _too_wide(spec):
        return as_written
    try:
        return format(values[name], spec)
    except (ValueError, TypeError, OverflowError):  # the last: '{pk:c}' once a pk is past 0x10FFFF
        return as_written


def _too_wide(spec: str) -> bool:
    """Whether a format spec asks for a width or precision over `MAX_WIDTH`. In any script's digits: format()
    takes '{pk:>٩٩٩٩٩٩٩٩٩}' (Arabic-Indic nines) as well. A number with more digits than the limit is over it
    without being converted: int() refuses past 4,300 digits (a raise here dropped the transaction's
    notifications)."""
    return any(len(number.lstrip("0")) > len(str(MAX_WIDTH)) or int(number.lstrip("0") or "0") > MAX_WIDTH
               for number in re.findall(r"\d+", spec))


def actions_for(defaults: Mapping, override: Mapping | None, transition: str) -> list[dict]:
    """The notifications to send for a transition of a job with this override (None: the defaults)."""
    key = f"on_{transition}"
    default_actions = list(defaults.get(key) or [])
    if not override:
        return default_actions
    own = list((override.get("actions") or {}).get(key) or [])
    return default_actions + own if override.get("keep_default", False) else own


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "localhost"
    port: int = 25
    sender: str = "ufdl@localhost"
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Mapping) -> "SmtpConfig":
        return cls(host=settings.get("ufdl.smtp.host") or "localhost", port=int(settings.get("ufdl.smtp.port") or 25),
                   sender=settings.get("ufdl.smtp.from") or "ufdl@localhost", user=settings.get("ufdl.smtp.user"),
                   password=settings.get("ufdl.smtp.password"), starttls=bool(settings.get("ufdl.smtp.starttls")),
                   timeout=float(settings.get("ufdl.smtp.timeout") or 10))


@dataclass
class PreparedNotification:
    notification: dict
    message: str
    subject: str
    recipient: str | None
    job: dict


class Outbox:
    """Notifications waiting to be sent, and the thread that sends them, in the order they were committed.

    At most ``capacity`` wait: past that, new ones are dropped with an error in the log rather than letting a
    dead mail server eat the memory. The thread starts on first use in the process that uses it (so after
    ``ufdl serve --workers`` forks), and at exit (``close``, also called by a ``ufdl serve`` worker that is
    stopped) the process waits up to ``exit_timeout`` seconds for it to send what is left."""

    def __init__(self, send: Callable[["PreparedNotification"], None], capacity: int = 10_000,
                 exit_timeout: float = 15.0):
        self._send = send
        self.capacity = capacity
        self.exit_timeout = exit_timeout
        self._reset()
        # A forked child inherits the queue (and perhaps a lock held by the sender) but not the sender thread.
        outbox = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: outbox() and outbox()._reset())

    def _reset(self) -> None:
        self._waiting: collections.deque = collections.deque()
        self._unsent = 0  # waiting, or being sent
        self._changed = threading.Condition()
        self._sender: threading.Thread | None = None

    def put(self, notifications) -> None:
        notifications = list(notifications)
        if not notifications:
            return
        self._start()
        with self._changed:
            self._waiting.extend(self._within_capacity(notifications))
            self._changed.notify_all()

    def reserve(self) -> "_Slot":
        """A place in the queue for a transaction's notifications, taken before its commit: the thread sends
        nothing queued after it until ``fill`` (with none, should the transaction not commit)."""
        self._start()
        slot = _Slot()
        with self._changed:
            self._waiting.append(slot)
            self._unsent += 1
        return slot

    def fill(self, slot: "_Slot", notifications) -> None:
        with self._changed:
            if slot.filled:
                return
            slot.notifications, slot.filled = self._within_capacity(list(notifications)), True
            self._unsent -= 1
            self._changed.notify_all()

    def _within_capacity(self, notifications: list) -> list:
        """Those that fit (counted as unsent); the others are dropped with an error. Hold ``_changed``."""
        kept = []
        for notification in notifications:
            if len(self._waiting) + len(kept) >= self.capacity:
                log.error("%s notification for job %s dropped: %d notifications are waiting to be sent",
                          notification.notification.get("type"), notification.job.get("pk"), self.capacity)
                continue
            kept.append(notification)
        self._unsent += len(kept)
        return kept

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything put so far has been sent (or has failed); False if ``timeout`` ran out first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._unsent == 0, timeout)

    def _start(self) -> None:
        with self._changed:
            if self._sender is None:
                self._sender = threading.Thread(target=self._run, name="ufdl-notifications", daemon=True)
                self._sender.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    self._changed.wait_for(lambda: self._waiting and not (
                        isinstance(self._waiting[0], _Slot) and not self._waiting[0].filled))
                    notification = self._waiting.popleft()
                    if not isinstance(notification, _Slot):
                        break
                    self._waiting.extendleft(reversed(notification.notifications))
            try:
                self._send(notification)
            finally:
                with self._changed:
                    self._unsent -= 1
                    self._changed.notify_all()

    def close(self) -> None:
        """Before the process exits: wait up to ``exit_timeout`` seconds for the waiting notifications to go."""
        if not self.drain(self.exit_timeout):
            log.error("%d notification(s) not sent: still waiting at exit", self._unsent)


@dataclass
class _Slot:
    """A committing transaction's place in the outbox (see ``Outbox.reserve``)."""
    notifications: list = field(default_factory=list)
    filled: bool = False


@dataclass
class Notifier:
    defaults: Mapping = field(default_factory=dict)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    # Kinds added by plugins: name -> callable(message, job_json, notification).
    plugin_notifiers: Mapping[str, Callable] = field(default_factory=dict)

    def __post_init__(self):
        self.outbox = Outbox(self.send)

    def install(self, session_factory: sessionmaker) -> None:
        event.listen(session_factory, "before_commit", self.before_commit)
        event.listen(session_factory, "after_commit", self.after_commit)
        event.listen(session_factory, "after_rollback", self.after_rollback)
        event.listen(session_factory, "after_transaction_end", self.after_transaction_end)

    # Around the commit

    def before_commit(self, session: Session) -> None:
        events = list(session.info.get(NEW_EVENTS) or ())
        if not events:
            return
        # The queue's place is taken now, while the transaction still holds its jobs' rows: a later transition
        # of the same job (which waits for them) queues behind it, even should its thread reach after_commit
        # first. Queued only in after_commit, a thread held up between the COMMIT and it sent the job's
        # notifications out of order.
        session.info[SLOT] = self.outbox.reserve()
        try:
            session.info[PENDING] = self.prepare(session, events)
        except Exception:
            log.exception("could not prepare the notifications of %d job event(s)", len(events))

    def after_commit(self, session: Session) -> None:
        session.info.pop(NEW_EVENTS, None)
        slot = session.info.pop(SLOT, None)
        if slot is not None:
            self.outbox.fill(slot, session.info.pop(PENDING, ()))

    def after_rollback(self, session: Session) -> None:
        session.info.pop(NEW_EVENTS, None)
        session.info.pop(PENDING, None)
        self._release(session)

    def after_transaction_end(self, session: Session, transaction) -> None:
        if transaction.parent is None:  # however it ended: a place left behind would hold up the queue
            self._release(session)

    def _release(self, session: Session) -> None:
        slot = session.info.pop(SLOT, None)
        if slot is not None:
            self.outbox.fill(slot, ())

    # Preparing and sending

    def prepare(self, session: Session, events) -> list[PreparedNotification]:
        prepared = []
        for job_event in events:
            job = session.get(Job, job_event.job_id)
            if job is None:
                continue
            override = (job.notification_override or {}).get("notification_override")
            actions = actions_for(self.defaults, override, job_event.transition)
            if not actions:
                continue
            # After a release or an abort the job has no node; the event's data names the one it left.
            node = job_event.node_id if job_event.node_id is not None else (job_event.transition_data or {}).get("node")
            values = {"pk": job.id, "node": node, "error": job_event.error, "status": job_event.status,
                      "progress": job_event.progress, "transition": job_event.transition,
                      "template": f"{job.template.name} v{job.template.version}", "description": job.description}
            creator_email = None
            if any(action.get("type") == "email" and not action.get("to") for action in actions) and job.creator_id:
                creator = session.get(User, job.creator_id)
                creator_email = creator.email if creator is not None else None
            representation = job_json(job)
            for action in actions:
                if not isinstance(action, Mapping):
                    continue
                prepared.append(PreparedNotification(
                    notification=dict(action), message=render(action.get("message") or DEFAULT_MESSAGE, values),
                    # One line: a header cannot hold a line break (a traceback in {error}, say).
                    subject=" ".join(render(action.get("subject") or DEFAULT_SUBJECT, values).splitlines()),
                    recipient=action.get("to") or creator_email, job=representation))
        return prepared

    def send(self, prepared: PreparedNotification) -> None:
        kind = prepared.notification.get("type")
        try:
            if kind == "print":
                print(prepared.message, flush=True)
            elif kind == "email":
                self.send_email(prepared)
            elif kind == "websocket":
                pass  # the progress channel already delivers every event to its listeners
            elif kind in self.plugin_notifiers:
                self.plugin_notifiers[kind](prepared.message, prepared.job, prepared.notification)
            else:
                log.warning("unknown notification type %r for job %s", kind, prepared.job.get("pk"))
        except BaseException:  # noqa: BLE001 - a plugin's sys.exit() too: it ended the sending thread for good
            log.exception("%s notification for job %s failed", kind, prepared.job.get("pk"))

    def send_email(self, prepared: PreparedNotification) -> None:
        if not prepared.recipient:
            log.warning("email notification for job %s has no recipient (no 'to', creator without e-mail)",
                        prepared.job.get("pk"))
            return
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = prepared.recipient
        message["Subject"] = prepared.subject
        message.set_content(prepared.message)
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout) as client:
            if self.smtp.starttls:
                client.starttls()
            if self.smtp.user:
                client.login(self.smtp.user, self.smtp.password or "")
            client.send_message(message)
