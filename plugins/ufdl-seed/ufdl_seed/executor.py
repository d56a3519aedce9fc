"""``SeedExecutor``: one job of a Scale job type's revision, run as its Seed image with docker (create, then start)."""
import os
import uuid
from pathlib import Path

from ufdl_pyramid.executors import ExecutionContext, ExecutionError, Executor, JobCancelled, safe_filename

from .configuration import fetch_configuration, mount_options, settings, write_environment_file
from .docker import DockerRun, Mount, network_options, user_options
from .interface import CONTAINER_INPUTS, LOG_OUTPUTS, OUTPUT_DIR, BoundInputs, SeedInterface, command_arguments
from .outputs import capture
from .resources import allocated_environment, allocations, input_mib, limit_options

_STDERR_TAIL = 2000


class SeedExecutor(Executor):
    """Parameters (the revision's template sets both, constant): ``seed_image`` and ``seed_manifest``. The input
    ``input`` is a JSON object of the manifest's inputs by name: a JSON input's value, a file input's job-output
    pk (a list of them when ``multiple``). The files are downloaded and mounted read-only under /seed/inputs
    (``NAME/PK/FILENAME``, the file name the server offers for the output), an empty output directory at
    /seed/outputs (OUTPUT_DIR); the job type's settings are the container's environment (never on the command
    line) and its mounts are mounted, as the server gives them to the node holding the job
    (``seed-configuration``); the manifest's resources are ``ALLOCATED_*`` variables, and ``cpus``, ``mem``,
    ``sharedMem`` and ``gpus`` are given by docker too; the command is the manifest's, ``${NAME}`` replaced; the
    container runs as the worker's UFDL_SEED_USER says (``docker.user_options``), on its UFDL_SEED_NETWORK.
    The manifest's ``timeout`` (seconds) and a cancellation stop the container. A non-zero exit fails the job,
    naming the manifest's error of that code. The outputs are the manifest's files (BLOB, as their
    ``mediaType``, else the type their name tells) and ``seed.outputs.json`` values (JSON, as
    ``application/json``), all of the latter as ``output`` (JSON), and the container's standard output and
    error (``stdout``, ``stderr``, BLOB as ``text/plain``, when not empty)."""

    def execute(self, context: ExecutionContext) -> None:
        interface, inputs = self.bound(context.parameters, context.inputs)
        configuration = fetch_configuration(interface, context)
        setting_values = settings(interface, configuration)
        user = user_options()
        options = user + network_options() + mount_options(interface, configuration)
        work = context.scratch_dir / "seed"
        input_dir, output_dir = work / "inputs", work / "outputs"
        output_dir.mkdir(parents=True)
        if user:
            # The container's user may be another than the worker's: it writes its outputs here. The scratch
            # directory above is the worker's alone (mode 0700), so no other local user reaches it.
            output_dir.chmod(0o777)
        environment = inputs.environment(self.download(context, inputs, input_dir))
        context.check_cancelled()
        allocated = allocations(interface, input_mib(input_dir))
        environment.update(allocated_environment(allocated))
        options += limit_options(allocated)
        arguments = command_arguments(interface, {**setting_values, **environment})
        environment_file = work / "environment"
        options += write_environment_file(environment_file, setting_values)
        run = DockerRun(interface.image, arguments, environment,
                        [Mount(input_dir, CONTAINER_INPUTS, True), Mount(output_dir, OUTPUT_DIR, False)],
                        name=f"ufdl-seed-job-{context.job.get('pk')}-{uuid.uuid4().hex[:12]}", options=options)
        stdout, stderr = work / "stdout", work / "stderr"
        try:
            status, stopped = run.run(interface.timeout, context, stdout, stderr)
        finally:
            environment_file.unlink(missing_ok=True)  # the setting values stay no longer than the run
        for name, path in zip(LOG_OUTPUTS, (stdout, stderr)):
            if path.stat().st_size:
                context.add_output(name, "BLOB", path, "text/plain")
        if stopped == "cancelled":
            raise JobCancelled()
        if stopped == "timeout":
            raise ExecutionError(f"{interface.image} timed out after {interface.timeout:g} s (the manifest's "
                                 f"timeout) and was stopped")
        if status != 0:
            raise ExecutionError(self.failure(interface, status, stderr), category=interface.error_category(status))
        for output in capture(interface, output_dir):
            context.add_output(output.name, output.type, output.data, output.content_type)

    @classmethod
    def check_job(cls, parameters: dict, inputs: dict) -> dict[str, list[int]]:
        """At create-job, what ``execute`` checks first, with the same code: the image, the manifest, its output
        names and its command's placeholders, and the ``input`` object against the manifest's inputs. Answers
        the job outputs that its file inputs name, which the server checks are there."""
        _, bound = cls.bound(parameters, inputs)
        return {f"input {name!r}": pks for name, (_, pks) in bound.files.items()}

    @staticmethod
    def bound(parameters: dict, inputs: dict) -> tuple[SeedInterface, BoundInputs]:
        """The manifest's interface, and the job's ``input`` bound to it; ``ExecutionError`` if unusable."""
        interface = SeedInterface.from_parameters(parameters)
        interface.check_outputs()
        bound = interface.bind(inputs.get("input"))
        # The command may name the inputs, the settings (not the secret ones), the resources and OUTPUT_DIR:
        # checked with the values known before any download. The input files' names and the resources' amounts
        # (which depend on the inputs' size) come after it, and a setting's value (the node fetches them) changes
        # a word, not whether the command can be filled; the run fills it again with every value.
        command_arguments(interface, {**bound.environment({}), **allocated_environment(allocations(interface, 0))})
        return interface, bound

    @staticmethod
    def download(context: ExecutionContext, inputs: BoundInputs, input_dir: Path) -> dict[int, str]:
        """Each file input's job outputs into its own folder, each in a folder named by its pk, under the file
        name the server offers (images may tell a file's type by its extension), else its pk. Answers the file
        names by pk. An input's folder is always made, so that an empty ``multiple`` input is an empty folder."""
        input_dir.mkdir(parents=True)
        # Downloaded beside the inputs, then moved: the name is known once the download is done.
        partial = input_dir.with_name("download")
        filenames = {}
        for name, (_, pks) in inputs.files.items():
            folder = input_dir / name
            folder.mkdir()
            for pk in pks:
                context.check_cancelled()
                try:
                    offered = context.download_output(pk, partial)
                except ExecutionError:
                    raise
                except Exception as error:  # a pk that names no output: the server's 404, say
                    raise ExecutionError(f"input {name!r}: cannot download job output {pk}: {error}") from None
                # Made safe again: a context of another plugin may answer the name as the server sent it.
                filenames[pk] = safe_filename(offered) or str(pk)
                (folder / str(pk)).mkdir()
                partial.rename(folder / str(pk) / filenames[pk])
        return filenames

    @staticmethod
    def failure(interface: SeedInterface, status: int, stderr: Path) -> str:
        meaning = interface.error_text(status)
        with open(stderr, "rb") as file:  # its tail alone: it may be UFDL_SEED_MAX_LOG_SIZE long
            file.seek(max(file.seek(0, os.SEEK_END) - _STDERR_TAIL, 0))
            tail = file.read().decode("utf-8", "replace").strip()
        return (f"{interface.image} exited with status {status}" + (f", the manifest's error {meaning}" if meaning
                                                                     else "") + (f": {tail}" if tail else ""))
