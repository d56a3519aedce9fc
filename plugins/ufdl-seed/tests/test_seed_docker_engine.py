"""The Seed executor against a real Docker engine: the image is a busybox root file system imported on the spot
(``docker import``: no registry needed), so that mounts, variables, settings, limits, exit codes, timeouts and
cancellation are docker's own, not the fake client's. Skipped when no engine answers (``.ci/run`` starts one
where it can)."""
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
import uuid

import pytest

from ufdl_pyramid.executors import ExecutionError, JobCancelled, RecordingContext
from ufdl_seed import SeedExecutor

# A tag of its own per run: test runs side by side share the engine, and each removes its image at the end.
IMAGE = f"ufdl-test/seed-busybox:{uuid.uuid4().hex[:12]}"
TOOLS = ("sh", "cat", "wc", "tr", "echo", "sleep", "printf", "touch", "id", "df")


def _engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


pytestmark = pytest.mark.skipif(not _engine_answers(), reason="no Docker engine answers `docker info`")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A minimal image: a static busybox and links to the tools the manifests below use."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("no busybox to build the test image from (Debian's busybox-static)")
    tar_path = tmp_path_factory.mktemp("image") / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tar:
        _add_busybox(tar)
    subprocess.run(["docker", "import", str(tar_path), IMAGE], check=True, capture_output=True, timeout=120)
    ran = subprocess.run(["docker", "run", "--rm", IMAGE, "sh", "-c", "exit 0"], capture_output=True, timeout=120)
    if ran.returncode:
        pytest.skip(f"{busybox} does not run alone in a container: a static busybox is needed (busybox-static)")
    yield IMAGE
    subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def slow_image(image, tmp_path_factory):
    """The image with 10 000 small files more, and how long the engine takes to create a container of it: with
    the vfs storage driver (the CI's) it copies the image's files for each container, long enough (a second or
    so) for a stop to land while the container is being made. (With overlay2 the create is quick: the tests
    below then stop the run later.)"""
    name = f"{IMAGE}-slow"
    tar_path = tmp_path_factory.mktemp("slow") / "slow.tar"
    with tarfile.open(tar_path, "w") as tar:
        _add_busybox(tar)
        for index in range(10_000):
            ballast = tarfile.TarInfo(f"ballast/{index // 1000}/{index}")
            ballast.size = 100
            tar.addfile(ballast, io.BytesIO(b"x" * 100))
    subprocess.run(["docker", "import", str(tar_path), name], check=True, capture_output=True, timeout=600)
    began = time.monotonic()
    probe = f"ufdl-seed-probe-{uuid.uuid4().hex[:12]}"
    subprocess.run(["docker", "create", "--name", probe, name, "true"], check=True, capture_output=True, timeout=600)
    create_seconds = time.monotonic() - began
    subprocess.run(["docker", "rm", "-f", probe], capture_output=True, timeout=120)
    yield name, create_seconds
    subprocess.run(["docker", "rmi", "-f", name], capture_output=True, timeout=120)


def settled_containers_of(recorded: RecordingContext, create_seconds: float) -> str:
    """containers_of, once a create the executor's client was killed in the middle of has had the time to end
    (the daemon goes on with it): twice what one takes, and a second."""
    time.sleep(2 * create_seconds + 1)
    return containers_of(recorded)


def _add_busybox(tar: tarfile.TarFile) -> None:
    folder = tarfile.TarInfo("bin")  # searchable by any user (a container may run as one: UFDL_SEED_USER)
    folder.type, folder.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(folder)
    tar.add(shutil.which("busybox"), "bin/busybox")
    for tool in TOOLS:
        link = tarfile.TarInfo(f"bin/{tool}")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    folder = tarfile.TarInfo("tmp")
    folder.type, folder.mode = tarfile.DIRTYPE, 0o1777
    tar.addfile(folder)


def manifest(command: str, inputs: dict | None = None, outputs: dict | None = None, errors: list | None = None,
             timeout: float = 60) -> dict:
    job = {"name": "engine-test", "jobVersion": "1.0.0", "packageVersion": "1.0.0", "title": "Engine test",
           "description": "A Seed job run by a real Docker engine", "timeout": timeout,
           "maintainer": {"name": "Jo", "email": "jo@example.com"},
           "interface": {"command": command, "inputs": inputs or {}, "outputs": outputs or {}}}
    if errors is not None:
        job["errors"] = errors
    return {"seedVersion": "1.0.0", "job": job}


def context(image: str, seed: dict, given: dict, downloads: dict | None = None) -> RecordingContext:
    # A pk of its own per test: the container's name is made from it (and a random part).
    return RecordingContext({"input": given}, {"seed_image": image, "seed_manifest": seed},
                            job={"pk": uuid.uuid4().int % 10**9}, downloads=downloads)


def containers_of(recorded: RecordingContext) -> str:
    """The names of the containers, running or not, that this job's run left."""
    return subprocess.run(["docker", "ps", "-a", "--filter", f"name=ufdl-seed-job-{recorded.job['pk']}-",
                           "--format", "{{.Names}}"], capture_output=True, text=True, timeout=30).stdout.strip()


def cancelled_once_up(recorded: RecordingContext, look) -> list:
    """Runs the job, cancelled once its container is up (within a minute), and answers what ``look`` saw of it
    then (given the container's name), in a list: empty if it never came up."""
    seen = []

    def cancel_once_up():
        for _ in range(600):
            names = containers_of(recorded)
            if names:
                seen.append(look(names))
                break
            time.sleep(0.1)
        recorded.cancel()

    canceller = threading.Thread(target=cancel_once_up)
    canceller.start()
    with pytest.raises(JobCancelled):
        SeedExecutor().execute(recorded)
    canceller.join()
    return seen


def test_inputs_mounted_variables_set_and_outputs_collected(image):
    seed = manifest(
        "sh -c 'tr a-z A-Z < ${TEXT} > ${OUTPUT_DIR}/upper.txt; "
        "printf \"{\\\"LENGTH\\\": %s}\" $(wc -c < ${TEXT}) > ${OUTPUT_DIR}/seed.outputs.json; echo $LABEL; "
        "echo $TEXT'",
        {"files": [{"name": "TEXT"}], "json": [{"name": "LABEL", "type": "string"}]},
        {"files": [{"name": "UPPER", "pattern": "upper.txt"}],
         "json": [{"name": "length", "key": "LENGTH", "type": "integer"}]})
    recorded = context(image, seed, {"TEXT": 5, "LABEL": "two words"}, {5: ("hello.txt", b"hello engine\n")})
    SeedExecutor().execute(recorded)
    assert recorded.outputs[("UPPER", "BLOB")] == b"HELLO ENGINE\n"
    assert json.loads(recorded.outputs[("length", "JSON")]) == 13
    assert json.loads(recorded.outputs[("output", "JSON")]) == {"length": 13}
    # The input under the file name its download offered.
    assert recorded.outputs[("stdout", "BLOB")] == b"two words\n/seed/inputs/TEXT/5/hello.txt\n"
    assert containers_of(recorded) == ""  # --rm


def test_a_multiple_input_is_a_folder_of_a_folder_per_pk(image):
    """Each with its file, named as its download offered (else by its pk)."""
    seed = manifest("sh -c 'for file in ${PARTS}/*/*; do echo $file: $(cat $file); done'",
                    {"files": [{"name": "PARTS", "multiple": True}]})
    recorded = context(image, seed, {"PARTS": [3, 4]}, {3: ("a.png", b"three"), 4: b"four"})
    SeedExecutor().execute(recorded)
    assert recorded.outputs[("stdout", "BLOB")] == b"/seed/inputs/PARTS/3/a.png: three\n/seed/inputs/PARTS/4/4: four\n"


def test_the_inputs_are_read_only_in_the_container(image):
    seed = manifest("sh -c 'touch ${TEXT} && echo wrote'", {"files": [{"name": "TEXT"}]})
    recorded = context(image, seed, {"TEXT": 5}, {5: b"keep me"})
    with pytest.raises(ExecutionError, match="exited with status 1") as failed:
        SeedExecutor().execute(recorded)
    assert "Read-only file system" in str(failed.value)
    assert ("stdout", "BLOB") not in recorded.outputs


def test_an_exit_code_is_named_by_the_manifest(image):
    seed = manifest("sh -c 'echo bad input >&2; exit 3'",
                    errors=[{"code": 3, "name": "bad-input", "category": "data", "description": "Unreadable"}])
    recorded = context(image, seed, {})
    with pytest.raises(ExecutionError) as failed:
        SeedExecutor().execute(recorded)
    assert str(failed.value) == (f"{image} exited with status 3, the manifest's error bad-input (data): "
                                 "Unreadable: bad input")
    assert failed.value.category == "DATA"  # the job's error_category, as the manifest's error says
    assert recorded.outputs[("stderr", "BLOB")] == b"bad input\n"


def test_the_manifests_timeout_stops_and_removes_the_container(image):
    recorded = context(image, manifest("sleep 600", timeout=1), {})
    with pytest.raises(ExecutionError, match="timed out after 1 s"):
        SeedExecutor().execute(recorded)
    assert containers_of(recorded) == ""  # killing the client alone would have left it running


def test_a_cancelled_job_stops_and_removes_its_container(image):
    recorded = context(image, manifest("sleep 600"), {})
    seen = cancelled_once_up(recorded, lambda names: names)
    assert seen and containers_of(recorded) == ""


def test_settings_mounts_and_resources_reach_the_container(image, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "model.txt").write_text("weights\n")
    seed = manifest("sh -c 'echo $GREETING $TOKEN $ALLOCATED_CPUS $ALLOCATED_MEM; cat /models/model.txt; "
                    "echo kept > /scratch/f && cat /scratch/f; touch /models/x || echo models read-only; "
                    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; "
                    "exit 0'")
    seed["job"]["interface"]["settings"] = [{"name": "GREETING"}, {"name": "TOKEN", "secret": True}]
    seed["job"]["interface"]["mounts"] = [{"name": "MODELS", "path": "/models", "mode": "ro"},
                                          {"name": "SCRATCH", "path": "/scratch", "mode": "rw"}]
    seed["job"]["resources"] = {"scalar": [{"name": "cpus", "value": 0.5}, {"name": "mem", "value": 64}]}
    configuration = {"settings": {"GREETING": "hello there", "TOKEN": "s3cret"},
                     "mounts": {"MODELS": {"type": "host", "host_path": str(shared)},
                                "SCRATCH": {"type": "volume"}}}
    recorded = RecordingContext({"input": {}}, {"seed_image": image, "seed_manifest": seed},
                                job={"pk": uuid.uuid4().int % 10**9}, fetchable={"seed-configuration": configuration})
    SeedExecutor().execute(recorded)
    assert recorded.outputs[("stdout", "BLOB")].decode().splitlines() == [
        "hello there s3cret 0.5 64", "weights", "kept", "models read-only", str(64 * 2**20)]
    assert not (shared / "x").exists()
    assert not (recorded.scratch_dir / "seed" / "environment").exists()  # the setting values went with the run


def test_a_timeout_while_the_container_is_created_leaves_no_container(slow_image):
    """Killing the client while the daemon makes the container (the old ``docker run``) left it Created for
    ever: ``rm -f`` came before it existed."""
    name, create_seconds = slow_image
    recorded = context(name, manifest("sleep 600", timeout=max(create_seconds / 4, 0.2)), {})
    with pytest.raises(ExecutionError, match="timed out after"):
        SeedExecutor().execute(recorded)
    assert settled_containers_of(recorded, create_seconds) == ""


def test_a_cancellation_while_the_container_is_created_leaves_no_container(slow_image):
    name, create_seconds = slow_image
    recorded = context(name, manifest("sleep 600"), {})
    threading.Timer(max(create_seconds / 4, 0.2), recorded.cancel).start()
    with pytest.raises(JobCancelled):
        SeedExecutor().execute(recorded)
    assert settled_containers_of(recorded, create_seconds) == ""


def test_the_least_cpus_and_memory_a_manifest_asks_for_start_a_container(image):
    """0.001 CPUs made a CPU quota the kernel refuses: the container failed to start."""
    seed = manifest("sh -c 'echo started'")
    seed["job"]["resources"] = {"scalar": [{"name": "cpus", "value": 0.001}, {"name": "mem", "value": 1}]}
    recorded = context(image, seed, {})
    SeedExecutor().execute(recorded)
    assert recorded.outputs[("stdout", "BLOB")] == b"started\n"


def test_shared_memory_is_the_size_of_dev_shm(image):
    """Docker gives a container 64 MiB of /dev/shm unless told otherwise: a manifest's sharedMem is that size."""
    seed = manifest("df -k /dev/shm")
    seed["job"]["resources"] = {"scalar": [{"name": "sharedMem", "value": 96}]}
    recorded = context(image, seed, {})
    SeedExecutor().execute(recorded)
    assert recorded.outputs[("stdout", "BLOB")].decode().splitlines()[1].split()[1] == str(96 * 1024)


def test_the_workers_seed_user_runs_the_container_and_owns_its_outputs(image, monkeypatch):
    """The image's user (root here) owns what it writes in the scratch directory: a worker running as another
    user could not remove it."""
    monkeypatch.setenv("UFDL_SEED_USER", "4321:4321")
    seed = manifest("sh -c 'id -u; echo kept > $OUTPUT_DIR/kept.txt'",
                    outputs={"files": [{"name": "KEPT", "pattern": "kept.txt"}]})
    recorded = context(image, seed, {})
    SeedExecutor().execute(recorded)
    assert recorded.outputs[("stdout", "BLOB")] == b"4321\n"
    assert recorded.outputs[("KEPT", "BLOB")] == b"kept\n"
    assert (recorded.scratch_dir / "seed" / "outputs" / "kept.txt").stat().st_uid == 4321


def test_the_workers_seed_network_is_the_one_the_container_joins(image, monkeypatch):
    """``none`` leaves the container its loopback only; ``host`` (docker's own) shows it the machine's."""
    def interfaces(network: str) -> list[str]:
        monkeypatch.setenv("UFDL_SEED_NETWORK", network)
        recorded = context(image, manifest("sh -c 'for name in /sys/class/net/*; do echo ${name##*/}; done'"), {})
        SeedExecutor().execute(recorded)
        return recorded.outputs[("stdout", "BLOB")].decode().split()

    assert interfaces("none") == ["lo"]
    assert interfaces("host") == sorted(os.listdir("/sys/class/net"))


def test_a_command_the_container_cannot_find_is_dockers_127_not_an_exit_status_the_manifest_names(image):
    """``docker start`` answers 1 for a container that could not start: the daemon's state says 127."""
    seed = manifest("no-such-command", errors=[{"code": 1, "name": "bad-input", "category": "data"}])
    recorded = context(image, seed, {})
    with pytest.raises(ExecutionError, match=f"^{image} exited with status 127: .*no-such-command") as failed:
        SeedExecutor().execute(recorded)
    assert failed.value.category is None and containers_of(recorded) == ""


def test_a_container_docker_refuses_to_create_is_dockers_125_not_an_exit_status_the_manifest_names(image):
    seed = manifest("sh -c 'exit 0'", errors=[{"code": 1, "name": "bad-input", "category": "data"}])
    seed["job"]["resources"] = {"scalar": [{"name": "cpus", "value": 100000}]}  # more than any machine has
    recorded = context(image, seed, {})
    with pytest.raises(ExecutionError, match=f"^{image} exited with status 125: .*Range of CPUs") as failed:
        SeedExecutor().execute(recorded)
    assert failed.value.category is None and containers_of(recorded) == ""


def test_the_containers_output_kept_is_bounded(image, monkeypatch):
    """The output is kept up to UFDL_SEED_MAX_LOG_SIZE bytes (each stream); the container still runs to its end."""
    monkeypatch.setenv("UFDL_SEED_MAX_LOG_SIZE", "1000")
    seed = manifest("sh -c 'i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done; echo finished >&2'")
    recorded = context(image, seed, {})
    SeedExecutor().execute(recorded)
    expected = "".join(f"line-{index}\n" for index in range(5000)).encode()[:1000]
    assert recorded.outputs[("stdout", "BLOB")] == expected
    assert recorded.outputs[("stderr", "BLOB")] == b"finished\n"


def test_the_daemon_keeps_no_log_of_its_own(image):
    """Its json-file log of an endless output would grow on the daemon's disk as long as the container ran."""
    recorded = context(image, manifest("sleep 600"), {})
    seen = cancelled_once_up(recorded, lambda names: subprocess.run(
        ["docker", "inspect", "--format", "{{.HostConfig.LogConfig.Type}}", names], capture_output=True, text=True,
        timeout=30).stdout.strip())
    assert seen == ["none"]
