"""The worker's HTTP client for the v1 API: JSON in and out, Bearer tokens refreshed on 401, ``Node-Id`` once
the node is known. Standard library only (``http.client``), one connection per thread."""
import http.client
import json
import logging
import os
import socket
import threading
import urllib.parse
from collections.abc import Mapping
from email.message import Message
from typing import BinaryIO

from ..executors import DEFAULT_CONTENT_TYPE

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, detail: str, method: str = "", path: str = ""):
        super().__init__(f"{method} {path}: {status} {detail}".strip())
        self.status = status
        self.detail = detail


class ServerUnavailable(Exception):
    """The server cannot be reached, or answered 502/503/504: try again later."""


# The resolver's answers that a name does not exist (a typo), unlike EAI_AGAIN: no answer for now.
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
# The blocks a file body is read and sent in (http.client's default, 8 KiB, is a system call per 8 KiB).
_BLOCK = 1 << 16


class UfdlApi:
    def __init__(self, url: str, username: str, password: str, timeout: float = 30):
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.username, self.password = username, password
        self.timeout = timeout
        self.node_id: int | None = None
        self.access: str | None = None
        self.refresh: str | None = None
        self._token_lock = threading.Lock()
        self._local = threading.local()

    def check_host(self) -> None:
        """ValueError if the URL's host name does not exist. The worker asks it before its first contact: every
        failure to connect is retried (the server may be down), and a typo in the URL was retried for ever."""
        try:
            socket.getaddrinfo(self.host, self.port or (443 if self.scheme == "https" else 80),
                               type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            if error.errno in _NO_SUCH_NAME:
                raise ValueError(f"cannot resolve the host {self.host!r} of the URL: {error.strerror}") from None

    # -- transport -------------------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = cls(self.host, self.port, timeout=self.timeout,
                                                      blocksize=_BLOCK)
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def close(self) -> None:
        self._drop_connection()

    def raw(self, method: str, path: str, body: bytes | BinaryIO | None = None, headers: Mapping | None = None,
            stream_to=None) -> tuple[int, bytes, dict]:
        """One request; retries once on a stale keep-alive connection. ``body``: bytes, or a seekable binary file
        sent whole, from its first byte on every try (one cut off may have sent part of it), as it is read: an
        output may be several GiB. ``stream_to``: a binary file the body of a 2xx answer is copied to instead of
        being returned."""
        headers = dict(headers or {})
        if hasattr(body, "read"):
            # Its size, else http.client sends a file chunked: waitress takes that, a proxy in front may not, and
            # the server could refuse an output over its size limit only once that much was sent, not up front.
            headers["Content-Length"] = str(body.seek(0, os.SEEK_END))
        for attempt in (1, 2):
            connection = self._connection()
            if hasattr(body, "read"):
                body.seek(0)
            try:
                connection.request(method, self.prefix + path, body=body, headers=headers)
                response = connection.getresponse()
                if stream_to is not None and 200 <= response.status < 300:
                    while chunk := response.read(1 << 16):
                        stream_to.write(chunk)
                    if response.length:
                        # The server closed the connection short of its Content-Length (a blob failing once its
                        # answer had started): http.client's read(n) answers that as a plain end of the body.
                        raise http.client.HTTPException(f"the body ended {response.length} bytes short of its "
                                                        "Content-Length")
                    data = b""
                else:
                    data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self._drop_connection()
                return response.status, data, {k.lower(): v for k, v in response.getheaders()}
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self._drop_connection()
                if attempt == 2 or stream_to is not None:
                    raise ServerUnavailable(f"{method} {path}: {error}") from None
            except (OSError, http.client.HTTPException) as error:
                self._drop_connection()
                raise ServerUnavailable(f"{method} {path}: {error}") from None
        raise AssertionError("unreachable")

    # -- auth ------------------------------------------------------------------------------------------------
    def login(self) -> None:
        answer = self._unauthenticated("POST", "/v1/auth/obtain", {"username": self.username,
                                                                   "password": self.password})
        self.access, self.refresh = answer["access"], answer["refresh"]

    def _unauthenticated(self, method, path, payload):
        status, data, _ = self.raw(method, path, json.dumps(payload).encode(),
                                   {"Content-Type": "application/json", "Accept": "*/*"})
        self._check(status, data, method, path)
        return json.loads(data)

    def _renew(self, used_token: str | None) -> None:
        """After a 401: refresh the access token (or log in again); only one thread does it per expired token."""
        with self._token_lock:
            if self.access != used_token and self.access is not None:
                return  # another thread renewed it already
            if self.refresh:
                try:
                    self.access = self._unauthenticated("POST", "/v1/auth/refresh", {"refresh": self.refresh})["access"]
                    return
                except ApiError as error:
                    if error.status != 401:
                        raise
            self.login()

    def renewed_access(self) -> str:
        """A new access token, the current one having been refused (expired): refreshed, or logged in again."""
        self._renew(self.access)
        return self.access

    # -- API -------------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, payload=None, *, body: bytes | BinaryIO | None = None,
                content_type: str | None = None, headers: Mapping | None = None, stream_to=None,
                node: bool = True):
        """An authenticated request; answers the decoded JSON (or None for an empty body, or the raw bytes
        for a non-JSON answer). Raises ``ApiError`` for 4xx/5xx, ``ServerUnavailable`` when unreachable."""
        return self.exchange(method, path, payload, body=body, content_type=content_type, headers=headers,
                             stream_to=stream_to, node=node)[0]

    def exchange(self, method: str, path: str, payload=None, *, body: bytes | BinaryIO | None = None,
                 content_type: str | None = None, headers: Mapping | None = None, stream_to=None,
                 node: bool = True) -> tuple:
        """``request``, and the answer's headers (lower-cased names) with it."""
        if self.access is None:
            with self._token_lock:
                if self.access is None:
                    self.login()
        if payload is not None:
            body, content_type = json.dumps(payload).encode(), "application/json"
        for attempt in (1, 2):
            token = self.access
            sent = {"Accept": "*/*", "Authorization": f"Bearer {token}", **(headers or {})}
            if content_type:
                sent["Content-Type"] = content_type
            if node and self.node_id is not None:
                sent["Node-Id"] = str(self.node_id)
            if stream_to is not None:
                stream_to.seek(0)
                stream_to.truncate()
            status, data, answer_headers = self.raw(method, path, body, sent, stream_to)
            if status == 401 and attempt == 1:
                self._renew(token)
                continue
            self._check(status, data, method, path)
            if status == 204 or not data:
                return None, answer_headers
            if answer_headers.get("content-type", "").startswith("application/json"):
                return json.loads(data), answer_headers
            return data, answer_headers
        raise AssertionError("unreachable")

    @staticmethod
    def _check(status: int, data: bytes, method: str, path: str) -> None:
        if status in (502, 503, 504):
            raise ServerUnavailable(f"{method} {path}: {status}")
        if status >= 400:
            try:
                detail = json.loads(data).get("detail", "")
            except (ValueError, AttributeError):
                detail = data[:200].decode("utf-8", "replace")
            raise ApiError(status, str(detail), method, path)

    # -- the calls the worker makes --------------------------------------------------------------------------
    def get_job(self, pk: int) -> dict:
        return self.request("GET", f"/v1/jobs/{pk}")

    def acquire_next(self, executors: list[str]) -> dict | None:
        return self.request("POST", "/v1/jobs/acquire-next", {"executors": executors})

    def job_action(self, pk: int, action: str, payload=None) -> dict:
        method = {"start": "POST", "finish": "POST", "acquire": "GET"}.get(action, "DELETE")
        if action.startswith("progress/"):
            method = "POST"
        return self.request(method, f"/v1/jobs/{pk}/{action}", payload if method == "POST" else None)

    def progress(self, pk: int, fraction: float, data: Mapping | None = None) -> dict:
        return self.request("POST", f"/v1/jobs/{pk}/progress/{float(fraction)!s}", dict(data or {}))

    def add_output(self, pk: int, name: str, type_: str, data: bytes | BinaryIO,
                   content_type: str = DEFAULT_CONTENT_TYPE) -> dict:
        """``data``: the bytes, or a binary file sent from disk (see ``raw``); ``content_type``: what its download
        answers."""
        quoted_type = urllib.parse.quote(type_, safe=chr(39) + ',')  # a type's quotes and commas (Domain<'ic'>) kept
        path = f"/v1/jobs/{pk}/outputs/{urllib.parse.quote(name, safe='')}/{quoted_type}"
        return self.request("POST", path, body=data, content_type=content_type,
                            headers={"Content-Disposition": f"attachment; filename={name}"})

    def download_output(self, output_pk: int, file) -> str | None:
        """Writes the output's content to ``file``; answers the file name the server offers (its
        ``Content-Disposition``), as given: None when it offers none."""
        _, headers = self.exchange("POST", f"/v1/job-outputs/{output_pk}/download", body=b'{"params": {}}',
                                   content_type="application/json", stream_to=file)
        return offered_filename(headers.get("content-disposition"))

    def template_parameters(self, template_pk: int) -> dict:
        return self.request("GET", f"/v1/job-templates/{template_pk}/get-all-parameters")

    def template(self, template_pk: int) -> dict:
        return self.request("GET", f"/v1/job-templates/{template_pk}")


def offered_filename(content_disposition: str | None) -> str | None:
    """The ``filename`` (or RFC 2231 ``filename*``) of a ``Content-Disposition`` header, None without one."""
    if not content_disposition:
        return None
    header = Message()  # the standard library's parser of MIME parameters (quoting, RFC 2231)
    header["Content-Disposition"] = content_disposition
    return header.get_filename()
