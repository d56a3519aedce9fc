"""The Seed executor against a RecordingContext and a fake docker client (``fake_docker.py``, which runs the
container's command locally with the container paths mapped back): inputs downloaded and mounted, the
environment and ``${NAME}`` substitution, outputs collected, exit codes named, timeout and cancellation."""
import json
import os
import re
import shlex
import sys
import threading
from pathlib import Path

import pytest

from ufdl_pyramid.executors import ExecutionError, JobCancelled, RecordingContext
from ufdl_pyramid.plugins import load_plugins
from ufdl_seed import SeedExecutor, plugin

FAKE_DOCKER = Path(__file__).with_name("fake_docker.py")
PYTHON = shlex.quote(sys.executable)
IMAGE = "registry.example/read-bytes:1.0.0"

# The container's program: prints its environment's Seed variables and its arguments as JSON (on stdout),
# writes what JOB asks for (a Python statement, with `out` the output directory) and exits with EXIT.
PROGRAM = """
import json, os, sys, time
out = os.environ["OUTPUT_DIR"]
print(json.dumps({"argv": sys.argv[1:], "env": {k: v for k, v in os.environ.items() if k.isupper()}}))
exec(os.environ.get("JOB", "pass"))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


@pytest.fixture
def docker(tmp_path, monkeypatch):
    """The fake client as UFDL_SEED_DOCKER; ``calls()`` lists the argument lists it was called with, ``created()``
    the one ``create`` call, ``containers()`` the names of the containers the fake holds."""
    binary = tmp_path / "docker"
    binary.write_text(f"#!{sys.executable}\n" + FAKE_DOCKER.read_text())
    binary.chmod(0o755)
    log = tmp_path / "docker.log"
    monkeypatch.setenv("UFDL_SEED_DOCKER", str(binary))
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)

    class Docker:
        path = binary

        @staticmethod
        def calls() -> list[list[str]]:
            return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

        @staticmethod
        def created() -> list[str]:
            [call] = [call for call in Docker.calls() if call[0] == "create"]
            return call

        @staticmethod
        def containers() -> list[str]:
            folder = tmp_path / "fake-containers"
            return sorted(path.name for path in folder.iterdir()) if folder.exists() else []

        @staticmethod
        def command(arguments: str = "") -> str:
            return f"{PYTHON} {program} {arguments}".strip()

        @staticmethod
        def job(code: str = "", exit: int = 0):
            monkeypatch.setenv("JOB", code)
            monkeypatch.setenv("EXIT", str(exit))

    return Docker()


def manifest(command: str | None, inputs: dict | None = None, outputs: dict | None = None,
             errors: list | None = None, timeout: int = 60, **interface) -> dict:
    job = {"name": "read-bytes", "jobVersion": "1.0.0", "packageVersion": "1.0.0", "title": "Read bytes",
           "description": "Reads bytes", "timeout": timeout, "maintainer": {"name": "Jo", "email": "jo@example.com"},
           "interface": {"inputs": inputs or {}, "outputs": outputs or {}, **interface}}
    if command is not None:
        job["interface"]["command"] = command
    if errors is not None:
        job["errors"] = errors
    return {"seedVersion": "1.0.0", "job": job}


def context(seed_manifest: dict, given, downloads: dict | None = None, pk: int = 7,
            configuration: dict | None = None) -> RecordingContext:
    """``configuration``: what the server answers the node's ``seed-configuration`` (none: a 404)."""
    return RecordingContext({"input": given}, {"seed_image": IMAGE, "seed_manifest": seed_manifest},
                            job={"pk": pk}, downloads=downloads,
                            fetchable={} if configuration is None else {"seed-configuration": configuration})


def run(seed_manifest: dict, given, downloads: dict | None = None,
        configuration: dict | None = None) -> RecordingContext:
    recorded = context(seed_manifest, given, downloads, configuration=configuration)
    SeedExecutor().execute(recorded)
    return recorded


def printed(recorded: RecordingContext) -> dict:
    return json.loads(recorded.outputs[("stdout", "BLOB")])


READ_BYTES = {"files": [{"name": "INPUT_TEXT", "mediaTypes": ["text/plain"]}],
              "json": [{"name": "READ_LENGTH", "type": "integer"}, {"name": "LABEL", "type": "string"}]}
READ_OUTPUTS = {"files": [{"name": "OUTPUT_TEXT", "pattern": "output_*.txt"}],
                "json": [{"name": "total_input", "key": "TOTAL_INPUT", "type": "integer"}]}
READ_JOB = """
text = open(sys.argv[1], "rb").read()[:int(sys.argv[2])]
open(os.path.join(sys.argv[3], "output_text.txt"), "wb").write(text)
json.dump({"TOTAL_INPUT": len(text), "unasked": 1}, open(os.path.join(out, "seed.outputs.json"), "w"))
print("read", len(text), file=sys.stderr)
"""


def test_the_plugin_registers_it_under_the_name_the_templates_use():
    assert plugin.ufdl_register_executors() == [SeedExecutor]
    assert load_plugins(strict=True).executors["ufdl_seed.SeedExecutor"] is SeedExecutor


def test_a_run_from_inputs_to_outputs(docker):
    docker.job(READ_JOB)
    seed = manifest(docker.command("${INPUT_TEXT} ${READ_LENGTH} ${OUTPUT_DIR}"), READ_BYTES, READ_OUTPUTS)
    recorded = run(seed, {"INPUT_TEXT": 12, "READ_LENGTH": 5, "LABEL": "two words"},
                   {12: ("text.txt", b"hello world")})
    assert recorded.outputs[("OUTPUT_TEXT", "BLOB")] == b"hello"
    assert json.loads(recorded.outputs[("total_input", "JSON")]) == 5
    assert json.loads(recorded.outputs[("output", "JSON")]) == {"total_input": 5}
    assert recorded.outputs[("stderr", "BLOB")] == b"read 5\n"
    assert set(recorded.outputs) == {("OUTPUT_TEXT", "BLOB"), ("total_input", "JSON"), ("output", "JSON"),
                                     ("stdout", "BLOB"), ("stderr", "BLOB")}
    # What docker was asked: the image, the inputs read-only and the output folder mounted, the standard's
    # variables (container paths: the input under the file name the server offered), the command split with its
    # placeholders replaced.
    name = docker.created()[6]
    assert name.startswith("ufdl-seed-job-7-")
    assert docker.calls() == [["image", "inspect", IMAGE], docker.created(), ["start", "--attach", name],
                              ["inspect", "--format", "{{.State.ExitCode}}", name], ["rm", "-f", "-v", name]]
    call = docker.created()[6:]
    scratch = recorded.scratch_dir / "seed"
    assert call[1:13] == ["-v", f"{scratch}/inputs:/seed/inputs:ro", "-v", f"{scratch}/outputs:/seed/outputs",
                          "-e", "INPUT_TEXT=/seed/inputs/INPUT_TEXT/12/text.txt", "-e", "READ_LENGTH=5",
                          "-e", "LABEL=two words", "-e", "OUTPUT_DIR=/seed/outputs"]
    assert call[13] == IMAGE
    assert call[14:] == [sys.executable, str(docker.path.with_name("program.py")),
                         "/seed/inputs/INPUT_TEXT/12/text.txt", "5", "/seed/outputs"]
    # ... which the container saw as its own paths (here mapped back to the host's by the fake).
    seen = printed(recorded)
    assert seen["argv"] == [f"{scratch}/inputs/INPUT_TEXT/12/text.txt", "5", f"{scratch}/outputs"]
    assert {name: seen["env"][name] for name in ("INPUT_TEXT", "READ_LENGTH", "LABEL", "OUTPUT_DIR")} == {
        "INPUT_TEXT": f"{scratch}/inputs/INPUT_TEXT/12/text.txt", "READ_LENGTH": "5", "LABEL": "two words",
        "OUTPUT_DIR": f"{scratch}/outputs"}


def test_a_word_keeps_its_placeholders_value_whole_and_json_values_are_json(docker):
    seed = manifest(docker.command("--label=${LABEL} ${LABEL} '${OPTIONS}'"),
                    {"json": [{"name": "LABEL", "type": "string"}, {"name": "OPTIONS", "type": "object"}]})
    recorded = run(seed, {"LABEL": "a b", "OPTIONS": {"k": [1, 2]}})
    seen = printed(recorded)
    assert seen["argv"] == ["--label=a b", "a b", '{"k": [1, 2]}']
    assert seen["env"]["OPTIONS"] == '{"k": [1, 2]}'
    integer = manifest(docker.command("${N}"), {"json": [{"name": "N", "type": "integer"}]})
    assert printed(run(integer, {"N": 5.0}))["argv"] == ["5"]


def test_multiple_files_in_and_out(docker):
    """A multiple input's folder holds a folder per pk, each with its file: under the name the server offered,
    else the pk."""
    docker.job("""
for pk in sorted(os.listdir(sys.argv[1])):
    [name] = os.listdir(os.path.join(sys.argv[1], pk))
    data = open(os.path.join(sys.argv[1], pk, name), "rb").read()
    open(os.path.join(out, "part-" + pk + "-" + name + ".txt"), "wb").write(data)
os.mkdir(os.path.join(out, "sub dir"))
open(os.path.join(out, "sub dir", "part-x.txt"), "w").write("x")
""")
    seed = manifest(docker.command("${PARTS}"), {"files": [{"name": "PARTS", "multiple": True}]},
                    {"files": [{"name": "PIECES", "pattern": "*/part-*.txt", "multiple": True, "required": False},
                               {"name": "PART", "pattern": "part-*.txt", "multiple": True}]})
    recorded = run(seed, {"PARTS": [3, 4, 3]}, {3: ("three.csv", b"three"), 4: b"four"})
    assert printed(recorded)["env"]["PARTS"].endswith("/seed/inputs/PARTS")
    assert {key: value for key, value in recorded.outputs.items() if key[1] == "BLOB" and key[0] != "stdout"} == {
        ("PART:part-3-three.csv.txt", "BLOB"): b"three", ("PART:part-4-4.txt", "BLOB"): b"four",
        ("PIECES:sub_dir:part-x.txt", "BLOB"): b"x"}


@pytest.mark.parametrize("offered, filename", [
    ("image.png", "image.png"), ("PARTS:sub_dir:a b.txt", "PARTS:sub_dir:a b.txt"), ("../../x", ".._.._x"),
    ("..", "12"), (".", "12"), ("", "12"), (None, "12"), ("x" * 256, "12"),
])
def test_an_input_file_keeps_the_name_offered_made_a_file_name_else_its_pk(docker, offered, filename):
    """The name the server offers (its Content-Disposition) is one file name in the pk's folder: never a path
    out of it, never '.' or '..'; without a usable one, the pk."""
    seed = manifest(docker.command("${FILE}"), {"files": [{"name": "FILE"}]})
    recorded = run(seed, {"FILE": 12}, {12: (offered, b"content")})
    [path] = printed(recorded)["argv"]
    assert path == f"{recorded.scratch_dir}/seed/inputs/FILE/12/{filename}"
    assert Path(path).read_bytes() == b"content"
    inputs = recorded.scratch_dir / "seed" / "inputs"
    assert [str(found.relative_to(inputs)) for found in inputs.rglob("*") if found.is_file()] == [
        f"FILE/12/{filename}"]


def test_a_name_a_context_answers_unchecked_is_made_a_file_name_too(docker):
    """A context of another plugin may answer the name as a server sent it: '..' stays in the pk's folder."""
    class Unchecked(RecordingContext):
        def download_output(self, pk, path):
            super().download_output(pk, path)
            return "../.."

    seed = manifest(docker.command("${FILE}"), {"files": [{"name": "FILE"}]})
    recorded = Unchecked({"input": {"FILE": 12}}, {"seed_image": IMAGE, "seed_manifest": seed},
                         downloads={12: b"content"})
    SeedExecutor().execute(recorded)
    assert printed(recorded)["argv"] == [f"{recorded.scratch_dir}/seed/inputs/FILE/12/.._.."]


def test_an_optional_input_left_out_is_empty_and_its_lone_placeholder_no_argument(docker):
    seed = manifest(docker.command("${FILE} x${COUNT}y ${COUNT} end"),
                    {"files": [{"name": "FILE", "required": False}],
                     "json": [{"name": "COUNT", "type": "integer", "required": False}]})
    seen = printed(run(seed, {}))
    assert seen["argv"] == ["xy", "end"]
    assert "FILE" not in seen["env"] and "COUNT" not in seen["env"]


@pytest.mark.parametrize("given, message", [
    ({"READ_LENGTH": 5, "LABEL": "x"}, "the required input 'INPUT_TEXT' is missing"),
    ({"INPUT_TEXT": 12, "LABEL": "x"}, "the required input 'READ_LENGTH' is missing"),
    ({"INPUT_TEXT": 12, "READ_LENGTH": "5", "LABEL": "x"},
     "input 'READ_LENGTH' must be of JSON type integer, not string"),
    ({"INPUT_TEXT": 12, "READ_LENGTH": 5, "LABEL": True}, "input 'LABEL' must be of JSON type string, not boolean"),
    ({"INPUT_TEXT": "12", "READ_LENGTH": 5, "LABEL": "x"}, "input 'INPUT_TEXT' must be a job-output pk, not \"12\""),
    ({"INPUT_TEXT": [12], "READ_LENGTH": 5, "LABEL": "x"}, "input 'INPUT_TEXT' must be a job-output pk, not [12]"),
    ({"INPUT_TEXT": 12, "READ_LENGTH": 5, "LABEL": "x", "READ_LENGHT": 4},
     "input 'READ_LENGHT' is not an input of read-bytes 1.0.0 (its inputs: INPUT_TEXT, LABEL, READ_LENGTH)"),
    ([12, 5], "the input 'input' must be a JSON object of the manifest's inputs by name, not array"),
])
def test_inputs_that_do_not_fit_the_manifest_fail_before_anything_runs(docker, given, message):
    seed = manifest(docker.command(), READ_BYTES)
    recorded = context(seed, given, {12: b"hello"})
    with pytest.raises(ExecutionError) as refused:
        SeedExecutor().execute(recorded)
    assert str(refused.value) == message
    assert docker.calls() == [] and recorded.outputs == {}


def test_a_multiple_input_takes_a_list(docker):
    seed = manifest(docker.command(), {"files": [{"name": "PARTS", "multiple": True}]})
    for given, wanted in ((3, "a non-empty list of job-output pks, not 3"),
                          ([], "a non-empty list of job-output pks, not []"),
                          ([3, True], "a non-empty list of job-output pks, not [3, true]")):
        with pytest.raises(ExecutionError, match=f"^input 'PARTS' must be {re.escape(wanted)}$"):
            run(seed, {"PARTS": given}, {3: b""})
    assert docker.calls() == []


def test_the_check_answers_the_outputs_its_file_inputs_name():
    """create-job's check answers them (the server refuses a job naming one that is not there): each once, the
    optional input that was not given naming none."""
    seed = manifest("run", {"files": [{"name": "PARTS", "multiple": True}, {"name": "ONE"},
                                      {"name": "SPARE", "required": False}],
                            "json": [{"name": "N", "type": "integer"}]})
    answered = SeedExecutor.check_job({"seed_image": IMAGE, "seed_manifest": seed},
                                      {"input": {"PARTS": [4, 3, 4], "ONE": 5, "N": 3}})
    assert answered == {"input 'PARTS'": [4, 3], "input 'ONE'": [5]}


def test_an_input_output_that_cannot_be_downloaded_fails_naming_it(docker):
    seed = manifest(docker.command(), READ_BYTES)
    with pytest.raises(ExecutionError) as refused:
        run(seed, {"INPUT_TEXT": 99, "READ_LENGTH": 5, "LABEL": "x"}, {12: b"hello"})
    assert str(refused.value) == "input 'INPUT_TEXT': cannot download job output 99: Job output 99 does not exist"
    assert docker.calls() == []


def test_an_input_name_that_is_a_path_writes_nothing_outside_the_scratch_directory(docker):
    """A template imported by hand may hold any manifest: its input's name became a folder under the inputs."""
    seed = manifest(docker.command(), {"files": [{"name": "../../../escaped"}]})
    recorded = context(seed, {"../../../escaped": 3}, {3: b"data"})
    with pytest.raises(ExecutionError) as refused:
        SeedExecutor().execute(recorded)
    assert str(refused.value) == ("the manifest's input name '../../../escaped' is not a Seed name (only letters, "
                                  "digits, '-' and '_')")
    assert not (recorded.scratch_dir.parent / "escaped").exists() and docker.calls() == []


@pytest.mark.parametrize("interface, kind, name", [
    ({"settings": [{"name": "TOKEN\nPATH"}]}, "setting", "TOKEN\nPATH"),  # a second line of the environment file
    ({"inputs": {"json": [{"name": "LD_PRELOAD=/tmp/x.so X", "type": "string", "required": False}]}}, "input",
     "LD_PRELOAD=/tmp/x.so X"),  # -e LD_PRELOAD=/tmp/x.so X=value
    ({"outputs": {"files": [{"name": "a/b", "pattern": "*"}]}}, "output", "a/b"),
    ({"mounts": [{"name": "M N", "path": "/m"}]}, "mount", "M N"),
])
def test_a_name_docker_would_misread_fails_before_anything_runs(docker, interface, kind, name):
    seed = manifest(docker.command())
    seed["job"]["interface"].update(interface)
    with pytest.raises(ExecutionError) as refused:
        run(seed, {}, configuration={"settings": {"TOKEN\nPATH": "x"}, "mounts": {"M N": {"type": "volume"}}})
    assert str(refused.value) == (f"the manifest's {kind} name {name!r} is not a Seed name (only letters, digits, "
                                  f"'-' and '_')")
    assert docker.calls() == []


@pytest.mark.parametrize("parameters, message", [
    ({"seed_manifest": manifest("true")}, "the parameter 'seed_image' must name the Seed image"),
    ({"seed_image": IMAGE}, "the parameter 'seed_manifest' must be a Seed manifest"),
    ({"seed_image": IMAGE, "seed_manifest": manifest("true", timeout=0)},
     "the manifest's job.timeout must be a positive number of seconds, not 0"),
])
def test_a_template_without_the_image_or_the_manifest_fails_clearly(docker, parameters, message):
    with pytest.raises(ExecutionError, match=f"^{re.escape(message)}"):
        SeedExecutor().execute(RecordingContext({"input": {}}, parameters))
    assert docker.calls() == []


@pytest.mark.parametrize("image", ["--privileged", "-v/:/host", "ubuntu\n", "Ubuntu", "two words"])
def test_an_image_that_is_no_image_reference_runs_nothing(docker, image):
    """A template imported by hand may name any seed_image: docker would read "--privileged" as an option."""
    parameters = {"seed_image": image, "seed_manifest": manifest(docker.command())}
    with pytest.raises(ExecutionError, match="^the parameter 'seed_image' must be a Docker image reference"):
        SeedExecutor().execute(RecordingContext({"input": {}}, parameters))
    assert docker.calls() == []


def test_a_placeholder_that_names_no_variable_fails_the_job(docker):
    seed = manifest(docker.command("${DB_HOST}"))
    with pytest.raises(ExecutionError) as refused:
        run(seed, {})
    assert str(refused.value) == ("the manifest's command names ${DB_HOST}, which is no input, setting or "
                                  "resource variable of read-bytes 1.0.0 and not OUTPUT_DIR")
    assert docker.calls() == []
    # Known from the manifest: create-job's check refuses it too.
    with pytest.raises(ExecutionError, match=re.escape(str(refused.value))):
        SeedExecutor.check_job({"seed_image": IMAGE, "seed_manifest": seed}, {"input": {}})


SETTINGS = [{"name": "DB_HOST"}, {"name": "DB_PASS", "secret": True}, {"name": "UNSET"}]
SECRET = "pa ss=word#1 'quoted' $HOME"


def test_settings_are_the_containers_environment_and_never_on_the_command_line(docker):
    seed = manifest(docker.command("${DB_HOST} ${UNSET} last"), settings=SETTINGS)
    configuration = {"settings": {"DB_HOST": "db.example", "DB_PASS": SECRET, "UNDECLARED": "x"}, "mounts": {}}
    recorded = run(seed, {}, configuration=configuration)
    assert recorded.fetched == ["seed-configuration"]
    seen = printed(recorded)
    # A setting the configuration leaves out is unset, and empty in the command (its lone word left out).
    assert seen["argv"] == ["db.example", "last"]
    assert seen["env"]["DB_HOST"] == "db.example" and seen["env"]["DB_PASS"] == SECRET
    assert "UNSET" not in seen["env"] and "UNDECLARED" not in seen["env"]
    call = docker.created()
    assert SECRET not in json.dumps(call) and "db.example" in call  # only through the command
    environment_file = recorded.scratch_dir / "seed" / "environment"
    assert call[call.index("--env-file") + 1] == str(environment_file)
    assert not environment_file.exists()  # removed after the run (the fake refuses one others may read)


def test_a_job_type_without_settings_or_mounts_asks_for_no_configuration(docker):
    recorded = run(manifest(docker.command("x")), {})
    assert recorded.fetched == [] and "--env-file" not in docker.created()


def test_a_secret_setting_in_the_command_fails_the_job(docker):
    seed = manifest(docker.command("${DB_PASS}"), settings=SETTINGS)
    with pytest.raises(ExecutionError) as refused:
        run(seed, {}, configuration={"settings": {"DB_PASS": SECRET}})
    assert str(refused.value) == ("the manifest's command names the secret setting ${DB_PASS}: its value would "
                                  "be visible on the command line; the container reads it from its environment")
    assert docker.calls() == []
    with pytest.raises(ExecutionError, match=re.escape(str(refused.value))):
        SeedExecutor.check_job({"seed_image": IMAGE, "seed_manifest": seed}, {"input": {}})


def test_a_setting_value_an_environment_cannot_hold_fails_naming_the_setting_only(docker):
    seed = manifest(docker.command("x"), settings=SETTINGS)
    with pytest.raises(ExecutionError) as refused:
        run(seed, {}, configuration={"settings": {"DB_PASS": "two\nlines"}})
    assert str(refused.value) == "setting 'DB_PASS': a value with a line break or a NUL cannot be passed"
    assert docker.calls() == []


def test_the_configuration_refused_by_the_server_fails_the_job(docker):
    with pytest.raises(ExecutionError) as refused:
        run(manifest(docker.command("x"), settings=SETTINGS), {})
    assert str(refused.value) == ("cannot fetch the job type's configuration: GET /v1/jobs/7/seed-configuration: "
                                  "404")


MOUNTS = [{"name": "REF", "path": "/ref"}, {"name": "SCRATCH", "path": "/scratch", "mode": "rw"},
          {"name": "VOL", "path": "/vol", "mode": "ro"}]


def test_mounts_are_mounted_as_configured(docker, tmp_path):
    reference, scratch = tmp_path / "reference", tmp_path / "scratch"
    reference.mkdir()
    scratch.mkdir()
    (reference / "data.txt").write_text("reference data")
    docker.job("open(os.path.join(sys.argv[2], 'copy'), 'w').write(open(sys.argv[1]).read())")
    configuration = {"settings": {}, "mounts": {
        "REF": {"type": "host", "host_path": str(reference)}, "SCRATCH": {"type": "host", "host_path": str(scratch)},
        "VOL": {"type": "volume", "driver": "local", "driver_opts": {"type": "nfs", "o": "addr=10.0.0.1,rw"}}}}
    run(manifest(docker.command("/ref/data.txt /scratch"), mounts=MOUNTS), {}, configuration=configuration)
    assert (scratch / "copy").read_text() == "reference data"
    call = docker.created()
    options = call[call.index("-e"):call.index(IMAGE)]
    assert options[2:] == ["-v", f"{reference}:/ref:ro", "-v", f"{scratch}:/scratch:rw", "--mount",
                           'type=volume,target=/vol,readonly,volume-driver=local,volume-opt=type=nfs,'
                           '"volume-opt=o=addr=10.0.0.1,rw"']


def test_a_host_mount_outside_the_workers_host_paths_fails_before_it_runs(docker, tmp_path, monkeypatch):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    (allowed / "models").mkdir(parents=True)
    other.mkdir()
    (allowed / "escape").symlink_to(other)
    monkeypatch.setenv("UFDL_SEED_HOST_PATHS", f"/nonexistent:{allowed}")
    seed = manifest(docker.command("/ref"), mounts=[{"name": "REF", "path": "/ref"}])
    for host_path in (other, allowed / ".." / "other", allowed / "escape", "/", tmp_path / "allowed-not"):
        with pytest.raises(ExecutionError) as refused:
            run(seed, {}, configuration={"mounts": {"REF": {"type": "host", "host_path": str(host_path)}}})
        assert str(refused.value) == (f"the manifest's mount 'REF': the host path {str(host_path)!r} is not "
                                      f"within the worker's UFDL_SEED_HOST_PATHS (/nonexistent:{allowed})")
    assert docker.calls() == []
    recorded = run(seed, {}, configuration={"mounts": {"REF": {"type": "host", "host_path": str(allowed / "models")}}})
    assert printed(recorded)["argv"] == [str(allowed / "models")]  # the fake maps /ref back to the host's


@pytest.mark.parametrize("path", ["/seed/outputs", "/seed", "/seed/inputs/extra", "/models/../seed", "/"])
def test_a_mount_over_the_executors_own_folders_fails_before_it_runs(docker, tmp_path, path):
    """Over /seed docker made /seed/inputs and /seed/outputs in the mounted host folder (or failed on a read-only
    one); over /seed/outputs it refused a duplicate; under either it made a mount point in our folders."""
    seed = manifest(docker.command(), mounts=[{"name": "SHARED", "path": path, "mode": "rw"}])
    configuration = {"mounts": {"SHARED": {"type": "host", "host_path": str(tmp_path)}}}
    with pytest.raises(ExecutionError) as refused:
        run(seed, {}, configuration=configuration)
    assert str(refused.value) == (f"the manifest's mount 'SHARED': its path {path!r} overlaps the executor's own "
                                  f"/seed (/seed/inputs, /seed/outputs)")
    assert docker.calls() == []


@pytest.mark.parametrize("mounts, message", [
    ({"REF": {"type": "host", "host_path": "/r"}, "SCRATCH": {"type": "host", "host_path": "/s"}},
     "the manifest's mount 'VOL' (/vol) is not configured: the job type's configuration gives no mounts.VOL"),
    ({"REF": {"type": "host", "host_path": "relative/path"}},
     "the manifest's mount 'REF': the host path 'relative/path' is not an absolute path without ':'"),
    ({"REF": {"type": "host", "host_path": "/a:b"}},
     "the manifest's mount 'REF': the host path '/a:b' is not an absolute path without ':'"),
    ({"REF": {"type": "tmpfs"}},
     "the manifest's mount 'REF': its configuration's type 'tmpfs' is neither host nor volume"),
    ({"REF": {"type": "volume", "driver_opts": {"o=uid": "0"}}},  # docker read volume-opt=o=uid=0 as o
     "the manifest's mount 'REF': the volume driver option 'o=uid' is not a name without '=' with a string value"),
    ({"REF": {"type": "volume", "driver_opts": {"size": 5}}},
     "the manifest's mount 'REF': the volume driver option 'size' is not a name without '=' with a string value"),
])
def test_mounts_missing_or_unusable_fail_the_job_before_it_runs(docker, mounts, message):
    seed = manifest(docker.command("x"), {"files": [{"name": "F"}]}, mounts=MOUNTS)
    recorded = context(seed, {"F": 3}, {3: b"x"}, configuration={"mounts": mounts})
    with pytest.raises(ExecutionError) as refused:
        SeedExecutor().execute(recorded)
    assert str(refused.value) == message
    assert docker.calls() == [] and not (recorded.scratch_dir / "seed").exists()  # nothing downloaded either


ERRORS = [{"code": 3, "name": "data-issue", "category": "data", "title": "Data issue",
           "description": "There was a problem with input data"},
          {"code": 4, "name": "bare"}]


@pytest.mark.parametrize("code, message, category", [
    (3, f"{IMAGE} exited with status 3, the manifest's error data-issue (data): There was a problem with input "
        f"data: it broke", "DATA"),
    (4, f"{IMAGE} exited with status 4, the manifest's error bare (job): it broke", "ALGORITHM"),
    (5, f"{IMAGE} exited with status 5: it broke", None),  # named by no error: the worker's default
])
def test_an_exit_status_fails_the_job_naming_the_manifests_error(docker, code, message, category):
    docker.job("print('it broke', file=sys.stderr)", exit=code)
    seed = manifest(docker.command(), outputs={"files": [{"name": "OUT", "pattern": "*"}]}, errors=ERRORS)
    recorded = context(seed, {})
    with pytest.raises(ExecutionError) as failed:
        SeedExecutor().execute(recorded)
    assert str(failed.value) == message and failed.value.category == category
    assert set(recorded.outputs) == {("stdout", "BLOB"), ("stderr", "BLOB")}  # the logs, and no output


def test_a_failure_reads_the_tail_of_standard_error_alone(tmp_path):
    """The kept standard error may be UFDL_SEED_MAX_LOG_SIZE (64 MiB) long: it was read whole for its tail."""
    import tracemalloc

    from ufdl_seed.interface import SeedInterface

    stderr = tmp_path / "stderr"
    with open(stderr, "wb") as file:
        file.truncate(32 << 20)
        file.seek(0, 2)
        file.write(b"x" * 3000 + b"the last words\n")
    interface = SeedInterface.from_parameters({"seed_image": IMAGE, "seed_manifest": manifest("true")})
    tracemalloc.start()
    try:
        message = SeedExecutor.failure(interface, 1, stderr)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == f"{IMAGE} exited with status 1: " + "x" * 1985 + "the last words"
    assert peak < 1 << 20


def test_a_command_the_container_cannot_find_fails(docker):
    with pytest.raises(ExecutionError, match=f"^{re.escape(IMAGE)} exited with status 127: fake docker: cannot run"):
        run(manifest("no-such-program-xyz"), {})


def test_no_docker_client_fails_clearly(docker, monkeypatch, tmp_path):
    monkeypatch.setenv("UFDL_SEED_DOCKER", str(tmp_path / "nowhere" / "docker"))
    with pytest.raises(ExecutionError, match=r"^cannot run '.*/nowhere/docker': No such file or directory$"):
        run(manifest("true"), {})


def test_an_unreadable_log_size_setting_fails_before_docker_runs(docker, monkeypatch):
    monkeypatch.setenv("UFDL_SEED_MAX_LOG_SIZE", "64M")
    with pytest.raises(ExecutionError, match="^UFDL_SEED_MAX_LOG_SIZE must be a number of bytes, not '64M'$"):
        run(manifest(docker.command()), {})
    assert docker.calls() == []


@pytest.mark.parametrize("job, outputs, message", [
    ("", {"files": [{"name": "OUT", "pattern": "*.txt"}]},
     "the required output 'OUT' is missing: no file matches '*.txt' in OUTPUT_DIR"),
    ("open(out + '/a.txt', 'w'); open(out + '/b.txt', 'w')", {"files": [{"name": "OUT", "pattern": "*.txt"}]},
     "output 'OUT' is one file, and 2 match '*.txt': a.txt, b.txt"),
    ("", {"json": [{"name": "count", "type": "integer"}]},
     "the required output 'count' is missing: there is no seed.outputs.json in OUTPUT_DIR"),
    ("open(out + '/seed.outputs.json', 'w').write('{}')", {"json": [{"name": "count", "type": "integer"}]},
     "the required output 'count' is missing: seed.outputs.json has no 'count'"),
    ("open(out + '/seed.outputs.json', 'w').write('{\"n\": \"7\"}')",
     {"json": [{"name": "count", "key": "n", "type": "integer"}]},
     "output 'count': seed.outputs.json's 'n' must be of JSON type integer, not string"),
    ("open(out + '/seed.outputs.json', 'w').write('[1]')", {"json": [{"name": "count", "type": "integer"}]},
     "seed.outputs.json must hold a JSON object"),
    ("os.symlink('/etc/hostname', out + '/a.txt')", {"files": [{"name": "OUT", "pattern": "*.txt"}]},
     "output 'OUT': 'a.txt' is outside the output directory"),
    ("", {"files": [{"name": "OUT", "pattern": "../std*"}]},
     "output 'OUT': '../stderr' is outside the output directory"),
    # What a run leaves is read in bounds: each file of a multiple output is an output on the server, and
    # seed.outputs.json is parsed in memory; a loop of links is no file.
    ("[open(f'{out}/p{i}.txt', 'w') for i in range(1001)]",
     {"files": [{"name": "PARTS", "pattern": "*.txt", "multiple": True}]},
     "output 'PARTS': more than 1000 paths match '*.txt'"),
    ("open(out + '/seed.outputs.json', 'w').write('{\"count\": 1, \"pad\": \"' + 'x' * 2**24 + '\"}')",
     {"json": [{"name": "count", "type": "integer"}]}, "seed.outputs.json is larger than 16 MiB"),
    ("os.symlink('a.txt', out + '/a.txt')", {"files": [{"name": "OUT", "pattern": "*.txt"}]},
     "output 'OUT': 'a.txt' is a link that leads nowhere"),
])
def test_missing_or_bad_outputs_fail_the_job_and_none_is_kept(docker, job, outputs, message):
    docker.job(job)
    recorded = context(manifest(docker.command(), outputs=outputs), {})
    with pytest.raises(ExecutionError) as failed:
        SeedExecutor().execute(recorded)
    assert str(failed.value) == message
    assert set(recorded.outputs) <= {("stdout", "BLOB")}


def test_optional_outputs_may_be_missing(docker):
    docker.job("open(out + '/seed.outputs.json', 'w').write('{\"b\": null}')")
    recorded = run(manifest(docker.command(), outputs={
        "files": [{"name": "OUT", "pattern": "*.txt", "required": False}],
        "json": [{"name": "a", "type": "integer", "required": False}, {"name": "b", "type": "null"}]}), {})
    assert json.loads(recorded.outputs[("output", "JSON")]) == {"b": None}
    assert ("OUT", "BLOB") not in recorded.outputs and ("a", "JSON") not in recorded.outputs


def test_an_output_named_as_the_executors_own_is_refused_before_running(docker):
    with pytest.raises(ExecutionError, match="^the manifest's output 'stderr' cannot be kept"):
        run(manifest(docker.command(), outputs={"files": [{"name": "stderr", "pattern": "*"}]}), {})
    with pytest.raises(ExecutionError, match="^the manifest's output 'output' cannot be kept"):
        run(manifest(docker.command(), outputs={"json": [{"name": "output", "type": "string"}]}), {})
    assert docker.calls() == []


def test_outputs_carry_their_media_types(docker):
    """A file output's Content-Type is its manifest's mediaType, else what its file name tells (else the
    worker's default); JSON values are application/json, the container's logs text/plain."""
    docker.job("for name in ('a.bin', 'b.csv', 'c.tar.gz', 'parts/x.json', 'parts/y'):\n"
               "    os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)\n"
               "    open(os.path.join(out, name), 'w').write('1')\n"
               "open(out + '/seed.outputs.json', 'w').write('{\"n\": 1}')\n"
               "print('oops', file=sys.stderr)")
    recorded = run(manifest(docker.command(), outputs={
        "files": [{"name": "A", "pattern": "a.bin", "mediaType": "image/png"}, {"name": "B", "pattern": "b.csv"},
                  {"name": "C", "pattern": "c.tar.gz"},
                  {"name": "PARTS", "pattern": "parts/*", "multiple": True}],
        "json": [{"name": "n", "type": "integer"}]}), {})
    assert recorded.content_types == {
        ("A", "BLOB"): "image/png", ("B", "BLOB"): "text/csv", ("C", "BLOB"): "application/gzip",
        ("PARTS:parts:x.json", "BLOB"): "application/json", ("PARTS:parts:y", "BLOB"): "application/data",
        ("n", "JSON"): "application/json", ("output", "JSON"): "application/json",
        ("stdout", "BLOB"): "text/plain", ("stderr", "BLOB"): "text/plain"}


@pytest.mark.parametrize("media_type", ["text/plain\r\nX-Injected: 1", 5, ""])
def test_a_media_type_the_server_would_not_keep_fails_before_running(docker, media_type):
    seed = manifest(docker.command(), outputs={"files": [{"name": "OUT", "pattern": "*", "mediaType": media_type}]})
    with pytest.raises(ExecutionError, match="^the manifest's output 'OUT' has an unusable mediaType: "):
        run(seed, {})
    with pytest.raises(ExecutionError, match="unusable mediaType"):
        SeedExecutor.check_job({"seed_image": IMAGE, "seed_manifest": seed}, {"input": {}})
    assert docker.calls() == []


def test_the_manifests_timeout_stops_the_container(docker):
    docker.job("print('started', flush=True); time.sleep(30); print('fin' + 'ished')")
    recorded = context(manifest(docker.command(), timeout=1), {})
    with pytest.raises(ExecutionError) as failed:
        SeedExecutor().execute(recorded)
    assert str(failed.value) == f"{IMAGE} timed out after 1 s (the manifest's timeout) and was stopped"
    assert set(recorded.outputs) == {("stdout", "BLOB")}
    assert recorded.outputs[("stdout", "BLOB")].endswith(b"started\n")  # stopped: it never finished
    # The client killed, and the container (which the daemon would run on) removed by its name.
    name = docker.created()[6]
    assert docker.calls()[-2:] == [["start", "--attach", name], ["rm", "-f", "-v", name]]
    assert docker.containers() == []


def test_cancellation_stops_the_container(docker):
    docker.job("time.sleep(30); print('fin' + 'ished')")  # the word alone: the program prints its own code
    recorded = context(manifest(docker.command()), {})
    threading.Timer(0.5, recorded.cancel).start()
    with pytest.raises(JobCancelled):
        SeedExecutor().execute(recorded)
    assert b"finished" not in recorded.outputs.get(("stdout", "BLOB"), b"")  # stopped, not waited for
    name = docker.created()[6]
    assert docker.calls()[-2:] == [["start", "--attach", name], ["rm", "-f", "-v", name]]
    assert docker.containers() == []


def test_a_missing_image_is_pulled_and_a_timeout_during_the_pull_creates_no_container(docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_PULL_SECONDS", "30")
    recorded = context(manifest(docker.command(), timeout=1), {})
    with pytest.raises(ExecutionError, match="timed out after 1 s"):
        SeedExecutor().execute(recorded)
    # Killing a pull leaves no container: nothing was asked to create one.
    assert docker.calls() == [["image", "inspect", IMAGE], ["pull", IMAGE]]
    monkeypatch.setenv("FAKE_DOCKER_PULL_SECONDS", "0")
    recorded = run(manifest(docker.command("x")), {})
    assert printed(recorded)["argv"] == ["x"]
    assert [call[0] for call in docker.calls()[2:]] == ["image", "pull", "create", "start", "inspect", "rm"]


def test_a_job_cancelled_before_it_runs_runs_nothing(docker):
    recorded = context(manifest(docker.command()), {})
    recorded.cancel()
    with pytest.raises(JobCancelled):
        SeedExecutor().execute(recorded)
    assert docker.calls() == []


def test_resources_are_allocated_variables_and_cpus_mem_shared_mem_and_gpus_given_by_docker(docker):
    resources = {"scalar": [{"name": "cpus", "value": 1.5}, {"name": "mem", "value": 244, "inputMultiplier": 2},
                            {"name": "disk", "value": 11}, {"name": "gpus", "value": 1},
                            {"name": "sharedMem", "value": 127.5}, {"name": "my-thing", "value": 0.25}]}
    seed = manifest(docker.command("${ALLOCATED_CPUS} ${ALLOCATED_MEM}"), {"files": [{"name": "F"}]})
    seed["job"]["resources"] = resources
    recorded = run(seed, {"F": 3}, {3: b"x" * 2**20})  # 1 MiB of input: mem is 244 + 2 * 1
    seen = printed(recorded)
    assert seen["argv"] == ["1.5", "246"]
    assert {name: value for name, value in seen["env"].items() if name.startswith("ALLOCATED_")} == {
        "ALLOCATED_CPUS": "1.5", "ALLOCATED_MEM": "246", "ALLOCATED_DISK": "11", "ALLOCATED_GPUS": "1",
        "ALLOCATED_SHAREDMEM": "127.5", "ALLOCATED_MY_THING": "0.25"}
    call = docker.created()
    assert call[call.index("--cpus"):call.index(IMAGE)] == [
        "--cpus", "1.5", "--memory", "246m", "--shm-size", "128m", "--gpus", "1"]


def test_a_tiny_memory_ask_gets_dockers_least(docker):
    seed = manifest(docker.command("x"))
    seed["job"]["resources"] = {"scalar": [{"name": "mem", "value": 0.5}]}
    run(seed, {})
    call = docker.created()
    assert call[call.index("--memory") + 1] == "6m" and "--cpus" not in call


SPEC = Path(__file__).parents[3] / "tests" / "functional" / "seed_manifests" / "spec_add_seed_image.json"


def test_the_spec_example_manifest_runs(docker, tmp_path):
    """Scale's "Add Seed Image" example (its interface and configuration, with a command that runs here)."""
    seed = json.loads(SPEC.read_text())["manifest"]
    seed["job"]["interface"]["command"] = docker.command("${INPUT_TEXT} ${READ_LENGTH} ${OUTPUT_DIR}")
    docker.job("""
text = open(sys.argv[1], "rb").read()[:int(sys.argv[2])]
open(os.path.join(out, "output_text.txt"), "wb").write(text)
json.dump({"TOTAL_INPUT": len(text)}, open(os.path.join(out, "seed.outputs.json"), "w"))
""")
    configuration = json.loads(SPEC.read_text())["configuration"]
    configuration["mounts"]["MOUNT_PATH"]["host_path"] = str(tmp_path)
    recorded = run(seed, {"INPUT_TEXT": 5, "READ_LENGTH": 4}, {5: b"abcdefgh"}, configuration=configuration)
    assert recorded.outputs[("OUTPUT_TEXT", "BLOB")] == b"abcd"
    assert {name: printed(recorded)["env"][name] for name in ("DB_HOST", "DB_PASS", "ALLOCATED_DISK")} == {
        "DB_HOST": "som.host.name", "DB_PASS": "secret_password", "ALLOCATED_DISK": str(11 + 4 * 8 / 2**20)}
    assert json.loads(recorded.outputs[("output", "JSON")]) == {"total_input": 4}


@pytest.mark.parametrize(("user", "option"), [
    ("", None), ("worker", f"{os.getuid()}:{os.getgid()}"), ("1000:1000", "1000:1000"), ("seed", "seed")])
def test_the_workers_seed_user_runs_the_container(docker, monkeypatch, user, option):
    monkeypatch.setenv("UFDL_SEED_USER", user)
    run(manifest(docker.command("x")), {})
    call = docker.created()
    assert (call[call.index("--user") + 1] if "--user" in call else None) == option


@pytest.mark.parametrize(("network", "option"), [("", None), ("none", "none"), ("ufdl-jobs.v2", "ufdl-jobs.v2")])
def test_the_workers_seed_network_is_the_containers(docker, monkeypatch, network, option):
    monkeypatch.setenv("UFDL_SEED_NETWORK", network)
    run(manifest(docker.command("x")), {})
    call = docker.created()
    assert (call[call.index("--network") + 1] if "--network" in call else None) == option


@pytest.mark.parametrize("network", ["--privileged", "container:other", "a b", "-x", "x" * 129])
def test_a_seed_network_docker_could_misread_fails_the_job_before_it_runs(docker, monkeypatch, network):
    monkeypatch.setenv("UFDL_SEED_NETWORK", network)
    with pytest.raises(ExecutionError, match="^the worker's UFDL_SEED_NETWORK must be 'none' or a docker network"):
        run(manifest(docker.command("x")), {})
    assert docker.calls() == []


@pytest.mark.parametrize("user", ["--privileged", "a b", "root:", ":0", "x" * 65])
def test_a_seed_user_docker_could_misread_fails_the_job_before_it_runs(docker, monkeypatch, user):
    monkeypatch.setenv("UFDL_SEED_USER", user)
    with pytest.raises(ExecutionError, match="^the worker's UFDL_SEED_USER must be 'worker', USER or USER:GROUP"):
        run(manifest(docker.command("x")), {})
    assert docker.calls() == []
