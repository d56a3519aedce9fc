"""Meta-jobs through HTTP: a two-step graph run to completion with its wiring, and a failing child."""
import pytest
from job_helpers import CONSUME, PIPELINE, PRODUCE, register


@pytest.fixture
def pipeline(admin):
    admin.post("/v1/job-templates/import", PRODUCE, status=201)
    admin.post("/v1/job-templates/import", CONSUME, status=201)
    return admin.post("/v1/job-templates/import", PIPELINE, status=201).json


@pytest.fixture
def parent(bob, pipeline):
    return bob.post(f"/v1/job-templates/{pipeline['pk']}/create-job",
                    {"input_values": {"first:input": {"value": "words", "type": "str"}},
                     "parameter_values": {"second:mode": {"value": "slow", "type": "str"}}}, status=201).json


def children_of(client, parent):
    body = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}]}
    return {child["template"]["name"]: child for child in client.post("/v1/jobs/list", body).json}


def work(worker, job, output: bytes | None = b"data", error: str | None = None):
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    worker.post(f"/v1/jobs/{job['pk']}/progress/0.5", {})
    if output is not None:
        worker.request("POST", f"/v1/jobs/{job['pk']}/outputs/output/BLOB", body=output,
                       content_type="application/data", status=201)
    return worker.post(f"/v1/jobs/{job['pk']}/finish", {"error": error} if error else {}).json


def test_a_two_step_graph_runs_to_completion(alice, bob, parent):
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    assert set(children_of(bob, parent)) == {"produce"}
    assert first["parameter_values"] is None  # none given for it (null, as for any job, not an empty object)
    # The parent cannot be worked directly.
    worker.get(f"/v1/jobs/{parent['pk']}/acquire", status=406)

    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    # Not started yet: a step's report is refused like any job's (a step's goes the full way, not the short one).
    assert "it is QUEUED" in worker.post(f"/v1/jobs/{first['pk']}/progress/0.5", {}, status=406).json["detail"]
    worker.post(f"/v1/jobs/{first['pk']}/start", {})
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "RUNNING"
    worker.post(f"/v1/jobs/{first['pk']}/progress/0.5", {})
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["progress"] == 0.25  # the mean over both graph nodes
    output = worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/output/BLOB", body=b"from first",
                            content_type="application/data", status=201).json
    # An output the step deleted is not the meta-job's.
    worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/scratch/str", body=b"tmp", status=201)
    worker.request("DELETE", f"/v1/jobs/{first['pk']}/outputs/scratch/str", status=200)
    worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/log/str", body=b"done", status=201)
    worker.post(f"/v1/jobs/{first['pk']}/finish", {})

    second = children_of(bob, parent)["consume"]
    # The wiring: the first child's output is the second's input; the meta-job's parameter reached it.
    assert second["input_values"] == {"input": {"value": output["pk"], "type": "JobOutput<BLOB>"}}
    assert second["parameter_values"] == {"mode": {"value": "slow", "type": "str"}}
    assert second["status"] == "PENDING"
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["progress"] == 0.5

    work(worker, second, b"from second")
    finished = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert finished["status"] == "COMPLETED" and finished["progress"] == 1.0 and finished["end_time"]
    # Listed by graph node, each step's outputs in the order it added them.
    assert [out["name"] for out in finished["outputs"]] == ["first:output", "first:log", "second:output"]
    copied = next(out for out in finished["outputs"] if out["name"] == "first:output")
    assert bob.get(f"/v1/jobs/{parent['pk']}/outputs/first:output/BLOB").body == b"from first"
    assert copied["type"] == "BLOB"


def test_a_failing_child_fails_the_parent_and_a_reset_revives_it(alice, bob, parent):
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    failed = work(worker, first, output=None, error="disk full")
    assert failed["status"] == "FAILED"
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "FAILED" and "disk full" in state["error_reason"]
    assert set(children_of(bob, parent)) == {"produce"}  # nothing downstream was created

    worker.delete(f"/v1/jobs/{first['pk']}/reset")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "RUNNING"
    worker.post(f"/v1/jobs/{first['pk']}/start", {})
    worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/output/BLOB", body=b"x",
                   content_type="application/data", status=201)
    worker.post(f"/v1/jobs/{first['pk']}/finish", {})
    assert set(children_of(bob, parent)) == {"produce", "consume"}


def test_a_child_that_finishes_without_the_wired_output_fails_the_parent(alice, bob, parent):
    worker = register(alice)
    work(worker, children_of(bob, parent)["produce"], output=None)
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "FAILED" and "without its output 'output'" in state["error_reason"]
    # Its progress still counts the step that completed (it stayed at the step's last report, 0.25).
    assert state["progress"] == 0.5


def test_cancelling_the_parent_cancels_its_children(alice, bob, parent):
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    bob.delete(f"/v1/jobs/{first['pk']}/cancel", status=406)  # only the top-level job
    assert bob.delete(f"/v1/jobs/{parent['pk']}/cancel").json["status"] == "CANCELED"
    assert children_of(bob, parent)["produce"]["status"] == "CANCELED"


def test_deleting_the_parent_deletes_its_steps_and_reinstating_brings_them_back(admin, alice, bob, parent):
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    admin.delete(f"/v1/jobs/{first['pk']}", status=406)  # a step goes only with its meta-job
    admin.delete(f"/v1/jobs/{first['pk']}/hard", status=406)
    deleted = admin.delete(f"/v1/jobs/{parent['pk']}").json["deletion_time"]
    assert bob.get(f"/v1/jobs/{first['pk']}").json["deletion_time"] == deleted
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Produce"]}, status=204)
    worker.get(f"/v1/jobs/{first['pk']}/acquire", status=406)
    admin.delete(f"/v1/jobs/{first['pk']}/reinstate", status=406)

    admin.delete(f"/v1/jobs/{parent['pk']}/reinstate")
    assert bob.get(f"/v1/jobs/{first['pk']}").json["deletion_time"] is None
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Produce"]}).json["pk"] == first["pk"]


def test_deleting_a_running_meta_job_aborts_its_running_step(admin, alice, bob, parent):
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    worker.post(f"/v1/jobs/{first['pk']}/start", {})
    worker.post(f"/v1/jobs/{first['pk']}/progress/0.5", {})
    admin.delete(f"/v1/jobs/{parent['pk']}")
    step = bob.get(f"/v1/jobs/{first['pk']}").json
    assert step["status"] == "PENDING" and step["node"] is None and step["deletion_time"]
    meta_job = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert meta_job["progress"] == 0.0 and meta_job["deletion_time"] == step["deletion_time"]
    # The node's late calls change nothing, and nothing downstream is created.
    worker.post(f"/v1/jobs/{first['pk']}/progress/0.7", {}, status=403)
    assert worker.post(f"/v1/jobs/{first['pk']}/finish", {}).json["status"] == "PENDING"
    include = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}],
               "include_inactive": True}
    assert [step["template"]["name"] for step in admin.post("/v1/jobs/list", include).json] == ["produce"]

    admin.delete(f"/v1/jobs/{parent['pk']}/reinstate")
    work(worker, bob.get(f"/v1/jobs/{first['pk']}").json)
    work(worker, children_of(bob, parent)["consume"])
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "COMPLETED"


def test_hard_deleting_the_parent_deletes_its_steps(admin, alice, bob, parent):
    first = children_of(bob, parent)["produce"]
    admin.delete(f"/v1/jobs/{parent['pk']}/hard")
    bob.get(f"/v1/jobs/{first['pk']}", status=404)


def test_hard_deleting_the_parent_deletes_the_bytes_of_its_steps_outputs(admin, alice, bob, parent, wsgi_app):
    """The steps go by the database's ON DELETE CASCADE, which no session sees: the blob of a step's output was
    left behind if the clean-up looked only at the outputs of the job deleted (the meta-job has its own
    outputs only once its graph completes)."""
    import hashlib

    storage = wsgi_app.registry["ufdl.storage"]
    work(register(alice), children_of(bob, parent)["produce"], b"bytes of the first step")
    key = hashlib.sha256(b"bytes of the first step").hexdigest()
    assert storage.exists(key)
    admin.delete(f"/v1/jobs/{parent['pk']}/hard")
    assert not storage.exists(key)


PARALLEL = {"name": "parallel", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"nodes": {"a": {"name": "produce"}, "b": {"name": "produce"}}, "dependencies": []}}


@pytest.fixture
def parallel(admin, bob, pipeline):
    template = admin.post("/v1/job-templates/import", PARALLEL, status=201).json
    def make():
        job = bob.post(f"/v1/job-templates/{template['pk']}/create-job",
                       {"input_values": {"a:input": {"value": "x", "type": "str"},
                                         "b:input": {"value": "y", "type": "str"}}}, status=201).json
        body = {"expressions": [{"type": "exact", "field": "parent", "value": job["pk"]}]}
        # A child's description names its graph node ("a of job 7").
        children = {child["description"].split()[0]: child for child in bob.post("/v1/jobs/list", body).json}
        return job, children["a"], children["b"]
    return make


def test_the_parent_stays_failed_while_another_child_has_failed(alice, admin, bob, parallel):
    parent, a, b = parallel()
    first, second = register(alice), register(alice, "10.0.0.2")
    work(first, a, error="a broke")
    work(second, b, error="b broke")
    # The meta-job failed with the first child that failed: b's start and failure change nothing of it.
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "FAILED" and state["error_reason"] == f"child job {a['pk']} (a) failed: a broke"
    first.delete(f"/v1/jobs/{a['pk']}/reset")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "FAILED"  # b has still failed
    admin.delete(f"/v1/jobs/{a['pk']}/abort")  # nor does an abort of a child that is not the failed one
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "FAILED"
    second.delete(f"/v1/jobs/{b['pk']}/reset")  # the last failed child retried: back to work
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "RUNNING" and state["error_reason"] is None


def test_a_step_failed_by_its_last_lost_lease_fails_the_meta_job_as_a_system_failure(alice, bob, parent, engine):
    """The meta-job's error names the step's, and keeps its category: it was not the algorithm that failed."""
    from datetime import timedelta

    from sqlalchemy import update

    from ufdl_pyramid.models import Job, Node
    from ufdl_pyramid.models.meta import utcnow

    lost, poller = register(alice), register(alice, "10.0.0.2")
    step = children_of(bob, parent)["produce"]
    lost.get(f"/v1/jobs/{step['pk']}/acquire")
    lost.post(f"/v1/jobs/{step['pk']}/start", {})
    with engine.begin() as connection:  # its third lease (ufdl.max_tries) is about to be lost
        past = utcnow() - timedelta(hours=1)
        connection.execute(update(Node).where(Node.id == lost.node_id).values(last_seen=past))
        connection.execute(update(Job).where(Job.id == step["pk"]).values(last_status_change=past, lost_leases=2))
    poller.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    failed = bob.get(f"/v1/jobs/{step['pk']}").json
    assert (failed["status"], failed["error_category"]) == ("FAILED", "SYSTEM") and failed["end_time"]
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert (state["status"], state["error_category"]) == ("FAILED", "SYSTEM") and state["end_time"]
    assert state["error_reason"] == f"child job {step['pk']} (first) failed: {failed['error_reason']}"


def test_cancelling_a_failed_meta_job_cancels_its_failed_step_too(alice, bob, parallel):
    """A failed step would otherwise wait for its node's reset in a meta-job that is over."""
    parent, a, b = parallel()
    work(register(alice), a, error="a broke")
    assert bob.delete(f"/v1/jobs/{parent['pk']}/cancel").json["status"] == "CANCELED"
    assert [bob.get(f"/v1/jobs/{step['pk']}").json["status"] for step in (a, b)] == ["CANCELED", "CANCELED"]


def test_an_admins_abort_of_the_failed_child_sends_the_parent_back_to_work(alice, admin, bob, parallel):
    parent, a, b = parallel()
    work(register(alice), a, error="a broke")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "FAILED"
    admin.delete(f"/v1/jobs/{a['pk']}/abort")  # the failed child waits for a node again: the graph goes on
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "RUNNING" and state["error_reason"] is None and state["end_time"] is None
    assert bob.get(f"/v1/jobs/{a['pk']}").json["status"] == "PENDING"


def test_a_meta_job_is_aborted_through_its_children_not_itself(admin, bob, parent):
    refused = admin.delete(f"/v1/jobs/{parent['pk']}/abort", status=406).json["detail"]
    assert refused == f"Cannot abort job {parent['pk']}: abort or cancel its children instead"
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "PENDING"


def test_the_parents_progress_follows_a_child_back_to_its_start(alice, admin, bob, parallel):
    parent, a, b = parallel()
    worker = register(alice)
    worker.get(f"/v1/jobs/{a['pk']}/acquire")
    worker.post(f"/v1/jobs/{a['pk']}/start", {})
    worker.post(f"/v1/jobs/{a['pk']}/progress/1.0", {})
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["progress"] == 0.5
    admin.delete(f"/v1/jobs/{a['pk']}/abort")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["progress"] == 0.0


def test_an_output_of_another_type_is_not_wired(alice, bob, parent):
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    worker.post(f"/v1/jobs/{first['pk']}/start", {})
    # 'output' as a str: the consumer's input is a JobOutput<BLOB>.
    worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/output/str", body=b"x",
                   content_type="text/plain", status=201)
    worker.post(f"/v1/jobs/{first['pk']}/finish", {})
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "FAILED" and "without its output 'output' of type BLOB" in state["error_reason"]
    assert set(children_of(bob, parent)) == {"produce"}


def test_of_several_outputs_that_fit_the_first_added_is_wired(alice, bob, parent):
    """Two outputs 'output' of the step, both BLOBs (a Model is one): the next step gets the one added first."""
    from urllib.parse import quote

    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    worker.post(f"/v1/jobs/{first['pk']}/start", {})
    model = quote("Model<Domain<'ic'>, Framework<'numpy', '1.26'>>")
    added = [worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/output/{kind}", body=b"x",
                            content_type="application/data", status=201).json["pk"] for kind in (model, "BLOB")]
    worker.post(f"/v1/jobs/{first['pk']}/finish", {})
    assert children_of(bob, parent)["consume"]["input_values"]["input"]["value"] == added[0]


@pytest.fixture
def nested(admin, bob, pipeline):
    """A job of a graph whose one node is the pipeline graph: (the top job, the inner meta-job)."""
    outer = admin.post("/v1/job-templates/import", {
        "name": "outer", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"inner": {"name": "pipeline"}}, "dependencies": []}}, status=201).json
    top = bob.post(f"/v1/job-templates/{outer['pk']}/create-job",
                   {"input_values": {"inner:first:input": {"value": "words", "type": "str"}}}, status=201).json
    return top, children_of(bob, top)["pipeline"]


def test_a_graph_inside_a_graph_runs(alice, bob, nested):
    top, inner = nested
    worker = register(alice)
    work(worker, children_of(bob, inner)["produce"], b"one")
    work(worker, children_of(bob, inner)["consume"], b"two")
    assert bob.get(f"/v1/jobs/{inner['pk']}").json["status"] == "COMPLETED"
    finished = bob.get(f"/v1/jobs/{top['pk']}").json
    assert finished["status"] == "COMPLETED"
    assert sorted(out["name"] for out in finished["outputs"]) == ["inner:first:output", "inner:second:output"]


def test_a_graph_inside_a_graph_passes_each_change_of_its_step_up_to_the_top(admin, alice, bob, nested):
    """Each level follows the one below it: the inner meta-job and the outer one start with the first step, move
    with its progress, fail with it, go back to work with its reset and back to the start with its abort."""
    top, inner = nested
    step = children_of(bob, inner)["produce"]
    worker = register(alice)

    def states():
        return [(job["status"], job["progress"], job["error_reason"])
                for job in (bob.get(f"/v1/jobs/{pk}").json for pk in (inner["pk"], top["pk"]))]

    worker.get(f"/v1/jobs/{step['pk']}/acquire")
    worker.post(f"/v1/jobs/{step['pk']}/start", {})
    assert states() == [("RUNNING", 0.0, None), ("RUNNING", 0.0, None)]
    worker.post(f"/v1/jobs/{step['pk']}/progress/0.5", {})
    assert states() == [("RUNNING", 0.25, None), ("RUNNING", 0.25, None)]
    worker.post(f"/v1/jobs/{step['pk']}/finish", {"error": "disk full"})
    inner_failed = f"child job {step['pk']} (first) failed: disk full"
    assert states() == [("FAILED", 0.25, inner_failed),
                        ("FAILED", 0.25, f"child job {inner['pk']} (inner) failed: {inner_failed}")]
    worker.delete(f"/v1/jobs/{step['pk']}/reset")
    assert states() == [("RUNNING", 0.0, None), ("RUNNING", 0.0, None)]
    worker.post(f"/v1/jobs/{step['pk']}/start", {})
    worker.post(f"/v1/jobs/{step['pk']}/progress/1", {})
    assert states() == [("RUNNING", 0.5, None), ("RUNNING", 0.5, None)]
    admin.delete(f"/v1/jobs/{step['pk']}/abort")  # back to its start: so are both levels' progress
    assert states() == [("RUNNING", 0.0, None), ("RUNNING", 0.0, None)]


# Two branches: a -> c and b -> d, every step of the same two templates.
BRANCHES = {"name": "branches", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"nodes": {"a": {"name": "produce"}, "b": {"name": "produce"}, "c": {"name": "consume"},
                                   "d": {"name": "consume"}},
                         "dependencies": [{"from_node": "a", "from_output": "output", "to_node": "c",
                                           "to_input": "input"},
                                          {"from_node": "b", "from_output": "output", "to_node": "d",
                                           "to_input": "input"}]}}


@pytest.fixture
def branches(admin, bob, pipeline):
    """A meta-job of BRANCHES and a function answering its steps by graph node."""
    template = admin.post("/v1/job-templates/import", BRANCHES, status=201).json
    parent = bob.post(f"/v1/job-templates/{template['pk']}/create-job",
                      {"input_values": {"a:input": {"value": "x", "type": "str"},
                                        "b:input": {"value": "y", "type": "str"}}}, status=201).json
    body = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}]}
    return parent, lambda: {child["description"].split()[0]: child for child in bob.post("/v1/jobs/list", body).json}


def test_a_failed_meta_job_takes_no_further_step_until_its_failed_child_is_retried(alice, bob, branches):
    """b's finish must not create d while the meta-job has failed; once a is retried d is created, and c once a
    finishes."""
    parent, steps = branches
    first, second = register(alice), register(alice, "10.0.0.2")
    work(first, steps()["a"], error="a broke")
    work(second, steps()["b"], b"from b")
    assert set(steps()) == {"a", "b"}
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "FAILED" and state["error_reason"].endswith("a broke")
    first.delete(f"/v1/jobs/{steps()['a']['pk']}/reset")
    first.post(f"/v1/jobs/{steps()['a']['pk']}/start", {})
    first.request("POST", f"/v1/jobs/{steps()['a']['pk']}/outputs/output/BLOB", body=b"from a",
                  content_type="application/data", status=201)
    first.post(f"/v1/jobs/{steps()['a']['pk']}/finish", {})
    assert set(steps()) == {"a", "b", "c", "d"}
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "RUNNING"


def test_a_failed_meta_jobs_progress_still_follows_a_step_that_completes(alice, bob, parallel):
    """Its progress is the mean of its steps' whatever its status: b's reports moved it, so must b's finish."""
    parent, a, b = parallel()
    work(register(alice), a, error="a broke")
    work(register(alice, "10.0.0.2"), b)
    steps = [bob.get(f"/v1/jobs/{step['pk']}").json for step in (a, b)]
    assert [step["status"] for step in steps] == ["FAILED", "COMPLETED"] and steps[1]["progress"] == 1.0
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "FAILED" and state["progress"] == (steps[0]["progress"] + 1.0) / 2


def test_a_meta_job_failed_by_a_missing_output_stays_failed_when_a_step_that_had_not_failed_is_aborted(
        admin, alice, bob, branches):
    """No child has failed, yet the meta-job has (a finished without the output c needs): b sent back to wait
    for a node is no reason for it to go back to work."""
    parent, steps = branches
    first, second = register(alice), register(alice, "10.0.0.2")
    b = steps()["b"]
    second.get(f"/v1/jobs/{b['pk']}/acquire")
    second.post(f"/v1/jobs/{b['pk']}/start", {})
    work(first, steps()["a"], output=None)
    failed = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert failed["status"] == "FAILED" and "without its output 'output'" in failed["error_reason"]
    admin.delete(f"/v1/jobs/{b['pk']}/abort")
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert (state["status"], state["error_reason"]) == ("FAILED", failed["error_reason"])


def test_a_step_waits_for_its_own_predecessor_not_for_any_finished_sibling(admin, alice, bob, pipeline):
    template = admin.post("/v1/job-templates/import", BRANCHES, status=201).json
    parent = bob.post(f"/v1/job-templates/{template['pk']}/create-job",
                      {"input_values": {"a:input": {"value": "x", "type": "str"},
                                        "b:input": {"value": "y", "type": "str"}}}, status=201).json
    body = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}]}

    def steps():  # graph node -> its job ("c of job 7")
        return {child["description"].split()[0]: child for child in bob.post("/v1/jobs/list", body).json}

    worker = register(alice)
    assert set(steps()) == {"a", "b"}
    work(worker, steps()["b"], b"from b")
    # b's consumer is created, wired to b's output; a's consumer waits for a, though a 'produce' has finished.
    created = steps()
    assert set(created) == {"a", "b", "d"}
    b_output = next(out for out in bob.get(f"/v1/jobs/{created['b']['pk']}").json["outputs"])
    assert created["d"]["input_values"] == {"input": {"value": b_output["pk"], "type": "JobOutput<BLOB>"}}
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "RUNNING" and state["progress"] == 0.25

    work(worker, created["a"], b"from a")
    created = steps()
    a_output = next(out for out in bob.get(f"/v1/jobs/{created['a']['pk']}").json["outputs"])
    assert created["c"]["input_values"] == {"input": {"value": a_output["pk"], "type": "JobOutput<BLOB>"}}
    work(worker, created["d"], b"from d")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "RUNNING"  # c is still to run
    work(worker, created["c"], b"from c")
    finished = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert finished["status"] == "COMPLETED" and finished["progress"] == 1.0
    assert sorted(out["name"] for out in finished["outputs"]) == ["a:output", "b:output", "c:output", "d:output"]
    assert bob.get(f"/v1/jobs/{parent['pk']}/outputs/c:output/BLOB").body == b"from c"


def test_siblings_finishing_together_complete_the_parent(on_postgresql, alice, bob, parallel):
    """Each finish locks the parent: the later one sees the earlier's commit (else neither sees the other
    finished, and the parent runs for ever)."""
    import threading
    nodes = [register(alice, f"10.0.1.{i}") for i in range(2)]
    for _ in range(5):
        parent, *children = parallel()
        for node, child in zip(nodes, children):
            node.get(f"/v1/jobs/{child['pk']}/acquire")
            node.post(f"/v1/jobs/{child['pk']}/start", {})
            node.request("POST", f"/v1/jobs/{child['pk']}/outputs/output/BLOB", body=b"x",
                         content_type="application/data", status=201)
        barrier = threading.Barrier(2)

        def finish(node, child):
            barrier.wait()
            node.post(f"/v1/jobs/{child['pk']}/finish", {})

        threads = [threading.Thread(target=finish, args=pair) for pair in zip(nodes, children)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "COMPLETED"


def test_child_notification_overrides_name_a_graph_node_or_a_child_template(bob, pipeline):
    body = {"input_values": {"first:input": {"value": "w", "type": "str"}}}
    for key in ("first", "consume"):
        bob.post(f"/v1/job-templates/{pipeline['pk']}/create-job",
                 {**body, "child_notification_overrides": {key: {"keep_default": True}}}, status=201)
    refused = bob.post(f"/v1/job-templates/{pipeline['pk']}/create-job",
                       {**body, "child_notification_overrides": {"nosuch": {}}}, status=400)
    assert "nosuch is no child" in refused.json["detail"]


def test_a_child_template_deleted_while_the_graph_runs_fails_the_parent(admin, alice, bob, parent):
    consume = next(row for row in admin.post("/v1/job-templates/list").json if row["name"] == "consume")
    admin.delete(f"/v1/job-templates/{consume['pk']}")
    # The producer's finish still goes through (it was refused before, for ever): the next step cannot be taken.
    finished = work(register(alice), children_of(bob, parent)["produce"])
    assert finished["status"] == "COMPLETED"
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "FAILED" and "was deleted" in state["error_reason"]


def test_a_first_step_of_an_inner_graph_deleted_while_the_graph_runs_fails_the_parent(admin, alice, bob, pipeline):
    """The next step is a graph whose own first step's template was deleted: the finish that leads to it was
    refused (400, for ever: the node could not end the job) while the inner graph's template was still active."""
    admin.post("/v1/job-templates/import", {
        "name": "inner", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"step": {"name": "consume"}}, "dependencies": []}}, status=201)
    outer = admin.post("/v1/job-templates/import", {
        "name": "outer", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"first": {"name": "produce"}, "then": {"name": "inner"}},
                     "dependencies": [{"from_node": "first", "from_output": "output", "to_node": "then",
                                       "to_input": "step:input"}]}}, status=201).json
    top = bob.post(f"/v1/job-templates/{outer['pk']}/create-job",
                   {"input_values": {"first:input": {"value": "words", "type": "str"}}}, status=201).json
    consume = next(row for row in admin.post("/v1/job-templates/list").json if row["name"] == "consume")
    admin.delete(f"/v1/job-templates/{consume['pk']}")
    assert work(register(alice), children_of(bob, top)["produce"])["status"] == "COMPLETED"
    state = bob.get(f"/v1/jobs/{top['pk']}").json
    assert state["status"] == "FAILED" and state["error_category"] == "SYSTEM"
    assert "'consume' version 1 of graph node then was deleted" in state["error_reason"]
    assert set(children_of(bob, top)) == {"produce"}  # no half-made inner graph


def test_the_meta_jobs_outputs_keep_their_bytes_when_a_steps_output_is_deleted_for_good_as_it_completes(
        on_postgresql, monkeypatch, engine, wsgi_app, admin, alice, bob, pipeline):
    """The meta-job's completion copies its steps' output rows, which share their blobs: it holds the blobs'
    locks from its read of them to its commit, so the clean-up after an admin's deletion for good of a step's
    output, at that moment, sees the copy. Before, it deleted the blob, and the meta-job's output had no bytes."""
    import threading

    from sqlalchemy import text

    from test_job_concurrency import wait_until_done_or_blocked
    from ufdl_pyramid.services import job_lifecycle

    single = admin.post("/v1/job-templates/import", {**PARALLEL, "name": "single", "specific": {
        "nodes": {"only": {"name": "produce"}}, "dependencies": []}}, status=201).json
    parent = bob.post(f"/v1/job-templates/{single['pk']}/create-job",
                      {"input_values": {"only:input": {"value": "x", "type": "str"}}}, status=201).json
    step = children_of(bob, parent)["produce"]
    node = register(alice)
    node.get(f"/v1/jobs/{step['pk']}/acquire")
    node.post(f"/v1/jobs/{step['pk']}/start", {})
    output = node.request("POST", f"/v1/jobs/{step['pk']}/outputs/output/BLOB", body=b"the step's bytes",
                          status=201).json
    record_event = job_lifecycle.record_event
    paused, go = threading.Event(), threading.Event()

    def pausing(db, job, transition, **kwargs):  # the meta-job's finish, its outputs copied, before its commit
        if job.id == parent["pk"] and transition == "finish":
            paused.set()
            assert go.wait(60)
        return record_event(db, job, transition, **kwargs)

    monkeypatch.setattr(job_lifecycle, "record_event", pausing)
    answers = {}
    finishing = threading.Thread(target=lambda: answers.setdefault("finish", node.post(
        f"/v1/jobs/{step['pk']}/finish", {}, status="*").status_int))
    finishing.start()
    try:
        assert paused.wait(60)
        deleting = threading.Thread(target=lambda: answers.setdefault("delete", admin.delete(
            f"/v1/job-outputs/{output['pk']}/hard", status="*").status_int))
        deleting.start()
        wait_until_done_or_blocked(engine, deleting)
    finally:
        go.set()
    finishing.join(60)
    deleting.join(60)
    assert answers == {"finish": 200, "delete": 200}
    finished = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert finished["status"] == "COMPLETED" and [o["name"] for o in finished["outputs"]] == ["only:output"]
    storage = wsgi_app.registry["ufdl.storage"]
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT blob_key FROM job_outputs")).scalars().all()
    assert keys and all(storage.exists(key) for key in keys)
    assert bob.get(f"/v1/jobs/{parent['pk']}/outputs/only:output/BLOB").body == b"the step's bytes"


def test_a_graph_wires_an_output_of_an_inner_graph_and_an_input_of_one(admin, alice, bob, pipeline):
    """An inner meta-job's outputs and inputs are named ``step:name``: a dependency can name them, so a graph
    can feed a graph and use what it produced (the identifiers used to refuse the colon)."""
    admin.post("/v1/job-templates/import", {
        "name": "relay", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"a": {"name": "consume"}, "b": {"name": "consume"}},
                     "dependencies": [{"from_node": "a", "from_output": "output", "to_node": "b",
                                       "to_input": "input"}]}}, status=201)
    outer = admin.post("/v1/job-templates/import", {
        "name": "around", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"before": {"name": "produce"}, "inner": {"name": "relay"},
                               "after": {"name": "consume"}},
                     "dependencies": [
                         {"from_node": "before", "from_output": "output", "to_node": "inner", "to_input": "a:input"},
                         {"from_node": "inner", "from_output": "b:output", "to_node": "after",
                          "to_input": "input"}]}}, status=201).json
    assert sorted(admin.get(f"/v1/job-templates/{outer['pk']}/get-inputs").json) == ["before:input"]
    top = bob.post(f"/v1/job-templates/{outer['pk']}/create-job",
                   {"input_values": {"before:input": {"value": "words", "type": "str"}}}, status=201).json
    worker = register(alice)
    produced = work(worker, children_of(bob, top)["produce"], b"one")["outputs"][0]["pk"]
    inner = children_of(bob, top)["relay"]
    assert inner["input_values"] == {"a:input": {"value": produced, "type": "JobOutput<BLOB>"}}
    # The inner graph hands the wired value on to its own first step.
    (first,) = bob.post("/v1/jobs/list", {"expressions": [
        {"type": "exact", "field": "parent", "value": inner["pk"]}]}).json
    assert first["input_values"] == {"input": {"value": produced, "type": "JobOutput<BLOB>"}}
    work(worker, first, b"two")
    second = next(job for job in bob.post("/v1/jobs/list", {"expressions": [
        {"type": "exact", "field": "parent", "value": inner["pk"]}]}).json if job["pk"] != first["pk"])
    work(worker, second, b"three")
    copied = {output["name"]: output for output in bob.get(f"/v1/jobs/{inner['pk']}").json["outputs"]}
    after = children_of(bob, top)["consume"]
    assert after["input_values"] == {"input": {"value": copied["b:output"]["pk"], "type": "JobOutput<BLOB>"}}
    work(worker, after, b"four")
    assert bob.get(f"/v1/jobs/{top['pk']}").json["status"] == "COMPLETED"


def test_a_dependency_naming_no_input_or_output_of_an_inner_graph_is_refused(admin, pipeline):
    def refusal(dependency):
        document = {"name": "badly-wired", "version": 1, "scope": "public", "licence": "MIT",
                    "specific": {"nodes": {"inner": {"name": "pipeline"}, "after": {"name": "consume"}},
                                 "dependencies": [dependency]}}
        return admin.post("/v1/job-templates/import", document, status=400).json["detail"]

    wire = {"from_node": "inner", "to_node": "after", "to_input": "input"}
    assert refusal({**wire, "from_output": "second:nothing"}) == \
        "specific.dependencies[0].from_output: template 'pipeline' has no output 'second:nothing'"
    for name in ("second:", ":output", "second::output", "second:out put"):
        assert refusal({**wire, "from_output": name}) == f"specific.dependencies[0].from_output: {name!r} must be " \
            "an input or output name: an identifier, or for an inner graph's 'step:name'"
    assert refusal({"from_node": "after", "from_output": "output", "to_node": "inner", "to_input": "first:nothing"}) \
        == "specific.dependencies[0].to_input: template 'pipeline' has no input 'first:nothing'"


def test_graphs_nest_fifty_deep_and_no_deeper(admin, alice, bob):
    """Hundreds of levels exhausted Python's stack on create-job (a 500): import refuses a 51st level, and a job
    of the deepest graph allowed runs, completes and is deleted for good through every level."""
    from ufdl_pyramid.services.templates import MAX_NESTING

    admin.post("/v1/job-templates/import", PRODUCE, status=201)
    inner, input_name = "produce", "input"

    def graph_around(name, child):
        return {"name": name, "version": 1, "scope": "public", "licence": "MIT",
                "specific": {"nodes": {"s": {"name": child}}, "dependencies": []}}

    for depth in range(1, MAX_NESTING + 1):
        deepest = admin.post("/v1/job-templates/import", graph_around(f"level{depth}", inner), status=201).json
        inner, input_name = f"level{depth}", f"s:{input_name}"
    refusal = admin.post("/v1/job-templates/import", graph_around("too-deep", inner), status=400).json
    assert refusal["detail"].startswith(f"specific.nodes: graphs nest at most {MAX_NESTING} deep")
    # Two graphs, each allowed, cannot be joined into one beyond the limit either.
    admin.post("/v1/job-templates/import", {
        "name": "side-by-side", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"a": {"name": "level1"}, "b": {"name": inner}}, "dependencies": []}}, status=400)

    top = bob.post(f"/v1/job-templates/{deepest['pk']}/create-job",
                   {"input_values": {input_name: {"value": "w", "type": "str"}}}, status=201).json
    (leaf,) = bob.post("/v1/jobs/list", {"expressions": [
        {"type": "exact", "field": "template.name", "value": "produce"}]}).json
    work(register(alice), leaf)
    finished = bob.get(f"/v1/jobs/{top['pk']}").json
    assert finished["status"] == "COMPLETED" and [output["name"] for output in finished["outputs"]] == \
        [input_name.replace("input", "output")]
    admin.delete(f"/v1/jobs/{top['pk']}/hard")
    assert bob.post("/v1/jobs/list", {"include_inactive": True}).json == []


def test_a_graph_node_name_ending_in_a_newline_is_refused(admin, pipeline):
    # The patterns' "$" matched before a final newline: a node "first\n" was taken, and its job's output
    # "first\n:output" then put the newline in the download's Content-Disposition header (a 500).
    graph = {"nodes": {"first\n": {"name": "produce"}, "second": {"name": "consume"}},
             "dependencies": [{"from_node": "first\n", "from_output": "output", "to_node": "second",
                               "to_input": "input"}]}
    refused = admin.post("/v1/job-templates/import", {**PIPELINE, "name": "newline", "specific": graph}, status=400)
    assert "specific." in refused.json["detail"]


def test_a_graph_whose_outputs_would_bear_names_too_long_to_store_is_refused(admin, pipeline):
    """The meta-job carries its steps' outputs as ``node:name``: past 200 characters the completion failed on
    PostgreSQL (a 500 on the last step's finish, again on each retry)."""
    def graph(node):
        return {"name": "long-named", "version": 1, "scope": "public", "licence": "MIT",
                "specific": {"nodes": {node: {"name": "pipeline"}}, "dependencies": []}}

    longest = "n" * (200 - len(":second:output"))
    assert admin.post("/v1/job-templates/import", graph(longest + "n"), status=400).json["detail"] == \
        f"specific.nodes.{longest}n: the graph's output '{longest}n:second:output' would be longer than an " \
        "output name may be (200 characters)"
    outputs = admin.post("/v1/job-templates/import", graph(longest), status=201).json["outputs"]
    assert sorted(map(len, outputs)) == [199, 200]


def test_a_step_cannot_add_an_output_whose_copy_in_its_meta_job_would_be_too_long(alice, bob, parent, nested):
    """Any output a step adds is copied, not only its template's: one of 200 characters became 'first:' and 200 in
    the meta-job, and the last step's finish was a 500 on PostgreSQL (again on each retry), the graph stuck."""
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    worker.post(f"/v1/jobs/{first['pk']}/start", {})
    longest = "y" * (200 - len("first:"))
    refused = worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/{longest}y/BLOB", body=b"y", status=400)
    assert refused.json["detail"].startswith(f"Invalid output name '{longest}y': job {first['pk']} is a step of a "
                                             "graph, whose meta-job would carry it as 'first:yyy")
    worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/{longest}/BLOB", body=b"y", status=201)
    worker.request("POST", f"/v1/jobs/{first['pk']}/outputs/output/BLOB", body=b"x", status=201)
    worker.post(f"/v1/jobs/{first['pk']}/finish", {})
    work(worker, children_of(bob, parent)["consume"], b"from second")
    finished = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert finished["status"] == "COMPLETED" and f"first:{longest}" in [out["name"] for out in finished["outputs"]]
    # Up a nested graph, each meta-job adds its node's name.
    top, inner = nested
    step = children_of(bob, inner)["produce"]
    worker.get(f"/v1/jobs/{step['pk']}/acquire")
    worker.post(f"/v1/jobs/{step['pk']}/start", {})
    assert "'inner:first:yyy" in worker.request("POST", f"/v1/jobs/{step['pk']}/outputs/{longest}/BLOB",
                                                 body=b"y", status=400).json["detail"]
    worker.request("POST", f"/v1/jobs/{step['pk']}/outputs/{'y' * (200 - len('inner:first:'))}/BLOB", body=b"y",
                   status=201)


def test_the_job_launchers_poll_filter_finds_the_workable_jobs_a_node_may_take(alice, bob, parent, pipeline):
    """ufdl-job-launcher polls ``POST /v1/jobs/list`` with Django's names for the template's sub-records
    (``template.workabletemplate``): they were unknown fields (400), so the launcher never found a job."""
    worker = register(alice)
    first = children_of(bob, parent)["produce"]
    # As the launcher's generate_filter sends it: IsNull(...) & ... & ~IsNull("template.workabletemplate").
    poll = {"expressions": [{"type": "and", "sub_expressions": [
        {"type": "isnull", "field": "start_time"}, {"type": "isnull", "field": "error_reason"},
        {"type": "isnull", "field": "node"}, {"type": "isnull", "field": "template.workabletemplate",
                                               "invert": True}]}]}
    assert [job["pk"] for job in worker.post("/v1/jobs/list", poll).json] == [first["pk"]]
    metas = {"expressions": [{"type": "isnull", "field": "template.metatemplate", "invert": True}]}
    assert [job["pk"] for job in worker.post("/v1/jobs/list", metas).json] == [parent["pk"]]
    # The field is the template's pk when it is of that kind (Django's reverse one-to-one), else null.
    exact = {"expressions": [{"type": "exact", "field": "template.metatemplate", "value": pipeline["pk"]}]}
    assert [job["pk"] for job in worker.post("/v1/jobs/list", exact).json] == [parent["pk"]]
    templates = {"expressions": [{"type": "isnull", "field": "workabletemplate"}]}
    assert [t["pk"] for t in worker.post("/v1/job-templates/list", templates).json] == [pipeline["pk"]]
    # Acquired, the job leaves the poll's answer.
    worker.get(f"/v1/jobs/{first['pk']}/acquire")
    assert worker.post("/v1/jobs/list", poll).json == []
    # A value that is no pk is refused like any integer field's.
    wrong = {"expressions": [{"type": "exact", "field": "template.workabletemplate", "value": "yes"}]}
    assert "is an integer" in worker.post("/v1/jobs/list", wrong, status=400).json["detail"]


def test_a_graph_runs_at_most_a_thousand_steps_in_all(admin, bob):
    """Graphs of graphs multiply: ten graphs of ten graphs of ten steps is a thousand jobs, which is allowed;
    twice that is refused at import, as create-job would otherwise make them all, level by level."""
    from ufdl_pyramid.services.templates import MAX_STEPS

    admin.post("/v1/job-templates/import", PRODUCE, status=201)

    def graph(name, child, width):
        return {"name": name, "version": 1, "scope": "public", "licence": "MIT",
                "specific": {"nodes": {f"n{i}": {"name": child} for i in range(width)}, "dependencies": []}}

    for name, child in (("tens", "produce"), ("hundreds", "tens"), ("thousand", "hundreds")):
        imported = admin.post("/v1/job-templates/import", graph(name, child, 10), status=201).json
    assert MAX_STEPS == 1000 and len(imported["inputs"]) == 1000
    refusal = admin.post("/v1/job-templates/import", graph("two-thousand", "thousand", 2), status=400).json
    assert refusal["detail"] == "specific.nodes: a graph runs at most 1000 workable steps in all, its inner " \
        "graphs' included; this one would run 2000"
    # Beside a graph of a thousand, one more step is one too many.
    admin.post("/v1/job-templates/import", {
        "name": "one-more", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"a": {"name": "thousand"}, "b": {"name": "produce"}}, "dependencies": []}},
        status=400)


def test_a_meta_job_back_at_work_creates_the_steps_whose_predecessors_completed_while_it_had_failed(
        admin, alice, bob, branches):
    """b finished while the meta-job had failed (a broke), so d was not created then. Once a is retried the
    meta-job is back at work and d can run beside a: it must not wait for a, which is not its predecessor."""
    parent, steps = branches
    first, second = register(alice), register(alice, "10.0.0.2")
    work(first, steps()["a"], error="a broke")
    work(second, steps()["b"], b"from b")
    assert set(steps()) == {"a", "b"}
    first.delete(f"/v1/jobs/{steps()['a']['pk']}/reset")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "RUNNING"
    created = steps()
    assert set(created) == {"a", "b", "d"}
    b_output = bob.get(f"/v1/jobs/{created['b']['pk']}").json["outputs"][0]
    assert created["d"]["input_values"] == {"input": {"value": b_output["pk"], "type": "JobOutput<BLOB>"}}
    # d runs while a is still to run again, then a and c: the meta-job completes.
    work(second, created["d"], b"from d")
    first.post(f"/v1/jobs/{created['a']['pk']}/start", {})
    first.request("POST", f"/v1/jobs/{created['a']['pk']}/outputs/output/BLOB", body=b"from a",
                  content_type="application/data", status=201)
    first.post(f"/v1/jobs/{created['a']['pk']}/finish", {})
    work(first, steps()["c"], b"from c")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "COMPLETED"


def test_an_admins_abort_of_the_failed_step_creates_the_steps_that_became_ready_meanwhile(
        admin, alice, bob, branches):
    """As for a reset: the meta-job goes back to work, so b's successor is created at once."""
    parent, steps = branches
    work(register(alice), steps()["a"], error="a broke")
    work(register(alice, "10.0.0.2"), steps()["b"], b"from b")
    admin.delete(f"/v1/jobs/{steps()['a']['pk']}/abort")
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "RUNNING"
    assert set(steps()) == {"a", "b", "d"}


def test_a_step_created_while_its_meta_job_is_deleted_is_deleted_with_it(admin, alice, bob, branches):
    """An admin may still abort a failed step after its meta-job was deleted (its node may not reset it): the
    meta-job goes back to work and creates the step that became ready meanwhile, which no node may take before
    the meta-job is reinstated."""
    parent, steps = branches
    first, second = register(alice), register(alice, "10.0.0.2")
    a = work(first, steps()["a"], error="a broke")
    work(second, steps()["b"], b"from b")
    deleted = admin.delete(f"/v1/jobs/{parent['pk']}").json["deletion_time"]
    first.delete(f"/v1/jobs/{a['pk']}/reset", status=406)
    admin.delete(f"/v1/jobs/{a['pk']}/abort")
    include = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}],
               "include_inactive": True}
    d = next(step for step in bob.post("/v1/jobs/list", include).json if step["description"].startswith("d "))
    assert d["deletion_time"] == deleted
    second.post("/v1/jobs/acquire-next", {"executors": ["tests.Consume"]}, status=204)
    admin.delete(f"/v1/jobs/{parent['pk']}/reinstate")
    assert bob.get(f"/v1/jobs/{d['pk']}").json["deletion_time"] is None
    assert second.post("/v1/jobs/acquire-next", {"executors": ["tests.Consume"]}).json["pk"] == d["pk"]


def test_a_meta_job_failed_before_any_step_started_goes_back_to_pending_and_starts_with_its_step(
        admin, alice, bob, parent, engine):
    """A queued step whose last lease is lost fails the meta-job before any step started. The admin's abort of it
    sends the meta-job back to where it was, PENDING with no start time, and it starts with the step (it went to
    RUNNING with no start time, which it then kept through to its completion)."""
    from datetime import timedelta

    from sqlalchemy import update

    from ufdl_pyramid.models import Job, Node
    from ufdl_pyramid.models.meta import utcnow

    lost, worker = register(alice), register(alice, "10.0.0.2")
    step = children_of(bob, parent)["produce"]
    lost.get(f"/v1/jobs/{step['pk']}/acquire")
    with engine.begin() as connection:  # its third lease (ufdl.max_tries) is about to be lost, before its start
        past = utcnow() - timedelta(hours=1)
        connection.execute(update(Node).where(Node.id == lost.node_id).values(last_seen=past))
        connection.execute(update(Job).where(Job.id == step["pk"]).values(last_status_change=past, lost_leases=2))
    worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert (state["status"], state["start_time"]) == ("FAILED", None)
    admin.delete(f"/v1/jobs/{step['pk']}/abort")
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert (state["status"], state["start_time"], state["error_reason"]) == ("PENDING", None, None)
    work(worker, step)
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert state["status"] == "RUNNING" and state["start_time"] is not None


def test_a_meta_job_failed_before_any_step_started_goes_back_to_running_if_a_step_started_meanwhile(
        admin, alice, bob, parallel, engine):
    """As above, but another step started while the meta-job had failed: the abort of the failed step sends it
    back to RUNNING, not PENDING (it said PENDING, with no start time, while its step ran)."""
    from datetime import timedelta

    from sqlalchemy import update

    from ufdl_pyramid.models import Job, Node
    from ufdl_pyramid.models.meta import utcnow

    parent, a, b = parallel()
    lost, worker = register(alice), register(alice, "10.0.0.2")
    lost.get(f"/v1/jobs/{a['pk']}/acquire")
    with engine.begin() as connection:  # its third lease (ufdl.max_tries) is about to be lost, before its start
        past = utcnow() - timedelta(hours=1)
        connection.execute(update(Node).where(Node.id == lost.node_id).values(last_seen=past))
        connection.execute(update(Job).where(Job.id == a["pk"]).values(last_status_change=past, lost_leases=2))
    worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    assert bob.get(f"/v1/jobs/{parent['pk']}").json["status"] == "FAILED"
    worker.get(f"/v1/jobs/{b['pk']}/acquire")
    worker.post(f"/v1/jobs/{b['pk']}/start", {})
    started = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert started["status"] == "FAILED" and started["start_time"] is not None  # its work began
    admin.delete(f"/v1/jobs/{a['pk']}/abort")
    state = bob.get(f"/v1/jobs/{parent['pk']}").json
    assert (state["status"], state["start_time"]) == ("RUNNING", started["start_time"])
