"""``docker run`` of a Seed image, watched: killed on timeout or cancellation.

Killing the ``docker`` client does not stop its container (the daemon runs it), so a stopped run also removes
its container by name (``docker rm -f``)."""
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ufdl_pyramid.executors import ExecutionContext, ExecutionError

DOCKER_VARIABLE = "UFDL_SEED_DOCKER"  # the docker binary (default: docker on the PATH)
_POLL_SECONDS = 0.1
_REMOVE_SECONDS = 60


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    read_only: bool

    def option(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.read_only else "")


def docker_binary() -> str:
    return os.environ.get(DOCKER_VARIABLE) or "docker"


@dataclass
class DockerRun:
    image: str
    arguments: list[str]
    environment: dict[str, str]
    mounts: list[Mount]
    name: str  # the container's, to remove it by
    options: list[str] = field(default_factory=list)  # more of docker run's (mounts, --env-file, limits)

    def __post_init__(self):
        self.docker = docker_binary()

    def argv(self) -> list[str]:
        argv = [self.docker, "run", "--rm", "--name", self.name]
        for mount in self.mounts:
            argv += ["-v", mount.option()]
        for variable, value in self.environment.items():
            argv += ["-e", f"{variable}={value}"]
        return [*argv, *self.options, self.image, *self.arguments]

    def run(self, timeout: float, context: ExecutionContext, stdout: Path, stderr: Path) -> tuple[int, str | None]:
        """The exit status, and why the run was stopped (``"timeout"``, ``"cancelled"``) or None. The client
        runs in its own process group, which is killed whole."""
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            try:
                process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                           start_new_session=True)
            except OSError as error:
                raise ExecutionError(f"cannot run {self.docker!r}: {error.strerror or error}") from None
            deadline = time.monotonic() + timeout
            while process.poll() is None:
                reason = ("cancelled" if context.is_cancelled() else
                          "timeout" if time.monotonic() >= deadline else None)
                if reason:
                    _kill_group(process)
                    self.remove()
                    return process.returncode, reason
                time.sleep(_POLL_SECONDS)
        return process.returncode, None

    def remove(self) -> None:
        """Best effort: a container that never started, or already ended, is no error."""
        try:
            subprocess.run([self.docker, "rm", "-f", self.name], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=_REMOVE_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            pass


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
