"""The worker loop: register the node, recover what a previous life left, then acquire-next → start → execute →
outputs → finish, with heartbeats while a job runs, exponential back-off while the server is down, and a clean
stop when asked to: no new job, and the running one either left to finish (during a grace period) or
interrupted, finished with an error, reset and released so that another node runs it again."""
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..executors import ERROR_CATEGORIES, ExecutionError, merged_parameters
from .api import ApiError, ServerUnavailable, UfdlApi
from .context import HttpExecutionContext, resolved_inputs

log = logging.getLogger("ufdl_pyramid.worker")
MAX_ERROR = 100_000  # characters of a finish's error the server takes


def storable_error(error: str) -> str:
    """An executor's error as the server stores it: a NUL (a command's binary standard error), half a surrogate
    pair or a text over ``MAX_ERROR`` got the finish refused (400), and the job stayed RUNNING on its node."""
    error = error.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return error if len(error) <= MAX_ERROR else error[:MAX_ERROR - 1] + "\u2026"

QUEUED, RUNNING = "QUEUED", "RUNNING"


class WorkerStopped(Exception):
    """The worker was asked to stop while waiting for the server."""


class WorkerAbandoned(BaseException):
    """Asked to stop once more while a call of its job waited for the server: the job is left to its lease.
    Not an ``Exception``, so that no executor's ``except Exception`` takes it for the job's own failure."""


@dataclass
class WorkerOptions:
    ip: str | None = None
    index: int = 0
    once: bool = False
    poll: float = 2.0  # seconds between acquire-next calls when there is nothing to do
    heartbeat: float = 5.0  # seconds between heartbeats (keep it well under the server's ufdl.node_timeout)
    max_backoff: float = 30.0
    scratch_root: str | None = None


class Backoff:
    """Exponential delays, 0.5 s doubling up to ``cap``; ``reset`` after a success."""

    def __init__(self, cap: float, first: float = 0.5):
        self.cap, self.first = cap, min(first, cap)
        self.delay = self.first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first


def local_ip_towards(host: str, port: int | None) -> str:
    """The address this machine uses to reach the server (no packet is sent: a UDP socket is only connected)."""
    try:
        family = socket.getaddrinfo(host, port or 80)[0][0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port or 80))
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def memory_bytes() -> int | None:
    """The machine's memory in bytes, the unit of a node's ``cpu_mem`` (the job launcher sends psutil's total).
    It sent MiB, capped for the 32-bit column that migration 0007 widened: a 24 GiB node read as 24 KB."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):  # in KiB, whatever the "kB" says
                    return min(int(line.split()[1]) * 1024, 2**63 - 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_facts() -> dict:
    """The machine's NVIDIA GPUs as a node registers them: ``gpu_mem``, the largest one's memory in bytes, and
    ``gpus``, how many (a Scale job asking ``gpus`` goes only to a node with as many), and ``driver_version``;
    nothing without ``nvidia-smi`` or when it fails (no driver loaded, say)."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return {}
    try:
        answer = subprocess.run([nvidia_smi, "--query-gpu=memory.total,driver_version",
                                 "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
        if answer.returncode != 0:
            raise ValueError(answer.stderr.strip()[:200] or f"exit status {answer.returncode}")
        gpus = [[field.strip() for field in line.split(",")] for line in answer.stdout.splitlines() if line.strip()]
        memory_mib = max(float(fields[0]) for fields in gpus)  # ValueError when there is none
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        log.warning("nvidia-smi gave no GPU memory (%s): the node registers no GPU", error)
        return {}
    facts = {"gpu_mem": min(int(memory_mib * 2**20), 2**63 - 1), "gpus": len(gpus)} if memory_mib > 0 else {}
    if facts and len(gpus[0]) > 1 and gpus[0][1]:
        facts["driver_version"] = gpus[0][1][:32]  # the column's length
    return facts


class Heartbeat(threading.Thread):
    """While a job runs: ``GET /v1/jobs/{pk}`` as the node every ``interval`` seconds. That request marks the
    node as seen (the lease) and tells whether the job was cancelled or taken away (aborted, lease lost)."""

    def __init__(self, api: UfdlApi, pk: int, node_id: int, interval: float):
        super().__init__(name=f"heartbeat-{pk}", daemon=True)
        self.api, self.pk, self.node_id, self.interval = api, pk, node_id, interval
        self.finished = threading.Event()
        self.lost: str | None = None  # why the job is no longer ours

    def run(self) -> None:
        failing = False
        while not self.finished.wait(self.interval):
            try:
                job = self.api.get_job(self.pk)
            except (ServerUnavailable, ApiError) as error:
                # Once per run of failures: the lease runs out ufdl.node_timeout seconds after the last one that
                # got through, and the operator should see why in the log (it was a DEBUG line).
                (log.debug if failing else log.warning)(
                    "heartbeat for job %s failed: %s (the lease runs out without one)", self.pk, error)
                failing = True
                continue
            if failing:
                log.info("heartbeat for job %s got through again", self.pk)
                failing = False
            if job.get("is_cancelled"):
                self.lost = "cancelled"
            elif job.get("node") != self.node_id or job.get("status") != RUNNING:
                self.lost = f"taken away (now {job.get('status')}, node {job.get('node')})"
            if self.lost:
                log.info("job %s %s", self.pk, self.lost)
                return

    def stop(self) -> None:
        self.finished.set()
        self.join(self.interval + self.api.timeout)


class Worker:
    """One node's loop. ``executors``: dotted name → executor class (the installed plugins')."""

    def __init__(self, api: UfdlApi, executors: Mapping[str, type], options: WorkerOptions,
                 stop: threading.Event | None = None, interrupt: threading.Event | None = None,
                 abandon: threading.Event | None = None):
        self.api = api
        self.executors = dict(executors)
        self.options = options
        self.stop_event = stop or threading.Event()  # take no new job
        self.interrupt_event = interrupt or self.stop_event  # and stop the running one (by default: at once)
        self.abandon_event = abandon or threading.Event()  # and give up waiting for a server that is down
        self.backoff = Backoff(options.max_backoff)
        self.node_id: int | None = None
        self.jobs_done = 0
        self.current_job: int | None = None  # the job run_job holds, for the message when it is abandoned

    # -- plumbing --------------------------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def interrupted(self) -> bool:
        return self.interrupt_event.is_set()

    def retrying(self, what: str, call: Callable, *, give_up_on_stop: bool = True,
                 through_server_errors: bool = False):
        """``call()``, retried with back-off while the server is unavailable. ``through_server_errors``: and
        while it answers 500, for the calls of a worker with no job (connecting, polling): it waits out a
        server's bug or hiccup instead of dying of it."""
        while True:
            try:
                result = call()
                self.backoff.reset()
                return result
            except (ServerUnavailable, ApiError) as error:
                if isinstance(error, ApiError) and not (through_server_errors and error.status == 500):
                    raise
                if give_up_on_stop and self.stopping:
                    raise WorkerStopped() from None
                delay = self.backoff.next()
                log.warning("server unavailable (%s); %s again in %.1f s", error, what, delay)
                if not give_up_on_stop:
                    # It must get through (a finish, an upload): a stop does not cut the wait, only another
                    # signal does (else a server that stays down leaves a worker that only SIGKILL ends).
                    if self.abandon_event.wait(delay):
                        raise WorkerAbandoned() from None
                elif self.stop_event.wait(delay):
                    raise WorkerStopped() from None

    # -- start-up --------------------------------------------------------------------------------------------
    def register_node(self) -> int:
        ip = self.options.ip or local_ip_towards(self.api.host, self.api.port)
        # The cores as docker counts them when it limits a container's (``--cpus``, a Seed job's ``cpus``).
        facts = {"cpu_mem": memory_bytes(), "cpus": os.cpu_count(), **gpu_facts()}
        facts = {key: value for key, value in facts.items() if value is not None}
        self.api.node_id = None
        try:
            node = self.api.request("POST", "/v1/nodes/create", {"ip": ip, "index": self.options.index, **facts})
            log.info("node %s registered (%s, index %s)", node["pk"], ip, self.options.index)
        except ApiError as error:
            if error.status != 409:
                raise
            found = self.api.request("POST", "/v1/nodes/list", {"expressions": [
                {"type": "exact", "field": "ip", "value": ip},
                {"type": "exact", "field": "index", "value": self.options.index}]})
            if not found:
                raise
            node = self.api.request("PATCH", f"/v1/nodes/{found[0]['pk']}", facts) if facts else found[0]
            log.info("node %s updated (%s, index %s)", node["pk"], ip, self.options.index)
        self.node_id = self.api.node_id = node["pk"]
        return self.node_id

    def recover(self) -> None:
        """Jobs a previous life of this node left: a started one is finished with an error and reset (so it is
        run again); one that was taken away (aborted) or cancelled meanwhile is finished, which only frees the
        node."""
        node = self.api.request("GET", f"/v1/nodes/{self.node_id}")
        # A started job is always the node's current job (start sets it, finish clears it), so that one field
        # finds what a previous life left running; a job acquired but not started comes back from acquire-next.
        pks = {node["current_job"]} if node.get("current_job") else set()
        for pk in sorted(pks):
            job = self.api.get_job(pk)
            mine = job.get("node") == self.node_id
            try:
                if mine and job["status"] == RUNNING:
                    self.api.job_action(pk, "finish", {"error": "the worker restarted while running the job"})
                    self.api.job_action(pk, "reset")
                    log.info("job %s recovered: finished with an error and reset", pk)
                else:
                    self.api.job_action(pk, "finish", {"error": "the worker restarted while running the job"})
                    log.info("job %s was taken away or cancelled while this node was down; node freed", pk)
            except ApiError as error:
                log.warning("job %s: cannot recover it: %s", pk, error)

    def connect(self) -> None:
        def start():
            self.api.login()
            self.register_node()
            self.recover()
        self.retrying("connecting", start, through_server_errors=True)
        log.info("worker ready on node %s with executors %s", self.node_id, ", ".join(sorted(self.executors)))

    # -- the loop --------------------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.connect()
            while not self.stopping:
                job = self.retrying("acquiring", lambda: self.api.acquire_next(sorted(self.executors)),
                                    through_server_errors=True)
                if job is None:
                    if self.options.once:
                        log.info("no job to run")
                        return 0
                    self.stop_event.wait(self.options.poll)
                    continue
                self.run_job(job)
                if self.options.once:
                    return 0
        except WorkerStopped:
            pass
        except WorkerAbandoned:
            log.error("worker stopped without reaching the server: job %s left to its lease (PENDING again "
                      "ufdl.node_timeout seconds after the server is back, or when this node's worker restarts)",
                      self.current_job)
            return 1
        log.info("worker stopped")
        return 0

    def run_job(self, job: dict) -> None:
        pk = self.current_job = job["pk"]
        template = job.get("template") or {}
        log.info("job %s acquired (%s v%s)", pk, template.get("name"), template.get("version"))
        try:
            details = self.retrying("reading the template", lambda: self.api.template(template["pk"]))
            executor_class = self.executors.get(details.get("executor_class"))
            if executor_class is None:
                self.api.job_action(pk, "release")
                log.warning("job %s released: no executor %r here", pk, details.get("executor_class"))
                return
            if self.stopping:
                raise WorkerStopped()
            job = self.retrying("starting", lambda: self.start(pk))
        except WorkerStopped:
            self.release(pk, "the worker is stopping")
            raise
        except ApiError as error:
            # Given back, and a pause: acquire-next would otherwise hand the same job over again at once.
            log.warning("job %s not started: %s", pk, error)
            self.release(pk, "it could not be started")
            self.stop_event.wait(self.options.poll)
            return
        log.info("job %s started", pk)
        heartbeat = Heartbeat(self.api, pk, self.node_id, self.options.heartbeat)
        heartbeat.start()
        scratch = Path(tempfile.mkdtemp(prefix=f"ufdl-job-{pk}-", dir=self.options.scratch_root))
        error = category = None
        def retrying(what, call):  # the job is ours now: it must get through, stopping or not
            return self.retrying(what, call, give_up_on_stop=False)

        try:
            parameters = merged_parameters(job, retrying("reading the parameters",
                                                         lambda: self.api.template_parameters(template["pk"])))
            inputs = retrying("fetching the inputs", lambda: resolved_inputs(self.api, job, scratch))
            context = HttpExecutionContext(self.api, job, inputs, parameters, scratch,
                                           lambda: heartbeat.lost is not None or self.interrupted, retrying)
            executor_class().execute(context)
        # Whatever the executor raises fails the job with its text, sys.exit() too: the worker lives on.
        except (Exception, SystemExit, KeyboardInterrupt) as raised:
            error = str(raised) or type(raised).__name__
            category = getattr(raised, "category", None) if isinstance(raised, ExecutionError) else None
        finally:
            heartbeat.stop()
            shutil.rmtree(scratch, ignore_errors=True)
        self.jobs_done += 1
        if heartbeat.lost is not None:
            self.finish(pk, error or f"the job was {heartbeat.lost}", give_up_on_stop=False)
            log.info("job %s abandoned: %s", pk, heartbeat.lost)
        elif self.interrupted:
            self.finish(pk, "the worker was stopped", give_up_on_stop=False)
            try:
                self.api.job_action(pk, "reset")
            except (ApiError, ServerUnavailable) as reset_error:
                log.warning("job %s: cannot reset: %s", pk, reset_error)
            self.release(pk, "the worker is stopping")
        elif error is not None:
            self.finish(pk, error, category=category)
            log.info("job %s failed: %s", pk, error.splitlines()[0] if error else error)
        else:
            self.finish(pk, None)
            log.info("job %s completed", pk)

    def start(self, pk: int) -> dict:
        """Start the job. A 406 saying it is RUNNING on this node answers a try whose answer was lost (a
        dropped connection, a proxy's 502): it started."""
        try:
            return self.api.job_action(pk, "start", {})
        except ApiError as error:
            if error.status == 406:
                current = self.api.get_job(pk)
                if current.get("status") == "RUNNING" and current.get("node") == self.node_id:
                    return current
            raise

    def finish(self, pk: int, error: str | None, give_up_on_stop: bool = True, category: str | None = None) -> None:
        body = {} if error is None else {"error": storable_error(error)}
        if error is not None and category in ERROR_CATEGORIES:  # another (set after raising) would be a 400
            body["error_category"] = category
        try:
            self.retrying("finishing", lambda: self.api.job_action(pk, "finish", body),
                          give_up_on_stop=give_up_on_stop)
        except ApiError as api_error:
            log.warning("job %s: finish refused: %s", pk, api_error)

    def release(self, pk: int, why: str) -> None:
        try:
            self.api.job_action(pk, "release")
            log.info("job %s released: %s", pk, why)
        except (ApiError, ServerUnavailable) as error:
            log.warning("job %s: cannot release: %s", pk, error)


def run_workers(make_api: Callable[[], UfdlApi], executors: Mapping[str, type], options: WorkerOptions,
                concurrency: int, stop: threading.Event, interrupt: threading.Event | None = None,
                abandon: threading.Event | None = None) -> int:
    """``concurrency`` workers, each its own node (indexes ``index``, ``index + 1``, ...), in threads."""
    if concurrency <= 1:
        return Worker(make_api(), executors, options, stop, interrupt, abandon).run()
    results = []

    def one(offset: int):
        slot = WorkerOptions(**{**options.__dict__, "index": options.index + offset})
        # A node that cannot run makes the process fail, not hide it; a refusal (bad credentials, say) is one
        # line per node, as with one node, and only the unexpected gets a traceback.
        try:
            results.append(Worker(make_api(), executors, slot, stop, interrupt, abandon).run())
        except ApiError as error:
            log.error("worker %d (index %d) stopped: %s", offset, slot.index, error)
            results.append(1)
        except Exception:
            log.exception("worker %d (index %d) failed", offset, slot.index)
            results.append(1)

    threads = [threading.Thread(target=one, args=(offset,), name=f"worker-{offset}") for offset in range(concurrency)]
    for thread in threads:
        if stop.is_set():  # SIGTERM while thousands start (a mistyped --concurrency): start no more of them
            break
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)  # joins in slices, so the main thread still handles signals
    return max(results, default=0)
