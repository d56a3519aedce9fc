"""Executors: the code that does a job's work on a worker node, and the context it works through.

A plugin registers executor classes (``ufdl_register_executors``); a job template names one by its dotted name
(``module.QualifiedName``). The worker builds the executor with no arguments and calls ``execute(context)``
once per job. Whatever ``execute`` raises finishes the job as failed, with the exception's text as the error;
returning normally finishes it as completed. No Pyramid and no HTTP here: the worker backs the context with its
HTTP client, and tests back it with ``RecordingContext``.

The server, when it has the executor installed too, asks ``check_job`` at create-job whether the job could ever
run, so that a job its executor would refuse anyway is a 400 rather than a failed job later.
"""
import copy
import mimetypes
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


# The error categories a node may give a failed job (SYSTEM is the server's own: lost leases, aborts).
ALGORITHM = "ALGORITHM"  # the executor's, or what it runs: the default
DATA = "DATA"  # the job's input data
ERROR_CATEGORIES = (ALGORITHM, DATA)


class ExecutionError(Exception):
    """A failure the executor explains itself; its text becomes the job's error, and ``category`` (ALGORITHM,
    DATA, or None for the default, ALGORITHM) the job's ``error_category``."""

    def __init__(self, *args, category: str | None = None):
        if category is not None and category not in ERROR_CATEGORIES:  # else the server would refuse the finish
            raise ValueError(f"an ExecutionError's category is one of {', '.join(ERROR_CATEGORIES)}, not "
                             f"{category!r}")
        super().__init__(*args)
        self.category = category


class JobCancelled(ExecutionError):
    """Raised by an executor that noticed ``context.is_cancelled()`` and stopped."""

    def __init__(self, message: str = "the job was cancelled"):
        super().__init__(message)


class ExecutionContext:
    """What an executor sees of its job.

    - ``job``: the job's JSON as the server sent it (pk, template, input_values, ...);
    - ``inputs``: input name → value; a ``JobOutput<T>`` input has been downloaded into ``scratch_dir`` and its
      value is the local path (a ``str``), ``inputs/NAME/FILENAME`` under the output's offered file name;
    - ``parameters``: parameter name → value, the template's defaults merged with the job's own values;
    - ``scratch_dir``: a private directory, removed after the job;
    - ``progress(fraction, **data)``: report progress in [0, 1], with optional JSON data;
    - ``add_output(name, type, data, content_type=None)``: upload an output from ``bytes``, ``str`` (UTF-8 text)
      or a ``Path``, with the Content-Type its download answers (see ``output_content_type`` for the default);
    - ``download_output(pk, path)``: write the content of the job output ``pk`` (of any job) to the file
      ``path``, for an executor whose inputs name outputs inside a JSON value (the worker downloads only the
      inputs typed ``JobOutput<T>`` itself); answers the file name the server offers for it (its
      ``Content-Disposition``) as ``safe_filename`` makes it, None when there is none (a context made before it
      answered one answers None too);
    - ``fetch(name)``: the JSON answer of ``GET /v1/jobs/{pk}/{name}``, asked as the node that holds the job:
      what the server gives the node running a job and no one else (the Seed executor's
      ``seed-configuration``); a refusal (403, 404) raises. The answer may hold secrets: do not log it;
    - ``is_cancelled()``: whether the job was cancelled (or its lease lost, or the worker is stopping it) since
      it started: stop soon if so.
    """

    def __init__(self, job: Mapping, inputs: Mapping[str, Any], parameters: Mapping[str, Any],
                 scratch_dir: str | os.PathLike):
        self.job = dict(job)
        self.inputs = dict(inputs)
        self.parameters = dict(parameters)
        self.scratch_dir = Path(scratch_dir)

    def progress(self, fraction: float, **data) -> None:
        raise NotImplementedError

    def add_output(self, name: str, type: str, data: "bytes | str | os.PathLike",
                   content_type: str | None = None) -> None:
        raise NotImplementedError

    def download_output(self, pk: int, path: str | os.PathLike) -> str | None:
        raise NotImplementedError

    def fetch(self, name: str) -> Any:
        raise NotImplementedError

    def is_cancelled(self) -> bool:
        raise NotImplementedError

    def check_cancelled(self) -> None:
        """Raise ``JobCancelled`` if the job was cancelled: a one-line check for loops."""
        if self.is_cancelled():
            raise JobCancelled()


def merged_parameters(job: Mapping, all_parameters: Mapping) -> dict:
    """The template's defaults (``get-all-parameters``), overridden by the job's own parameter values: what an
    executor gets as ``parameters``, from the worker and from the server's ``check_job`` call alike."""
    values = {}
    for name, spec in (all_parameters or {}).items():
        default = (spec or {}).get("default")
        if isinstance(default, Mapping) and "value" in default:
            values[name] = default["value"]
    for name, given in (job.get("parameter_values") or {}).items():
        values[name] = given["value"] if isinstance(given, Mapping) and "value" in given else given
    return values


# A file name is at most 255 bytes on the usual file systems (ext4, xfs, tmpfs).
_MAX_FILENAME_BYTES = 255


def safe_filename(name: str | None) -> str | None:
    """``name`` as one file name in a folder: a '/' (or NUL) is an '_'; None for no name, '.', '..' or a name too
    long for a file system. The server offers an output's name, but another server, or a name stored before the
    names were checked, could offer '../x': the caller falls back to a name of its own."""
    if not isinstance(name, str):
        return None
    name = name.replace("/", "_").replace("\0", "_")
    if name in ("", ".", "..") or len(name.encode("utf-8", "surrogateescape")) > _MAX_FILENAME_BYTES:
        return None
    return name


def output_bytes(data: "bytes | str | os.PathLike") -> bytes:
    """An output's content: bytes as given, text as UTF-8, a ``Path`` (or ``os.PathLike``) read from disk.
    A plain ``str`` is text, never a file name: pass ``Path(name)`` for a file."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, os.PathLike):
        return Path(data).read_bytes()
    raise TypeError(f"an output is bytes, str or a path, not {type(data).__name__}")


# An output's Content-Type when the executor gives none and no file name tells it: the UFDL client's own.
DEFAULT_CONTENT_TYPE = "application/data"
# What the server keeps as an output's Content-Type (anything else it replaces): printable ASCII, as a header
# carries it, and no header injection.
CONTENT_TYPE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,199}")
# A compressed file's own type: mimetypes names the type of what it holds (a .tar.gz is "application/x-tar");
# another compression (brotli: no registered type) tells nothing.
_COMPRESSED_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz",
                     "compress": "application/x-compress"}


def guessed_content_type(filename: str | os.PathLike) -> str | None:
    """The media type a file name's extension tells (Python's ``mimetypes``, which reads the system's
    mime.types too), None when it tells none."""
    kind, encoding = mimetypes.guess_type(filename)
    return _COMPRESSED_TYPES.get(encoding) if encoding else kind


def checked_content_type(content_type: Any) -> str:
    """``content_type`` if the server keeps it as it is (and a header can carry it), else a ``ValueError``: an
    executor's mistake, not to be replaced silently."""
    if not isinstance(content_type, str) or not CONTENT_TYPE.fullmatch(content_type):
        raise ValueError(f"a content type is printable ASCII (at most 200 characters), not "
                         f"{str(content_type)[:80]!r}")
    return content_type


def output_content_type(data: "bytes | str | os.PathLike", content_type: str | None = None) -> str:
    """The Content-Type an output is uploaded with: ``content_type`` when given (checked); else, for a path, the
    type its file name tells; else ``application/data``."""
    if content_type is not None:
        return checked_content_type(content_type)
    guessed = guessed_content_type(data) if isinstance(data, os.PathLike) else None
    return guessed or DEFAULT_CONTENT_TYPE


def kill_process_group(process: subprocess.Popen) -> None:
    """Kill a child started with ``start_new_session=True`` and everything it started (its process group), and
    reap it: an executor's command may have children of its own that a kill of the child alone leaves running."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()

class Executor:
    """The base class of executors. Subclasses implement ``execute``; ``name`` is the dotted name a template's
    ``executor_class`` uses (the module and qualified name, as the plugin registry knows it)."""

    def execute(self, context: ExecutionContext) -> None:
        raise NotImplementedError(f"{type(self).__qualname__} does not implement execute(context)")

    @classmethod
    def check_job(cls, parameters: Mapping[str, Any], inputs: Mapping[str, Any]) -> Mapping[str, list[int]] | None:
        """Raise ``ExecutionError`` for a job this executor could never run; the server calls it at create-job
        (when the executor is installed there too) and answers 400 with the error's text, creating nothing.

        ``parameters`` are merged as ``context.parameters`` are; ``inputs`` are the job's input values by name
        as the job holds them (a ``JobOutput<T>`` input is its pk: nothing is downloaded). Pure checks only: no
        scratch directory, no server, no downloads, nothing slow. Share the code with ``execute`` so that both
        refuse alike. Anything else it raises is logged by the server and the job created unchecked.

        It may answer the job outputs that ``execute`` would download (``download_output``) by what names them,
        ``{"input 'images'": [3, 4]}``: the server refuses the job (400) when one is not there or deleted, as it
        does a ``JobOutput<T>`` value. The default accepts every job and answers None."""

    @classmethod
    def dotted_name(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"


class RecordingContext(ExecutionContext):
    """A context with no server behind it, for tests: records progress and outputs (``content_types`` the
    Content-Type each would be uploaded with, keyed as ``outputs``); ``cancel()`` cancels.

    ``scratch_dir`` defaults to a new temporary directory; ``downloads`` maps the job-output pks that
    ``download_output`` can fetch to their content, ``bytes`` (no file name offered) or ``(filename, bytes)``
    (the name goes through ``safe_filename``, as the worker's does); another pk is a ``LookupError``, as the
    server's 404;
    ``fetchable`` maps the names ``fetch`` answers to their JSON (another name is a ``LookupError`` too), and
    ``fetched`` lists the names asked for."""

    def __init__(self, inputs: Mapping[str, Any] | None = None, parameters: Mapping[str, Any] | None = None,
                 scratch_dir: str | os.PathLike | None = None, job: Mapping | None = None,
                 downloads: Mapping[int, "bytes | tuple[str | None, bytes]"] | None = None,
                 fetchable: Mapping[str, Any] | None = None):
        super().__init__(job or {"pk": 0}, inputs or {}, parameters or {},
                         scratch_dir or tempfile.mkdtemp(prefix="ufdl-scratch-"))
        self.progress_reports: list[tuple[float, dict]] = []
        self.outputs: dict[tuple[str, str], bytes] = {}
        self.content_types: dict[tuple[str, str], str] = {}
        self.downloads = dict(downloads or {})
        self.fetchable = dict(fetchable or {})
        self.fetched: list[str] = []
        self.cancelled = False

    def progress(self, fraction: float, **data) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"progress must be in [0, 1], not {fraction}")
        self.progress_reports.append((fraction, data))

    def add_output(self, name: str, type: str, data, content_type: str | None = None) -> None:
        self.content_types[(name, type)] = output_content_type(data, content_type)
        self.outputs[(name, type)] = output_bytes(data)

    def download_output(self, pk: int, path) -> str | None:
        if pk not in self.downloads:
            raise LookupError(f"Job output {pk} does not exist")
        given = self.downloads[pk]
        filename, content = given if isinstance(given, tuple) else (None, given)
        Path(path).write_bytes(content)
        return safe_filename(filename)

    def fetch(self, name: str) -> Any:
        self.fetched.append(name)
        if name not in self.fetchable:
            raise LookupError(f"GET /v1/jobs/{self.job.get('pk')}/{name}: 404")
        return copy.deepcopy(self.fetchable[name])  # as a fresh answer: the executor may change it

    def is_cancelled(self) -> bool:
        return self.cancelled

    def cancel(self) -> None:
        self.cancelled = True
