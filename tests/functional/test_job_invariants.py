"""A seeded random walk over the jobs API: every transition, called by any actor on any job in any state.

Three nodes (two of alice's, one of bob's) work single jobs and two-step meta-jobs; users and the admin
cancel, abort, delete and reinstate. After each call the stored jobs and nodes must hold the state machine's
invariants, a refused call (4xx) must have changed nothing, and a job a call answers must be the job stored.
The scenario tests pin the expected outcomes one by one; this one finds the orders of calls nobody wrote.
"""
import collections
import os
import random
import threading

import pytest
import webtest
from job_helpers import CONSUME, ECHO, PIPELINE, PRODUCE, register

STEPS = int(os.environ.get("UFDL_WALK_STEPS", "400"))
SEEDS = [int(seed) for seed in os.environ.get("UFDL_WALK_SEEDS", "1,2,3").split(",")]
EXECUTORS = ["tests.Echo", "tests.Produce", "tests.Consume"]
NODE_ACTIONS = ("start", "progress", "finish", "error", "reset", "release", "output")
# A job that holds a node until the node's finish, or is still to be worked.
LIVE = ("PENDING", "QUEUED", "RUNNING", "FAILED")


def violations(jobs: dict, nodes: dict) -> list[str]:
    """What is wrong with these jobs and nodes (as the list endpoints answer them)."""
    found = []
    runs = collections.Counter()
    for job in jobs.values():
        pk, status, node = job["pk"], job["status"], job["node"]
        if job["is_cancelled"] != (status == "CANCELED"):
            found.append(f"job {pk}: is_cancelled {job['is_cancelled']} but {status}")
        if not 0 <= job["progress"] <= 1:
            found.append(f"job {pk}: progress {job['progress']}")
        if status == "COMPLETED" and (job["progress"] != 1 or not job["end_time"]):
            found.append(f"job {pk}: COMPLETED with progress {job['progress']}, end {job['end_time']}")
        if job["template"]["name"] == PIPELINE["name"]:
            found += meta_violations(job, [child for child in jobs.values() if child["parent"] == pk])
            continue
        if status in ("QUEUED", "RUNNING") and node is None:
            found.append(f"job {pk}: {status} without a node")
        if status == "PENDING" and node is not None:
            found.append(f"job {pk}: PENDING but held by node {node}")
        # The job launcher's poll: what it lists must be a job a node can acquire.
        if (job["start_time"], job["error_reason"], node, job["deletion_time"]) == (None,) * 4 \
                and status != "PENDING":
            found.append(f"job {pk}: {status} but in the job launcher's poll")
        if status == "RUNNING":
            runs[node] += 1
            if not job["start_time"]:
                found.append(f"job {pk}: RUNNING without a start time")
            if nodes[node]["current_job"] != pk:
                found.append(f"job {pk}: RUNNING on node {node}, whose current job is {nodes[node]['current_job']}")
    found += [f"node {node} runs {count} jobs" for node, count in runs.items() if count > 1]
    return found


def meta_violations(parent: dict, children: list[dict]) -> list[str]:
    pk, status = parent["pk"], parent["status"]
    found = [] if parent["node"] is None else [f"meta-job {pk}: held by node {parent['node']}"]
    for child in children:
        if (child["deletion_time"] is None) != (parent["deletion_time"] is None):
            found.append(f"step {child['pk']}: deletion time {child['deletion_time']}, "
                         f"its meta-job's {parent['deletion_time']}")
        if status == "CANCELED" and child["status"] not in ("COMPLETED", "CANCELED"):
            found.append(f"step {child['pk']}: {child['status']} in canceled meta-job {pk}")
        if child["status"] == "RUNNING" and status != "RUNNING":
            found.append(f"step {child['pk']}: RUNNING in {status} meta-job {pk}")
    if status == "COMPLETED" and sorted(child["status"] for child in children) != ["COMPLETED", "COMPLETED"]:
        found.append(f"meta-job {pk}: COMPLETED with steps {[child['status'] for child in children]}")
    # Its progress is the mean over both steps, one not created yet counting as 0.
    if status == "RUNNING" and parent["progress"] != pytest.approx(sum(c["progress"] for c in children) / 2):
        found.append(f"meta-job {pk}: progress {parent['progress']}, steps {[c['progress'] for c in children]}")
    return found


class Walk:
    def __init__(self, seed: int, admin, alice, bob, templates: dict):
        self.rng = random.Random(seed)
        self.admin, self.users, self.templates = admin, [admin, alice, bob], templates
        workers = [register(alice, "10.0.0.1"), register(alice, "10.0.0.2"), register(bob, "10.0.0.3")]
        self.workers = {worker.node_id: worker for worker in workers}
        self.jobs, self.nodes = self.read()

    def read(self) -> tuple[dict, dict]:
        jobs = self.admin.post("/v1/jobs/list", {"include_inactive": True}).json
        nodes = self.admin.post("/v1/nodes/list", {}).json
        return {job["pk"]: job for job in jobs}, {node["pk"]: node for node in nodes}

    def pick_job(self, action: str, node: int) -> int:
        """Mostly a job the action can apply to (else nearly every call would be refused), sometimes any."""
        rng, jobs = self.rng, self.jobs
        if action in NODE_ACTIONS:
            held = [pk for pk, job in jobs.items() if job["node"] == node and job["status"] in LIVE]
            held += [self.nodes[node]["current_job"]] if self.nodes[node]["current_job"] else []
            if held and rng.random() < 0.85:
                return rng.choice(held)
        if action == "acquire" and rng.random() < 0.7:
            pending = [pk for pk, job in jobs.items()
                       if job["status"] == "PENDING" and job["template"]["name"] != PIPELINE["name"]]
            if pending:
                return rng.choice(pending)
        return rng.choice(list(jobs)) if jobs and rng.random() < 0.97 else 10 ** 6

    def call(self):
        """One random call; returns (what was called, its response)."""
        rng = self.rng
        node = rng.choice(list(self.workers))
        worker = self.workers[node]
        user = rng.choice(self.users)
        if rng.random() < 0.1 or not self.jobs:
            name = rng.choice([ECHO["name"], ECHO["name"], PIPELINE["name"]])
            inputs = {"input" if name == ECHO["name"] else "first:input": {"value": "words", "type": "str"}}
            return ("create", name), user.post(f"/v1/job-templates/{self.templates[name]}/create-job",
                                               {"input_values": inputs}, status="*")
        action = rng.choice(["acquire", "acquire", "acquire-next", "start", "start", "progress", "progress",
                             "finish", "finish", "error", "reset", "release", "abort", "cancel", "delete",
                             "reinstate", "hard", "output"])
        pk = self.pick_job(action, node)
        job = f"/v1/jobs/{pk}"
        what = (action, pk, node)
        if action == "acquire":
            return what, worker.get(f"{job}/acquire", status="*")
        if action == "acquire-next":
            return what, worker.post("/v1/jobs/acquire-next", {"executors": EXECUTORS}, status="*")
        if action == "start":
            return what, worker.post(f"{job}/start", {}, status="*")
        if action == "progress":
            return what, worker.post(f"{job}/progress/{rng.choice(['0.1', '0.5', '0.9'])}", {}, status="*")
        if action in ("finish", "error"):
            body = {} if action == "finish" else {"success": False, "error": "boom"}
            return what, worker.post(f"{job}/finish", body, status="*")
        if action in ("reset", "release"):
            return what, worker.delete(f"{job}/{action}", status="*")
        if action == "output":
            return what, worker.request("POST", f"{job}/outputs/output/{rng.choice(['BLOB', 'str'])}",
                                        body=b"some words", content_type="application/data", status="*")
        if action in ("abort", "cancel"):
            return what, user.delete(f"{job}/{action}", status="*")
        if action == "hard" and rng.random() < 0.7:  # rarely: it takes jobs out of the walk for good
            action, what = "delete", ("delete", pk, node)
        return what, self.admin.delete(job if action == "delete" else f"{job}/{action}", status="*")

    def step(self) -> tuple:
        what, response = self.call()
        assert response.status_int < 500, (what, response)
        assert response.status_int == 204 or response.content_type == "application/json", (what, response)
        before_jobs, before_nodes = self.jobs, self.nodes
        self.jobs, self.nodes = self.read()
        assert not violations(self.jobs, self.nodes), (what, response.status, violations(self.jobs, self.nodes))
        if 400 <= response.status_int < 500:
            # Any request naming a node records it as seen: the one change a refused call makes.
            assert self.jobs == before_jobs, (what, response.status, response.json)
            assert without_last_seen(self.nodes) == without_last_seen(before_nodes), (what, response.json)
        elif response.status_int == 200 and what[0] not in ("delete", "hard", "acquire-next"):
            assert response.json == self.jobs[response.json["pk"]], what
        return what[0], response.status_int


def without_last_seen(nodes: dict) -> dict:
    return {pk: {**node, "last_seen": None} for pk, node in nodes.items()}


@pytest.fixture
def templates(admin):
    for template in (ECHO, PRODUCE, CONSUME):
        admin.post("/v1/job-templates/import", template, status=201)
    admin.post("/v1/job-templates/import", PIPELINE, status=201)
    listed = admin.post("/v1/job-templates/list", {}).json
    return {template["name"]: template["pk"] for template in listed}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_walk_keeps_the_invariants(seed, admin, alice, bob, templates):
    walk = Walk(seed, admin, alice, bob, templates)
    outcomes = collections.Counter(walk.step() for _ in range(STEPS))
    # The walk went where it matters: jobs were worked to each end, and meta-jobs got under way.
    worked = {action for (action, status) in outcomes if status in (200, 201)}
    assert {"acquire", "start", "progress", "finish", "error", "output", "cancel"} <= worked, outcomes
    metas = [job for job in walk.jobs.values() if job["template"]["name"] == PIPELINE["name"]]
    assert any(job["status"] != "PENDING" for job in metas), metas


def test_nodes_and_admins_at_the_same_time_keep_the_invariants(wsgi_app, retried, admin, alice, bob, templates):
    """Four nodes work jobs (acquire-next, start, progress, an output, finish or fail, reset or release) from
    threads of their own while two more cancel, abort, delete and reinstate any job: no call answers 5xx nor
    meets a deadlock, and the jobs and nodes end up holding the invariants. (A walk like this one found the
    meta-job deadlock: see "Concurrency" in the README.)"""
    workers = [register(alice, f"10.0.0.{i}") for i in range(3)] + [register(bob, "10.0.1.1")]
    answers = collections.Counter()
    errors = []
    lock = threading.Lock()

    def node_loop(rng, node):
        for _ in range(60):
            if rng.random() < 0.3:  # the node's user creates a job
                name = rng.choice([ECHO["name"], ECHO["name"], PIPELINE["name"]])
                inputs = {"input" if name == ECHO["name"] else "first:input": {"value": "words", "type": "str"}}
                yield "create", node.post(f"/v1/job-templates/{templates[name]}/create-job",
                                          {"input_values": inputs}, status="*")
                continue
            job = node.post("/v1/jobs/acquire-next", {"executors": EXECUTORS}, status="*")
            yield "acquire-next", job
            if job.status_int != 200:
                continue
            path = f"/v1/jobs/{job.json['pk']}"
            yield "start", node.post(f"{path}/start", {}, status="*")
            for _ in range(rng.randint(0, 2)):
                yield "progress", node.post(f"{path}/progress/0.5", {}, status="*")
            if rng.random() < 0.7:
                yield "output", node.request("POST", f"{path}/outputs/output/BLOB", body=b"some words",
                                             content_type="application/data", status="*")
            failed = rng.random() < 0.3
            yield "finish", node.post(f"{path}/finish", {"error": "boom"} if failed else {}, status="*")
            if failed:
                yield "reset", node.delete(f"{path}/{rng.choice(['reset', 'release'])}", status="*")
                yield "finish", node.post(f"{path}/finish", {}, status="*")

    def own(client):
        """The client on a TestApp of this thread's own."""
        return client.__class__(webtest.TestApp(wsgi_app), client.token, client.refresh_token, client.node_id,
                                client.user_id)

    def admin_loop(rng, admin_here):
        creator = own(bob)  # may cancel the jobs bob created
        for _ in range(100):
            # Mostly a job still to be worked: of pks drawn blind from 1 to 80 few were (the nodes finish jobs
            # quickly), and in some runs not one cancel succeeded.
            live = [job["pk"] for job in admin_here.post("/v1/jobs/list", {"include_inactive": True}).json
                    if job["status"] not in ("COMPLETED", "CANCELED")]
            path = f"/v1/jobs/{rng.choice(live) if live and rng.random() < 0.8 else rng.randint(1, 80)}"
            action = rng.choice(["abort", "cancel", "", "reinstate"])
            client = admin_here if action in ("", "reinstate") else rng.choice([admin_here, creator])
            yield action or "delete", client.delete(f"{path}/{action}".rstrip("/"), status="*")

    def run(index, loop, client):
        try:
            for action, response in loop(random.Random(index), own(client)):
                with lock:
                    answers[action, response.status_int] += 1
                    if response.status_int >= 500:  # the answer's detail says why (a 503 has several causes)
                        errors.append(f"{action}: {response.status_int} {response.text}")
        except Exception as error:  # reported below: a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index, node_loop, node)) for index, node in enumerate(workers)]
    threads += [threading.Thread(target=run, args=(10 + index, admin_loop, admin)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert not [answer for answer in answers if answer[1] >= 500], answers
    assert not retried()
    jobs = {job["pk"]: job for job in admin.post("/v1/jobs/list", {"include_inactive": True}).json}
    nodes = {node["pk"]: node for node in admin.post("/v1/nodes/list", {}).json}
    assert not violations(jobs, nodes)
    assert answers["finish", 200] and answers["cancel", 200], answers


def test_the_invariants_catch_a_node_running_two_jobs():
    """The checker itself: a state the server must never store is reported."""
    job = {"template": {"name": ECHO["name"]}, "node": 7, "status": "RUNNING", "progress": 0.5,
           "is_cancelled": False, "start_time": "2026-01-01T00:00:00Z", "end_time": None, "parent": None,
           "error_reason": None, "deletion_time": None}
    jobs = {1: {**job, "pk": 1}, 2: {**job, "pk": 2}}
    found = violations(jobs, {7: {"pk": 7, "current_job": 1}})
    assert found == ["job 2: RUNNING on node 7, whose current job is 1", "node 7 runs 2 jobs"]
    cancelled = {**job, "pk": 3, "node": None, "status": "CANCELED", "is_cancelled": True, "start_time": None}
    assert violations({3: cancelled}, {}) == ["job 3: CANCELED but in the job launcher's poll"]


PARALLEL = {"name": "parallel", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"nodes": {"a": {"name": "produce"}, "b": {"name": "produce"}}, "dependencies": []}}


def test_events_blobs_and_the_event_feed_agree_with_the_jobs_after_a_storm(on_postgresql, engine, tmp_path, admin,
                                                                            alice, bob, templates):
    """Six nodes work single jobs, two-step and two-branch meta-jobs (progress through the express lane,
    outputs of the same bytes) while two admins cancel, abort, delete, reinstate and delete for good jobs and
    outputs, and take the leases of running jobs. At the end: each job's last event states its row (status,
    node, progress), every output row has its blob and no blob is left without one, the event feed tailing
    all along delivered every event once and each job's in order, and the invariants hold. (It found the
    steps that acquire-next took while their meta-job was cancelled: see "Concurrency" in the README.)"""
    from sqlalchemy import text

    from datetime import timedelta

    from ufdl_pyramid.models import get_session_factory
    from ufdl_pyramid.models.meta import utcnow
    from ufdl_pyramid.services.event_feed import EventFeed
    from ufdl_pyramid.services.job_lifecycle import JobLifecycle
    from ufdl_pyramid.testing import make_test_app

    admin.post("/v1/job-templates/import", PARALLEL, status=201)
    names = {template["name"]: template["pk"] for template in admin.post("/v1/job-templates/list", {}).json}
    inputs = {ECHO["name"]: {"input": {"value": "w", "type": "str"}},
              PIPELINE["name"]: {"first:input": {"value": "w", "type": "str"}},
              PARALLEL["name"]: {"a:input": {"value": "w", "type": "str"}, "b:input": {"value": "w", "type": "str"}}}
    workers = [register(alice, f"10.0.0.{i}") for i in range(5)] + [register(bob, "10.0.1.1")]
    wsgi_app = make_test_app(engine, **{"ufdl.storage.path": str(tmp_path)})  # blobs of this test's only
    storage = wsgi_app.registry["ufdl.storage"]
    answers = collections.Counter()
    errors, lock = [], threading.Lock()

    def own(client):
        return client.__class__(webtest.TestApp(wsgi_app), client.token, client.refresh_token, client.node_id,
                                client.user_id)

    def node_loop(rng, node):
        for _ in range(35):
            if rng.random() < 0.3:
                name = rng.choice(list(inputs))
                yield "create", node.post(f"/v1/job-templates/{names[name]}/create-job",
                                          {"input_values": inputs[name]}, status="*")
                continue
            job = node.post("/v1/jobs/acquire-next", {"executors": EXECUTORS}, status="*")
            yield "acquire-next", job
            if job.status_int != 200:
                continue
            path = f"/v1/jobs/{job.json['pk']}"
            yield "start", node.post(f"{path}/start", {}, status="*")
            for step in range(rng.randint(0, 4)):
                yield "progress", node.post(f"{path}/progress/{rng.random():.3f}", {"step": step}, status="*")
            if rng.random() < 0.8:
                yield "output", node.request("POST", f"{path}/outputs/output/BLOB", status="*",
                                             body=rng.choice([b"same bytes", b"other bytes", b"x" * rng.randint(1, 5)]))
            failed = rng.random() < 0.25
            yield "finish", node.post(f"{path}/finish", {"error": "boom"} if failed else {}, status="*")
            if failed:
                yield "reset", node.delete(f"{path}/{rng.choice(['reset', 'release'])}", status="*")
                yield "finish", node.post(f"{path}/finish", {}, status="*")

    def admin_loop(rng, admin_here):
        creator = own(bob)
        for _ in range(70):
            action = rng.choice(["abort", "cancel", "delete", "reinstate", "hard", "lease", "lease", "output"])
            if action == "lease":  # a lease check an hour from now: every job held loses its lease
                db = get_session_factory(engine)()
                try:
                    JobLifecycle(db).expire_leases(utcnow() + timedelta(hours=1), 120, 3)
                    db.commit()
                finally:
                    db.close()
                continue
            if action == "output":
                outputs = admin_here.post("/v1/job-outputs/list", {}).json
                if outputs:
                    path = f"/v1/job-outputs/{rng.choice(outputs)['pk']}{rng.choice(['', '/hard'])}"
                    yield "output", admin_here.delete(path, status="*")
                continue
            if action == "hard" and rng.random() < 0.7:
                continue
            listed = admin_here.post("/v1/jobs/list", {"include_inactive": True}).json
            # Mostly a job the action applies to (a step for an abort, a meta-job or single job for the rest).
            fits = [job for job in listed if (job["parent"] is None) != (action == "abort")
                    and job["status"] not in ("COMPLETED", "CANCELED")]
            if not fits or rng.random() < 0.1:
                fits = listed or [{"pk": 10 ** 6}]
            path = f"/v1/jobs/{rng.choice(fits)['pk']}"
            client = rng.choice([admin_here, creator]) if action in ("abort", "cancel") else admin_here
            suffix = {"delete": "", "hard": "/hard"}.get(action, f"/{action}")
            yield action, client.delete(f"{path}{suffix}", status="*")

    def run(index, loop, client):
        try:
            for action, response in loop(random.Random(index), own(client)):
                with lock:
                    answers[action, response.status_int] += 1
                    if response.status_int >= 500:
                        errors.append(f"{action}: {response.status_int} {response.text}")
        except Exception as error:  # reported below: a thread's failure must fail the test
            errors.append(error)

    feed, fed, done = EventFeed(engine), [], threading.Event()
    feed.start()

    def tail():
        while not done.is_set():
            fed.extend(feed.poll())
            done.wait(0.005)

    tailer = threading.Thread(target=tail)
    threads = [threading.Thread(target=run, args=(index, node_loop, node)) for index, node in enumerate(workers)]
    threads += [threading.Thread(target=run, args=(10 + index, admin_loop, admin)) for index in range(2)]
    for thread in [tailer, *threads]:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    tailer.join()
    for _ in range(1000):  # the gaps of the last reads settle once their transactions are seen ended
        fed.extend(feed.poll())
        if not feed.has_open_gaps:
            break
    assert not errors, errors[:3]
    assert answers["finish", 200] and answers["cancel", 200] and answers["abort", 200], answers

    problems = []
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, status, node_id, progress FROM jobs")).all()
        last_events = {row.job_id: row for row in connection.execute(text(
            "SELECT DISTINCT ON (job_id) job_id, status, node_id, progress FROM job_events "
            "ORDER BY job_id, id DESC"))}
        all_events = connection.execute(text("SELECT id FROM job_events")).scalars().all()
        keys = set(connection.execute(text("SELECT blob_key FROM job_outputs")).scalars())
        lost_leases = connection.scalar(text("SELECT count(*) FROM job_events WHERE transition IN ('abort', 'error') "
                                             "AND CAST(transition_data AS jsonb) ->> 'category' = 'SYSTEM'"))
    assert lost_leases, answers
    for row in rows:
        last = last_events.get(row.id)
        stated = (last.status, last.node_id, last.progress) if last else ("PENDING", None, 0.0)
        if stated != (row.status, row.node_id, pytest.approx(row.progress)):
            problems.append(f"job {row.id}: {row.status} on node {row.node_id} at {row.progress}, its last "
                            f"event says {stated}")
    problems += [f"blob {key} of an output is missing" for key in keys if not storage.exists(key)]
    problems += [f"blob {key} is no output's" for key in set(storage.keys(stored_before=float("inf"))) - keys]
    fed_ids = [message["id"] for message in fed]
    problems += [f"event {event} fed twice" for event, count in collections.Counter(fed_ids).items() if count > 1]
    problems += [f"event {event} never fed" for event in set(all_events) - set(fed_ids)]  # (the rest deleted)
    by_job = collections.defaultdict(list)
    for message in fed:
        by_job[message["pk"]].append(message["id"])
    problems += [f"job {pk}'s events fed out of order" for pk, ids in by_job.items() if ids != sorted(ids)]
    jobs = {job["pk"]: job for job in admin.post("/v1/jobs/list", {"include_inactive": True}).json}
    nodes = {node["pk"]: node for node in admin.post("/v1/nodes/list", {}).json}
    problems += violations({pk: job for pk, job in jobs.items() if job["template"]["name"] != PARALLEL["name"]},
                           nodes)
    for parent in (job for job in jobs.values() if job["template"]["name"] == PARALLEL["name"]):
        steps = [job for job in jobs.values() if job["parent"] == parent["pk"]]
        statuses = sorted(step["status"] for step in steps)
        if parent["status"] == "RUNNING" and ("FAILED" in statuses or parent["progress"] != pytest.approx(
                sum(step["progress"] for step in steps) / 2)):
            problems.append(f"meta-job {parent['pk']}: RUNNING at {parent['progress']}, steps {steps}")
        if parent["status"] == "COMPLETED" and statuses != ["COMPLETED", "COMPLETED"]:
            problems.append(f"meta-job {parent['pk']}: COMPLETED with steps {statuses}")
    assert not problems, problems[:10]
