"""A Seed image's run with the docker client, watched: stopped on timeout or cancellation.

Killing the ``docker`` client does not stop its container (the daemon runs it), so a stopped run also removes
its container by name (``docker rm -f``). That is only sure once the container exists: a ``docker run`` client
killed while its create request is on its way leaves the daemon to make a container after the removal, never
started nor removed. So the run goes in steps: the image pulled when missing (``docker pull``: killing it leaves no
container), the container created (``docker create --pull never``: waited for, never killed, so the name is the
daemon's before anything is removed), started attached (``docker start --attach``: killed on a stop), its exit
status read from the daemon (``docker inspect``: ``start`` answers 1 for a container that could not start, where
the daemon holds 127 for a command not found, as ``docker run`` answers) and removed with its anonymous volumes
(``docker rm -f -v``), whatever happened: ``--rm`` would remove it before its state could be read."""
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ufdl_pyramid.executors import ExecutionContext, ExecutionError, kill_process_group

DOCKER_VARIABLE = "UFDL_SEED_DOCKER"  # the docker binary (default: docker on the PATH)
# Whom containers run as: unset, the image's user (often root, whose files in the scratch directory a worker of
# another user cannot remove); ``worker``, the worker's own uid:gid; else docker's ``--user`` value as it is.
USER_VARIABLE = "UFDL_SEED_USER"
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})?")
# The network containers join (docker's ``--network``): unset, docker's default; ``none`` cuts a job off from
# every network, a network's name (``docker network create``) gives it that one.
NETWORK_VARIABLE = "UFDL_SEED_NETWORK"
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # docker's names; no "container:..." mode
# A container's stdout and stderr are kept as outputs (files in the job's scratch directory, uploaded from
# disk): bounded, for a container may write without end, to the disk and past the server's output size limit.
MAX_LOG_SIZE_VARIABLE = "UFDL_SEED_MAX_LOG_SIZE"
DEFAULT_MAX_LOG_SIZE = 64 * 2**20
_CHUNK = 2**16
DOCKER_REFUSED = 125  # docker run's status when the daemon refuses the container
_POLL_SECONDS = 0.1
_REMOVE_SECONDS = 60
# A create asked to stop is waited for this long at most (a volume driver could hang it), then killed.
_CREATE_GRACE_SECONDS = 60


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    read_only: bool

    def option(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


def docker_binary() -> str:
    return os.environ.get(DOCKER_VARIABLE) or "docker"


def _setting(variable: str, pattern: re.Pattern, wanted: str) -> str:
    """The worker's setting of a docker option ('' when unset), refused unless ``pattern`` matches it whole: a
    value docker could read as another option (``--privileged``) fails the job before anything runs."""
    value = os.environ.get(variable, "")
    if value and not pattern.fullmatch(value):
        raise ExecutionError(f"the worker's {variable} must be {wanted}, not {value[:80]!r}")
    return value


def user_options() -> list[str]:
    """``--user`` as the worker's UFDL_SEED_USER asks (nothing when it is unset or empty)."""
    if os.environ.get(USER_VARIABLE) == "worker":
        return ["--user", f"{os.getuid()}:{os.getgid()}"]
    user = _setting(USER_VARIABLE, _USER, "'worker', USER or USER:GROUP (names or numbers)")
    return ["--user", user] if user else []


def network_options() -> list[str]:
    """``--network`` as the worker's UFDL_SEED_NETWORK asks (nothing when it is unset or empty)."""
    network = _setting(NETWORK_VARIABLE, _NETWORK, "'none' or a docker network's name")
    return ["--network", network] if network else []


@dataclass
class DockerRun:
    image: str
    arguments: list[str]
    environment: dict[str, str]
    mounts: list[Mount]
    name: str  # the container's, to remove it by
    options: list[str] = field(default_factory=list)  # more of docker create's (mounts, --env-file, limits)

    def __post_init__(self):
        self.docker = docker_binary()

    def create_argv(self) -> list[str]:
        # No log driver: the daemon's json-file copy of the output would grow without bound on its disk (the
        # attached client gets the streams all the same).
        argv = [self.docker, "create", "--pull", "never", "--log-driver", "none", "--name", self.name]
        for mount in self.mounts:
            argv += ["-v", mount.option()]
        for variable, value in self.environment.items():
            argv += ["-e", f"{variable}={value}"]
        return [*argv, *self.options, self.image, *self.arguments]

    def run(self, timeout: float, context: ExecutionContext, stdout: Path, stderr: Path) -> tuple[int, str | None]:
        """The exit status, and why the run was stopped (``"timeout"``, ``"cancelled"``) or None. The timeout
        counts from the pull (or the create). Docker's own messages (a pull's, a refused create's) go to
        ``stderr`` before the container's, as ``docker run`` writes them."""
        limit = max_log_size()
        deadline = time.monotonic() + timeout

        def stop_reason() -> str | None:
            return ("cancelled" if context.is_cancelled() else
                    "timeout" if time.monotonic() >= deadline else None)

        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            if self._quiet(["image", "inspect", self.image]) != 0:
                # docker pull prints its progress on stdout: docker's words, not the container's.
                status, reason = self._watch(["pull", self.image], err, err, stop_reason)
                if reason:
                    return status, reason
                # A failed pull: the create below answers docker's 125 (no such image), as docker run would.
            status, reason = self._create(err, stop_reason)
            if reason:
                return status, reason
            if status != 0:  # the client answers 1; docker run's 125 tells docker's refusal from the image's
                return DOCKER_REFUSED, None
            try:
                status, reason = self._watch(["start", "--attach", self.name], out, err, stop_reason, limit)
                return (status if reason else self._exit_code(status)), reason
            finally:
                self.remove()

    def _create(self, err: IO, stop_reason) -> tuple[int, str | None]:
        """``docker create``, waited for even when the run is to stop meanwhile (see above), and then removed."""
        process = self._popen(self.create_argv()[1:], subprocess.DEVNULL, err)  # its stdout: the container's id
        reason, asked = None, None
        while process.poll() is None:
            reason = reason or stop_reason()
            if reason:
                asked = asked or time.monotonic()
                if time.monotonic() - asked > _CREATE_GRACE_SECONDS:
                    kill_process_group(process)
                    break
            time.sleep(_POLL_SECONDS)
        if reason:
            self.remove()
        return process.returncode, reason

    def _watch(self, arguments: list[str], out: IO, err: IO, stop_reason,
               limit: int | None = None) -> tuple[int, str | None]:
        """The client's exit status, or its process group killed when the run is to stop. With ``limit``, only
        the first ``limit`` bytes of each stream are written; the rest is read and dropped (the container
        goes on)."""
        if limit is None:
            process = self._popen(arguments, out, err)
            copies = []
        else:
            process = self._popen(arguments, subprocess.PIPE, subprocess.PIPE)
            copies = [threading.Thread(target=_copy, args=(pipe, file, limit), daemon=True)
                      for pipe, file in ((process.stdout, out), (process.stderr, err))]
            for copy in copies:
                copy.start()
        reason = None
        while process.poll() is None:
            reason = stop_reason()
            if reason:
                kill_process_group(process)
                break
            time.sleep(_POLL_SECONDS)
        for copy in copies:
            copy.join()
        return process.returncode, reason

    def _exit_code(self, client_status: int) -> int:
        """The container's exit status as the daemon holds it (the client's when it cannot be read)."""
        try:
            answer = subprocess.run([self.docker, "inspect", "--format", "{{.State.ExitCode}}", self.name],
                                    stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=_REMOVE_SECONDS)
            return int(answer.stdout) if answer.returncode == 0 else client_status
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return client_status

    def _popen(self, arguments: list[str], out, err) -> subprocess.Popen:
        try:
            return subprocess.Popen([self.docker, *arguments], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True)
        except OSError as error:
            raise ExecutionError(f"cannot run {self.docker!r}: {error.strerror or error}") from None

    def _quiet(self, arguments: list[str]) -> int:
        try:
            return subprocess.run([self.docker, *arguments], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=_REMOVE_SECONDS).returncode
        except subprocess.TimeoutExpired:
            return 1
        except OSError as error:
            raise ExecutionError(f"cannot run {self.docker!r}: {error.strerror or error}") from None

    def remove(self) -> None:
        """Best effort: a container that never started, or already ended, is no error."""
        try:
            subprocess.run([self.docker, "rm", "-f", "-v", self.name], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=_REMOVE_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            pass


def max_log_size() -> int:
    """The bytes of a container's standard output, and of its error, kept (the rest is dropped)."""
    try:
        return max(int(os.environ.get(MAX_LOG_SIZE_VARIABLE) or DEFAULT_MAX_LOG_SIZE), 0)
    except ValueError:
        raise ExecutionError(f"{MAX_LOG_SIZE_VARIABLE} must be a number of bytes, not "
                             f"{os.environ[MAX_LOG_SIZE_VARIABLE]!r}") from None


def _copy(pipe: IO[bytes], file: IO[bytes], limit: int) -> None:
    """Up to ``limit`` bytes of the pipe to the file, then the rest read to its end and dropped, so that the
    container never blocks on a full pipe."""
    with pipe:
        kept = 0
        while chunk := pipe.read1(_CHUNK):
            if kept < limit:
                file.write(chunk[:limit - kept])
                kept += len(chunk[:limit - kept])
