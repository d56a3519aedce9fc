"""``ShellExecutor``: runs one command line (no shell) with the job's input text on its standard input."""
import re
import shlex
import subprocess
import threading
import time
from pathlib import Path

from ufdl_pyramid.executors import ExecutionContext, ExecutionError, Executor, JobCancelled, kill_process_group

# {name}, or {{name}}: the text {name} (a word in braces is otherwise always a placeholder).
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}|\{(\w+)\}")
_POLL_SECONDS = 0.1
_STDERR_TAIL = 2000


class ShellExecutor(Executor):
    """Parameters: ``command`` (a command line, split like a POSIX shell would; ``{name}`` placeholders are
    replaced by the input or parameter of that name, and one that names neither fails the job; ``{{name}}`` is
    the text ``{name}``; other braces are left alone) and ``timeout`` (seconds,
    default 60). The input ``input`` goes to standard input (text as UTF-8; a downloaded job output as its
    bytes). Standard output becomes the output ``output`` (``BLOB``); a non-empty standard error is also kept, as
    the output ``stderr``. A non-zero exit status, a timeout or a cancellation fails the job, the first with the
    tail of standard error in the message. The process runs in its own process group, which is killed whole."""

    output_type = "BLOB"

    def execute(self, context: ExecutionContext) -> None:
        argv = self.command_line(context)
        timeout = float(context.parameters.get("timeout") or 60)
        stdin = self.standard_input(context)
        out_path, err_path = context.scratch_dir / "stdout", context.scratch_dir / "stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                           cwd=context.scratch_dir, start_new_session=True)
            except OSError as error:
                raise ExecutionError(f"cannot run {argv[0]!r}: {error.strerror or error}") from None
            feeder = threading.Thread(target=_feed, args=(process, stdin), daemon=True)
            feeder.start()
            stopped = self.wait(process, timeout, context)
            feeder.join(1)
        stderr = err_path.read_bytes()
        if stderr:
            context.add_output("stderr", "BLOB", stderr)
        if stopped == "cancelled":
            raise JobCancelled()
        if stopped == "timeout":
            raise ExecutionError(f"{argv[0]} timed out after {timeout:g} s and was killed")
        if process.returncode != 0:
            tail = stderr[-_STDERR_TAIL:].decode("utf-8", "replace").strip()
            raise ExecutionError(f"{argv[0]} exited with status {process.returncode}" + (f": {tail}" if tail else ""))
        context.add_output("output", self.output_type, Path(out_path))

    def command_line(self, context: ExecutionContext) -> list[str]:
        command = context.parameters.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ExecutionError("the parameter 'command' must be a non-empty command line")
        values = {**{name: value for name, value in context.parameters.items()}, **context.inputs}

        def substitute(match):
            escaped, name = match.groups()
            if escaped is not None:
                return f"{{{escaped}}}"
            if name not in values:  # a typo left in the command would run it with the braces as text
                raise ExecutionError(f"the command line's placeholder {{{name}}} names no input or parameter "
                                     f"(there are {', '.join(sorted(values))}); write {{{{{name}}}}} for the "
                                     f"text {{{name}}}")
            return str(values[name])

        try:
            return [_PLACEHOLDER.sub(substitute, word) for word in shlex.split(command)]
        except ValueError as error:
            raise ExecutionError(f"cannot split the command line: {error}") from None

    @staticmethod
    def standard_input(context: ExecutionContext) -> bytes:
        value = context.inputs.get("input")
        if value is None:
            return b""
        kind = context.job.get("input_values", {}).get("input", {}).get("type", "")
        if kind.startswith("JobOutput"):
            return Path(value).read_bytes()
        return value.encode("utf-8") if isinstance(value, str) else str(value).encode("utf-8")

    @staticmethod
    def wait(process: subprocess.Popen, timeout: float, context: ExecutionContext) -> str | None:
        """Waits for the process; kills its group on timeout or cancellation and says which."""
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            reason = ("cancelled" if context.is_cancelled() else
                      "timeout" if time.monotonic() >= deadline else None)
            if reason:
                kill_process_group(process)
                return reason
            time.sleep(_POLL_SECONDS)
        return None


def _feed(process: subprocess.Popen, data: bytes) -> None:
    try:
        process.stdin.write(data)
    except (BrokenPipeError, OSError):  # the command does not read its input: fine
        pass
    finally:
        try:
            process.stdin.close()
        except OSError:
            pass
