"""A server started before ``ufdl db upgrade``: its background work says once what to do, instead of a
traceback every period (the lease check) or a listener started again and again (the progress channel)."""
import logging
import subprocess
import sys
import time
from pathlib import Path

import webtest

from ufdl_pyramid.models import get_engine
from ufdl_pyramid.testing import TEST_SETTINGS, make_test_app

UFDL = str(Path(sys.executable).with_name("ufdl"))


def test_the_lease_check_says_once_to_run_db_upgrade(tmp_path, caplog, monkeypatch):
    """It logged the failed SELECT's traceback at every check (every 30 s by default)."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'empty.sqlite'}"})
    app = make_test_app(engine, **{"ufdl.leases.check_interval": "0.05"})
    watch = app.registry["ufdl.lease_watch"]
    checks = []
    check = watch.check
    monkeypatch.setattr(watch, "check", lambda: checks.append(True) or check())
    caplog.set_level(logging.INFO, logger="ufdl_pyramid.services.lease_watch")
    try:
        webtest.TestApp(app).get("/v1/health", status=503)  # the process's first request starts its checks
        deadline = time.monotonic() + 30
        while len(checks) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watch.stop()
        engine.dispose()
    assert len(checks) >= 5
    said = [(record.levelname, record.getMessage(), record.exc_info) for record in caplog.records
            if record.name.endswith("lease_watch")]
    assert said == [("WARNING", "the lease check cannot run: the database is not at the newest schema (run "
                                "'ufdl db upgrade', then restart the server)", None)]


def test_the_progress_channel_says_once_to_run_db_upgrade(tmp_path):
    """It failed on "no such table: job_events", without saying what to do, and `ufdl serve` started it again
    twice before it gave up ("keeps stopping")."""
    ini = tmp_path / "ws.ini"
    ini.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = sqlite:///{tmp_path / 'empty.sqlite'}\n"
                   f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n")
    done = subprocess.run([UFDL, "-c", str(ini), "websocket", "--listen", "127.0.0.1:0"], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr == ("ufdl websocket: the database is not at the newest schema: run 'ufdl db upgrade', then "
                           "start the progress channel again\n")


def test_ufdl_serve_does_not_start_such_a_progress_channel_again(monkeypatch, capsys):
    """`ufdl serve` started it twice more, each saying the same, then said it "keeps stopping"."""
    from ufdl_pyramid.cli.serve import ListenerChild
    from ufdl_pyramid.cli.websocket import SCHEMA_NOT_CURRENT_EXIT

    starts = []
    start = ListenerChild._start
    monkeypatch.setattr(ListenerChild, "_start", lambda self: starts.append(True) or start(self))
    child = ListenerChild([sys.executable, "-c", f"import sys; sys.exit({SCHEMA_NOT_CURRENT_EXIT})"])
    child.watcher.join(30)
    assert not child.watcher.is_alive()
    assert len(starts) == 1 and capsys.readouterr().err == ""
