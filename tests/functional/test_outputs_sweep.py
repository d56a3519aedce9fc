"""``ufdl outputs sweep``: blobs that no output row refers to (a crash between an upload's rename and its
commit leaves such a blob) are deleted once old enough; every blob an output refers to stays."""
import io
import os
import time

import pytest
import webtest

from ufdl_pyramid.cli import main
from ufdl_pyramid.storage import LocalDirectoryStorage
from ufdl_pyramid.testing import TEST_SETTINGS, ApiClient, make_test_app
from job_helpers import ECHO, register


@pytest.fixture
def storage_path(tmp_path):
    return str(tmp_path / "outputs")


@pytest.fixture
def app(engine, storage_path):
    return make_test_app(engine, **{"ufdl.storage.path": storage_path})


@pytest.fixture
def sweep(tmp_path, engine, storage_path, capsys):
    ini = tmp_path / "test.ini"
    ini.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\n"
                   f"sqlalchemy.url = {engine.url.render_as_string(hide_password=False)}\n"
                   f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\nufdl.storage.path = {storage_path}\n")

    def run(*args) -> tuple[int, str, str]:
        code = main(["-c", str(ini), "outputs", "sweep", *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def age(storage, key: str, seconds: float) -> None:
    path = storage._path_for(key)
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_deletes_old_orphans_only(app, admin, alice, bob, sweep):
    storage = app.registry["ufdl.storage"]

    def client(user: ApiClient) -> ApiClient:
        return ApiClient(webtest.TestApp(app), user.token, user.refresh_token, user.node_id, user.user_id)

    template = client(admin).post("/v1/job-templates/import", ECHO, status=201).json
    worker = register(client(alice))
    jobs = [client(bob).post(f"/v1/job-templates/{template['pk']}/create-job",
                             {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
            for _ in range(2)]
    outputs = []
    for job, data in zip(jobs, (b"kept", b"soft-deleted")):
        worker.get(f"/v1/jobs/{job['pk']}/acquire")
        worker.post(f"/v1/jobs/{job['pk']}/start", {})
        outputs.append(worker.request("POST", f"/v1/jobs/{job['pk']}/outputs/out/BLOB", body=data,
                                      content_type="application/data", status=201).json)
        worker.post(f"/v1/jobs/{job['pk']}/finish", {})
    client(admin).delete(f"/v1/job-outputs/{outputs[1]['pk']}")  # soft-deleted: may be reinstated
    # What a crash between an upload's rename and its commit leaves: a blob without a row.
    orphan = storage.store(io.BytesIO(b"orphan"), max_size=100).key
    recent_orphan = storage.store(io.BytesIO(b"an upload still committing"), max_size=100).key
    referenced = [storage.store(io.BytesIO(data), max_size=100).key for data in (b"kept", b"soft-deleted")]
    for key in [orphan, *referenced]:
        age(storage, key, 7200)

    code, out, err = sweep("--dry-run")
    assert code == 0 and out == "would delete 1 of 3 blob(s) last written over 1h ago: no output refers to them\n"
    assert storage.exists(orphan)

    code, out, err = sweep()
    assert code == 0 and out.startswith("deleted 1 of 3 blob(s)") and "checked 3 blob(s), 1 orphaned" in err
    assert not storage.exists(orphan)
    assert all(storage.exists(key) for key in [recent_orphan, *referenced])
    assert client(bob).get(f"/v1/job-outputs/{outputs[0]['pk']}/download").body == b"kept"

    assert sweep("--older-than", "0s")[1].startswith("deleted 1 of 3 blob(s)")  # the recent one, now
    assert not storage.exists(recent_orphan)
    assert sweep("--older-than", "soon")[0] == 2


@pytest.mark.parametrize("age", ["-1d", "-3600", "inf", "1e300d", "nan"])
def test_an_age_below_0_is_a_usage_error(storage_path, sweep, age):
    """A negative age swept the blobs of the uploads still committing too (every blob is older than a time in
    the future), exit 0; "inf" was a traceback. 0s stays: every orphan, however recent."""
    storage = LocalDirectoryStorage(storage_path)
    recent_orphan = storage.store(io.BytesIO(b"an upload still committing"), max_size=100).key
    for given in ([f"--older-than={age}"], ["--older-than", age]):  # the second was argparse's "expected one argument"
        assert sweep(*given) == (2, "", "ufdl: --older-than must be an age of 0 or above such as 30d, 12h, 15m or 90s, "
                                        f"not {age!r}\n"), given
    assert storage.exists(recent_orphan)


def test_a_storage_that_cannot_be_listed_is_one_line_and_exit_1(sweep, storage_path):
    """The storage's directory turned into a file (ENOTDIR): it was a traceback."""
    with open(storage_path, "w") as file:
        file.write("not a directory")
    code, out, err = sweep()
    assert (code, out) == (1, "")
    assert err == f"ufdl: the output storage cannot be used: [Errno 20] Not a directory: '{storage_path}'\n"


def test_a_storage_directory_that_does_not_exist_is_one_line_and_exit_1(sweep, storage_path):
    """No server ever ran there (a wrong path, or a relative one from another working directory): the sweep
    answered "deleted 0 of 0 blob(s)" and exit 0."""
    assert not os.path.exists(storage_path)
    code, out, err = sweep()
    assert (code, out) == (1, "")
    assert err == (f"ufdl: the output storage cannot be used: no directory '{storage_path}' (ufdl.storage.path; "
                   "the server creates it at its start)\n")


def test_a_blob_that_cannot_be_deleted_is_one_line_and_exit_1(app, sweep, monkeypatch):
    """A read-only disk (no real one here: the tests run as root on a writable one): it was a traceback."""
    import errno

    from ufdl_pyramid.storage import LocalDirectoryStorage

    storage = app.registry["ufdl.storage"]
    orphan = storage.store(io.BytesIO(b"orphan"), max_size=100).key
    age(storage, orphan, 7200)
    path = storage._path_for(orphan)

    def read_only(self, key):
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(LocalDirectoryStorage, "delete", read_only)
    code, out, err = sweep()
    assert (code, out) == (1, "")
    assert err == f"ufdl: the output storage cannot be used: [Errno 30] Read-only file system: '{path}'\n"
    assert storage.exists(orphan)


def test_on_a_terminal_the_running_count_is_ended_before_what_follows(app, sweep, monkeypatch):
    """On a terminal the count is rewritten in place (no newline of its own): the summary or the failure must
    start on a line of its own, a failure before any count adds no empty line, and a failure after a count is
    still one line, not a traceback (the tests' stderr is no terminal: every other test misses this)."""
    import errno
    import sys

    from ufdl_pyramid.storage import LocalDirectoryStorage

    storage = app.registry["ufdl.storage"]
    age(storage, storage.store(io.BytesIO(b"orphan"), max_size=100).key, 7200)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert sweep("--dry-run") == (
        0, "would delete 1 of 1 blob(s) last written over 1h ago: no output refers to them\n",
        "\rchecked 1 blob(s), 1 orphaned\n")

    def failing(after: int):
        def keys(self, *, stored_before):
            yield from (f"{number:064x}" for number in range(after))  # a full batch (100) is counted first
            raise OSError(errno.EIO, "Input/output error")
        return keys

    monkeypatch.setattr(LocalDirectoryStorage, "keys", failing(100))
    assert sweep("--dry-run") == (
        1, "", "\rchecked 100 blob(s), 100 orphaned\nufdl: the output storage cannot be used: [Errno 5] "
               "Input/output error\n")
    monkeypatch.setattr(LocalDirectoryStorage, "keys", failing(0))
    assert sweep("--dry-run") == (1, "", "ufdl: the output storage cannot be used: [Errno 5] Input/output error\n")
