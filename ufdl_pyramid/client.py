"""Watching a job's progress channel from Python: ``for event in watch_job(url, token, pk): ...``.

``watch_job`` yields every message (the ``state`` message of each connection, ``gap`` markers, the events)
and reconnects after a dropped connection (or a close other than 1000: 1013 when the listener lost its
database) with ``after=`` the last event id it yielded, so no event is lost (nor yielded twice). It stops when
the server closes the channel with 1000 (the job COMPLETED or was CANCELED; a FAILED job may still be reset or
aborted, so its channel stays open: stop iterating to give up on it).
"""
import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode, urlsplit, urlunsplit

import websocket

NORMAL_CLOSURE = 1000


class ChannelRefused(Exception):
    """The listener answered the upgrade with an HTTP error (401, 404...)."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def channel_url(url: str, pk: int, after: int | None = None) -> str:
    """``http(s)://host:port`` or ``ws(s)://host:port`` (with an optional prefix) -> the job's channel URL."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + f"/v1/jobs/{pk}"
    query = urlencode({"after": after}) if after is not None else ""
    return urlunsplit((scheme, parts.netloc, path, query, ""))


def connect(url: str, token: str, pk: int, after: int | None = None, timeout: float = 30):
    try:
        return websocket.create_connection(channel_url(url, pk, after), timeout=timeout,
                                           header=[f"Authorization: Bearer {token}"], enable_multithread=True)
    except websocket.WebSocketBadStatusException as error:
        if 200 <= error.status_code < 300:
            # A server that answers a plain GET is the REST API, not the progress channel.
            raise ChannelRefused(error.status_code, f"{url} did not upgrade to a websocket: give the progress "
                                                    "channel's address (in development: port 6544)") from None
        try:
            detail = json.loads(error.resp_body or b"{}").get("detail", "")
        except (ValueError, AttributeError):
            detail = (error.resp_body or b"").decode(errors="replace")
        raise ChannelRefused(error.status_code, detail) from None


def watch_job(url: str, token: str, pk: int, *, after: int | None = None, timeout: float = 60,
              reconnect_delay: float = 0.5, max_reconnects: int = 100,
              on_retry: Callable[[Exception], None] | None = None,
              renew: Callable[[], str] | None = None) -> Iterator[dict]:
    """Yield the job's messages until the channel closes normally; reconnect (``after=``) when it drops.
    ``on_retry(error)`` is told of each connection that failed and is tried again. ``renew()`` answers a new
    access token: an open channel outlives its token, but a reconnect after it expired is refused (401), and
    is then tried once more with a renewed one; without ``renew`` that refusal is final."""
    last_id = after
    reconnects = 0
    renewed = False
    while True:
        try:
            ws = connect(url, token, pk, last_id, timeout)
            renewed = False
        except ChannelRefused as error:
            if error.status == 401 and renew is not None and not renewed:
                token, renewed = renew(), True
                continue
            if error.status != 503:  # a refusal is final, but for the database being away
                raise
            failed = error
        except (OSError, websocket.WebSocketException) as error:
            failed = error
        else:
            failed = None
        if failed is not None:
            if reconnects >= max_reconnects:
                raise failed
            if on_retry is not None:
                on_retry(failed)
            reconnects += 1
            time.sleep(reconnect_delay)
            continue
        try:
            while True:
                opcode, data = ws.recv_data(control_frame=False)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                    if code == NORMAL_CLOSURE:
                        return
                    break
                if opcode != websocket.ABNF.OPCODE_TEXT:
                    continue
                message = json.loads(data)
                if message["transition"] in ("state", "gap"):
                    yield message
                    # The state's id is the job's newest event: an ``after`` beyond it (a mistyped --after)
                    # would have hidden every live event numbered up to it.
                    if last_id is None or message["transition"] == "gap" or last_id > message["id"]:
                        last_id = message["id"]
                    continue
                if last_id is not None and message["id"] <= last_id:
                    continue
                last_id = message["id"]
                reconnects = 0  # the channel works: only drops in a row, with nothing new between, count
                yield message
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            ws.close()
        if reconnects >= max_reconnects:
            raise ConnectionError(f"the progress channel of job {pk} kept dropping")
        reconnects += 1
        time.sleep(reconnect_delay)
