"""The worker's pieces without a server: defaults merged into parameters, back-off, and a worker that waits
for a server that is down and stops cleanly when asked to."""
import threading
import time

from ufdl_pyramid.executors import Executor, RecordingContext, output_bytes
from ufdl_pyramid.worker.api import UfdlApi
from ufdl_pyramid.worker.context import merged_parameters
from ufdl_pyramid.worker.runner import Backoff, Worker, WorkerOptions


def test_parameters_are_the_defaults_overridden_by_the_job():
    every = {"command": {"types": ["str"], "help": ""},
             "timeout": {"types": ["int"], "help": "", "default": {"value": 60, "type": "int"}},
             "top": {"types": ["int"], "default": {"value": 10, "type": "int", "const": False}}}
    job = {"parameter_values": {"command": {"value": "ls", "type": "str"}, "top": {"value": 3, "type": "int"}}}
    assert merged_parameters(job, every) == {"command": "ls", "timeout": 60, "top": 3}
    assert merged_parameters({"parameter_values": None}, every) == {"timeout": 60, "top": 10}


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(cap=3)
    assert [backoff.next() for _ in range(5)] == [0.5, 1, 2, 3, 3]
    backoff.reset()
    assert backoff.next() == 0.5


def test_outputs_are_bytes_text_or_files(tmp_path):
    (tmp_path / "f").write_bytes(b"file")
    assert output_bytes(b"raw") == b"raw" and output_bytes("text") == b"text"
    assert output_bytes(tmp_path / "f") == b"file"


def test_the_base_executor_must_be_implemented():
    class Nothing(Executor):
        pass
    try:
        Nothing().execute(RecordingContext())
    except NotImplementedError as error:
        assert "Nothing" in str(error)
    else:
        raise AssertionError("execute must raise")


def test_a_worker_backs_off_while_the_server_is_down_and_stops_when_asked(caplog):
    import socket
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stop = threading.Event()
    worker = Worker(UfdlApi(f"http://127.0.0.1:{port}", "u", "p"), {"x.Y": Executor},
                    WorkerOptions(max_backoff=0.2), stop)
    threading.Timer(1.0, stop.set).start()
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="ufdl_pyramid.worker"):
        assert worker.run() == 0
    assert time.monotonic() - began < 3
    retries = [record for record in caplog.records if "server unavailable" in record.getMessage()]
    assert len(retries) >= 3  # 0.5 s, then 0.2 s each (the cap)
