"""The execution context a worker gives an executor: inputs downloaded, defaults merged, progress and outputs
sent to the server."""
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from ..executors import ExecutionContext, output_bytes, output_content_type, safe_filename
from .api import ApiError, ServerUnavailable, UfdlApi

log = logging.getLogger(__name__)


def resolved_inputs(api: UfdlApi, job: Mapping, scratch_dir: Path) -> dict:
    """Input name → value; a ``JobOutput<T>`` input's output is downloaded and its value is the local path,
    ``inputs/NAME/FILENAME``: the file name the server offers (the output's, with its extension, which tools
    that open a file by its type read), else the input's name."""
    inputs = {}
    for name, given in (job.get("input_values") or {}).items():
        value, kind = given.get("value"), given.get("type", "")
        if kind.startswith("JobOutput") and value is not None:
            folder = scratch_dir / "inputs" / name
            folder.mkdir(parents=True, exist_ok=True)
            download = folder.with_name(f"{name}.download")  # the name is known once the download is done
            with open(download, "wb") as file:
                offered = safe_filename(api.download_output(int(value), file))
            path = folder / (offered or name)
            download.replace(path)
            value = str(path)
        inputs[name] = value
    return inputs


class HttpExecutionContext(ExecutionContext):
    """Progress and outputs go to the server as the job's holding node; ``is_cancelled`` asks ``cancelled``
    (the worker's heartbeat, which polls the job, and the worker's own stop flag). ``retrying(what, call)``
    runs an upload again while the server is unavailable (restarting, or asking for the bytes again)."""

    def __init__(self, api: UfdlApi, job: Mapping, inputs, parameters, scratch_dir, cancelled: Callable[[], bool],
                 retrying: Callable[[str, Callable], object] = lambda _what, call: call()):
        super().__init__(job, inputs, parameters, scratch_dir)
        self.api = api
        self._cancelled = cancelled
        self._retrying = retrying
        self.refused = False  # the server refused a progress report: the job is no longer ours to run

    @property
    def pk(self) -> int:
        return self.job["pk"]

    def progress(self, fraction: float, **data) -> None:
        fraction = float(fraction)
        if not 0 <= fraction <= 1:
            raise ValueError(f"progress must be in [0, 1], not {fraction}")
        try:
            self.api.progress(self.pk, fraction, data)
        except ServerUnavailable as error:  # progress is best-effort; the finish is retried, not this
            log.warning("job %s: progress %.2f not sent: %s", self.pk, fraction, error)
        except ApiError as error:
            if error.status in (403, 406):
                self.refused = True
                log.warning("job %s: progress refused (%s); stopping", self.pk, error.detail)
            elif error.status == 500:  # best-effort too: a server's error is no reason to fail the job
                log.warning("job %s: progress %.2f not sent: %s", self.pk, fraction, error)
            else:
                raise

    def add_output(self, name: str, type: str, data, content_type: str | None = None) -> None:
        content_type = output_content_type(data, content_type)
        if isinstance(data, os.PathLike):
            # Sent from disk as it is read, never whole in memory (a model may be several GiB); the client sends
            # it from its first byte on every try.
            with open(data, "rb") as file:
                self._send_output(name, type, file, content_type)
        else:
            self._send_output(name, type, output_bytes(data), content_type)

    def _send_output(self, name: str, type: str, body, content_type: str) -> None:
        tries = []

        def send():
            tries.append(1)
            try:
                return self.api.add_output(self.pk, name, type, body, content_type)
            except ApiError as error:
                if error.status == 409 and len(tries) > 1:
                    # An earlier try was stored and its answer lost (the server stopping, say): it is there.
                    log.info("job %s: output %s was already added", self.pk, name)
                    return None
                raise

        self._retrying(f"adding output {name}", send)

    def download_output(self, pk: int, path) -> str | None:
        def fetch():  # each try writes the file afresh
            with open(path, "wb") as file:
                return self.api.download_output(int(pk), file)

        return safe_filename(self._retrying(f"downloading output {pk}", fetch))

    def fetch(self, name: str):
        # Retried as a download is; the answer is the executor's alone (it may hold secrets): never logged.
        return self._retrying(f"fetching {name}",
                              lambda: self.api.request("GET", f"/v1/jobs/{self.pk}/{quote(name, safe='')}"))

    def is_cancelled(self) -> bool:
        return self.refused or self._cancelled()
