"""The node lifecycle of jobs (seed 003) through HTTP: every transition, its preconditions and permissions."""
import json
import logging

import pytest


def path(job, action=""):
    return f"/v1/jobs/{job['pk']}" + (f"/{action}" if action else "")


def run_to_running(worker, job):
    worker.get(path(job, "acquire"))
    return worker.post(path(job, "start"), {}).json


def test_a_successful_lifecycle(worker, bob, job):
    assert job["status"] == "PENDING" and job["node"] is None and job["start_time"] is None

    acquired = worker.get(path(job, "acquire")).json
    assert acquired["status"] == "QUEUED" and acquired["node"] == worker.node_id
    assert acquired["last_status_change"] >= job["last_status_change"]

    started = worker.post(path(job, "start"), {"send_notification": "email"}).json
    assert started["status"] == "RUNNING" and started["start_time"] is not None
    assert bob.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == job["pk"]

    for value in ("0", "0.25", "5e-1", "1e-05", "1", "1.0"):
        progressed = worker.post(path(job, f"progress/{value}"), {"epoch": 1}).json
        assert progressed["progress"] == float(value) and progressed["status"] == "RUNNING"

    finished = worker.post(path(job, "finish"), {"success": True}).json
    assert finished["status"] == "COMPLETED" and finished["end_time"] is not None
    assert finished["progress"] == 1.0 and finished["error_reason"] is None and finished["node"] == worker.node_id
    assert bob.get(f"/v1/nodes/{worker.node_id}").json["current_job"] is None
    assert bob.get(path(job)).json == finished


def test_error_reset_and_retry(worker, job):
    run_to_running(worker, job)
    worker.post(path(job, "progress/0.5"), {})
    worker.request("POST", path(job, "outputs/partial/str"), body=b"half", status=201)
    failed = worker.post(path(job, "finish"), {"error": "out of memory"}).json
    assert failed["status"] == "FAILED" and failed["error_reason"] == "out of memory"
    assert failed["error_category"] == "ALGORITHM" and [output["name"] for output in failed["outputs"]] == ["partial"]
    # The retry starts afresh: nothing of the failed run is left (its output would pass for the retry's).
    reset = worker.delete(path(job, "reset")).json
    assert reset["status"] == "QUEUED" and reset["node"] == worker.node_id
    assert reset["error_reason"] is None and reset["start_time"] is None and reset["progress"] == 0
    assert reset["outputs"] == [] and reset["end_time"] is None
    assert worker.get(path(job)).json == reset
    worker.post(path(job, "start"), {})
    assert worker.post(path(job, "finish"), {}).json["status"] == "COMPLETED"



def error_events(engine, job) -> list:
    from sqlalchemy import text
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT transition_data FROM job_events WHERE job_id = :job "
                                       "AND transition = 'error' ORDER BY id"), {"job": job["pk"]}).scalars()
        return [json.loads(data) if isinstance(data, str) else data for data in rows]


@pytest.mark.parametrize("body, category", [({"error": "bad pixels", "error_category": "DATA"}, "DATA"),
                                            ({"error": "crashed", "error_category": "ALGORITHM"}, "ALGORITHM"),
                                            ({"error": "crashed"}, "ALGORITHM")])
def test_a_failing_finish_gives_the_error_category(worker, job, engine, body, category):
    run_to_running(worker, job)
    failed = worker.post(path(job, "finish"), body).json
    assert (failed["status"], failed["error_reason"], failed["error_category"]) == ("FAILED", body["error"], category)
    assert worker.get(path(job)).json == failed
    assert error_events(engine, job) == [{"category": category}]


@pytest.mark.parametrize("body, detail", [
    ({"error": "lost", "error_category": "SYSTEM"}, "error_category: 'SYSTEM' is not one of ['ALGORITHM', 'DATA']"),
    ({"error": "x", "error_category": "data"}, "error_category: 'data' is not one of"),
    ({"error": "x", "error_category": None}, "error_category: None is not one of"),
    ({"error": "x", "error_category": 5}, "error_category: 5 is not one of"),
    ({"error_category": "DATA"}, "error_category: it goes with an error"),
    ({"error": None, "error_category": "DATA"}, "error_category: it goes with an error"),
])
def test_a_finish_with_a_wrong_error_category_is_400_and_changes_nothing(worker, job, engine, body, detail):
    running = run_to_running(worker, job)
    assert worker.post(path(job, "finish"), body, status=400).json["detail"].startswith(detail)
    assert worker.get(path(job)).json == running
    assert error_events(engine, job) == []


def test_release(worker, other_worker, job):
    worker.get(path(job, "acquire"))
    released = worker.delete(path(job, "release")).json
    assert released["status"] == "PENDING" and released["node"] is None
    assert other_worker.get(path(job, "acquire")).json["node"] == other_worker.node_id
    other_worker.post(path(job, "start"), {})
    other_worker.delete(path(job, "release"), status=406)
    other_worker.post(path(job, "finish"), {"error": "broken"})
    released = other_worker.delete(path(job, "release")).json
    assert released["status"] == "FAILED" and released["node"] is None


def test_acquiring_twice_and_acquiring_a_held_job(worker, other_worker, job):
    first = worker.get(path(job, "acquire")).json
    assert worker.get(path(job, "acquire")).json == first  # the holder again: a no-op
    response = other_worker.get(path(job, "acquire"), status=406)
    assert response.json == {"detail": f"Cannot acquire job {job['pk']}: node {worker.node_id} holds it"}
    # It still holds a job that failed (until it resets or releases it): asking again changes nothing.
    worker.post(path(job, "start"), {})
    failed = worker.post(path(job, "finish"), {"error": "boom"}).json
    assert worker.get(path(job, "acquire")).json == failed and failed["status"] == "FAILED"


def test_acquiring_an_ended_job_another_node_worked_names_its_state(admin, worker, other_worker, make_job):
    """A completed or cancelled job keeps the node that worked it, which no longer holds it: the 406 says why it
    cannot be taken (it said 'node N holds it')."""
    for end, status in (("finish", "COMPLETED"), ("cancel", "CANCELED")):
        job = make_job()
        worker.get(path(job, "acquire"))
        worker.post(path(job, "start"), {})
        if end == "finish":
            worker.post(path(job, "finish"), {})
        else:
            admin.delete(path(job, "cancel"))
        response = other_worker.get(path(job, "acquire"), status=406)
        assert response.json == {"detail": f"Cannot acquire job {job['pk']}: it is {status}"}


def test_abort_by_admin_and_the_running_nodes_late_finish(admin, worker, other_worker, bob, job):
    run_to_running(worker, job)
    bob.delete(path(job, "abort"), status=403)
    aborted = admin.delete(path(job, "abort")).json
    assert aborted["status"] == "PENDING" and aborted["node"] is None and aborted["start_time"] is None
    # Only the node it was taken from may send that finish: another node's is refused.
    other_worker.post(path(job, "finish"), {}, status=403)
    # The node that was running it finishes later: 2xx, nothing changes, and the node is free again.
    late = worker.post(path(job, "finish"), {}).json
    assert late == admin.get(path(job)).json and late["status"] == "PENDING"
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] is None


def test_cancel_by_creator_or_admin_only(admin, alice, bob, worker, make_job):
    first, second = make_job(), make_job()
    alice.delete(path(first, "cancel"), status=403)
    cancelled = bob.delete(path(first, "cancel")).json
    assert cancelled["status"] == "CANCELED" and cancelled["is_cancelled"] is True
    bob.delete(path(first, "cancel"), status=406)
    worker.get(path(first, "acquire"), status=406)
    run_to_running(worker, second)
    assert admin.delete(path(second, "cancel")).json["status"] == "CANCELED"
    worker.post(path(second, "progress/0.5"), {}, status=406)
    assert worker.post(path(second, "finish"), {}).json["status"] == "CANCELED"
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] is None


def test_a_failed_job_may_be_cancelled(bob, worker, job):
    """A failed job waits for its node's reset or for its creator: the creator may give it up."""
    run_to_running(worker, job)
    failed = worker.post(path(job, "finish"), {"error": "boom"}).json
    cancelled = bob.delete(path(job, "cancel")).json
    assert cancelled["status"] == "CANCELED" and cancelled["is_cancelled"] is True
    # It ended when it failed: the cancel keeps that time (and the reason).
    assert (cancelled["end_time"], cancelled["error_reason"]) == (failed["end_time"], "boom")
    assert "it is CANCELED" in worker.delete(path(job, "reset"), status=406).json["detail"]


def test_the_holder_may_finish_a_job_cancelled_before_it_started(bob, worker, job):
    worker.get(path(job, "acquire"))
    cancelled = bob.delete(path(job, "cancel")).json
    # The node still holds it (it never started): its finish is answered like a running job's, unchanged.
    assert worker.post(path(job, "finish"), {}).json == cancelled == worker.get(path(job)).json


def test_acquire_is_a_get_that_head_does_not_run(worker, job):
    refused = worker.request("HEAD", path(job, "acquire"), status=405)
    assert refused.headers["Allow"] == "GET"
    # Nor does another method's 405 offer HEAD there (it said "GET, HEAD").
    assert worker.post(path(job, "acquire"), {}, status=405).headers["Allow"] == "GET"
    assert worker.get(path(job)).json["status"] == "PENDING"


def test_wrong_state_calls_answer_406_and_change_nothing(worker, job):
    before = worker.get(path(job)).json
    worker.post(path(job, "start"), {}, status=403)  # not acquired: this node does not hold it
    worker.get(path(job, "acquire"))
    queued = worker.get(path(job)).json
    for method, action in (("POST", "progress/0.5"), ("POST", "finish"), ("DELETE", "reset")):
        response = worker.request(method, path(job, action), {} if method == "POST" else None, status=406)
        assert "it is QUEUED" in response.json["detail"]
    assert worker.get(path(job)).json == queued
    worker.post(path(job, "start"), {})
    for method, action in (("DELETE", "release"), ("DELETE", "reset"), ("POST", "start")):
        worker.request(method, path(job, action), {} if method == "POST" else None, status=406)
    assert before["status"] == "PENDING"


def test_wrong_node_and_no_node_are_403(worker, other_worker, alice, job):
    run_to_running(worker, job)
    state = worker.get(path(job)).json
    for client in (other_worker, alice):
        for method, action in (("POST", "progress/0.5"), ("POST", "finish"), ("DELETE", "release"),
                               ("DELETE", "reset"), ("POST", "start")):
            client.request(method, path(job, action), {} if method == "POST" else None, status=403)
    alice.get(path(job, "acquire"), status=403)
    assert worker.get(path(job)).json == state
    # A Node-Id past what an id column holds names no node (and reaches no SQL): refused as malformed.
    for header in ("2147483648", "99999999999999999999", "\u0661"):
        alice.get(path(job), headers={"Node-Id": header}, status=400)
    # The largest that fits is a node's pk like any other: this one does not exist.
    refused = alice.get(path(job), headers={"Node-Id": "2147483647"}, status=403).json
    assert refused == {"detail": "Node 2147483647 does not exist"}
    assert worker.get(path(job)).json == state


def test_an_action_path_with_segments_past_it_is_404_and_changes_nothing(admin, bob, worker, job):
    # Upstream's URL patterns end with the action; traversal left the extra segments to the action's view, which
    # ran: DELETE /v1/jobs/{pk}/hard/anything deleted the job for good.
    before = bob.get(path(job)).json
    for client, method, action in ((worker, "GET", "acquire/1"), (bob, "DELETE", "cancel/x"),
                                   (admin, "DELETE", "abort/x"), (admin, "DELETE", "hard/7"),
                                   (admin, "DELETE", "reinstate/x")):
        refused = client.request(method, path(job, action), status=404)
        assert refused.json == {"detail": "Not found."}
    assert bob.get(path(job)).json == before
    run_to_running(worker, job)
    state = bob.get(path(job)).json
    worker.post(path(job, "finish/x"), {}, status=404)
    worker.post(path(job, "start/x"), {}, status=404)
    assert bob.get(path(job)).json == state
    # The actions that take a segment still do: progress takes its value there.
    assert worker.post(path(job, "progress/0.5"), {}).json["progress"] == 0.5


def test_the_pk_of_a_job_deleted_for_good_is_never_given_again(admin, bob, make_job):
    """SQLite handed out max(id) + 1: the newest job, deleted for good, gave its pk to the next one, and a client
    still holding it (``ufdl jobs watch``, a watcher resuming) followed or acted on another job."""
    gone = make_job("first")
    admin.delete(path(gone, "hard"))
    again = make_job("second")
    assert again["pk"] > gone["pk"]
    bob.get(path(gone), status=404)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "abc", "inf", "1e3"])
def test_progress_out_of_range_is_400(worker, job, value):
    run_to_running(worker, job)
    response = worker.post(path(job, f"progress/{value}"), {}, status=400)
    assert "between 0 and 1" in response.json["detail"]


def test_progress_minus_zero_is_zero(worker, job):
    run_to_running(worker, job)
    for value in ("-0", "-0.0"):  # stored and answered as -0.0 before
        answered = worker.post(path(job, f"progress/{value}"), {}).body
        assert b'"progress": 0.0' in answered and b"-0.0" not in answered


def test_progress_body_must_be_an_object(worker, job):
    run_to_running(worker, job)
    worker.post(path(job, "progress/0.5"), [1, 2], status=400)
    worker.request("POST", path(job, "progress/0.5"), status=200)  # no body at all is fine


def test_a_node_with_a_current_job_cannot_start_another(worker, make_job):
    first, second = make_job(), make_job()
    run_to_running(worker, first)
    worker.get(path(second, "acquire"))
    response = worker.post(path(second, "start"), {}, status=406)
    assert f"still working on job {first['pk']}" in response.json["detail"]


@pytest.mark.parametrize("taken_by", ["abort", "cancel"])
def test_a_node_whose_job_was_taken_away_may_start_another_without_finishing_it(admin, worker, make_job,
                                                                               taken_by):
    """A worker that restarted never sends the finish that frees it: the job it lost must not keep it from
    working for ever (it did: every start was 406)."""
    first, second, third = make_job(), make_job(), make_job()
    run_to_running(worker, first)
    admin.delete(path(first, taken_by))
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == first["pk"]
    worker.get(path(second, "acquire"))
    assert worker.post(path(second, "start"), {}).json["status"] == "RUNNING"
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == second["pk"]
    # The new job is running: that one does keep the node from starting a third.
    worker.get(path(third, "acquire"))
    assert "still working on job" in worker.post(path(third, "start"), {}, status=406).json["detail"]
    # A late finish of the first job is answered (design §9), changes nothing and leaves the running job the
    # node's current one.
    before = admin.get(path(first)).json
    assert worker.post(path(first, "finish"), {}).json == before == admin.get(path(first)).json
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == second["pk"]


def test_a_node_may_start_another_job_while_the_one_taken_from_it_runs_on_another_node(admin, worker,
                                                                                      other_worker, make_job):
    """Only a running job the node itself holds keeps it busy: its lost job, now running on another node, must
    not (a check of the job's state alone would answer 406 until the other node finished it)."""
    first, second = make_job(), make_job()
    run_to_running(worker, first)
    admin.delete(path(first, "abort"))
    run_to_running(other_worker, first)
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == first["pk"]
    worker.get(path(second, "acquire"))
    assert worker.post(path(second, "start"), {}).json["status"] == "RUNNING"
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == second["pk"]


def test_aborting_a_job_no_node_holds_is_a_no_op(admin, worker, job, engine):
    """As upstream: an admin tool racing a release (or a lease the server already expired) gets the job."""
    from sqlalchemy import text

    assert admin.delete(path(job, "abort")).json == admin.get(path(job)).json
    worker.get(path(job, "acquire"))
    worker.delete(path(job, "release"))
    unchanged = admin.get(path(job)).json
    assert admin.delete(path(job, "abort")).json == unchanged == admin.get(path(job)).json
    with engine.connect() as connection:
        transitions = connection.execute(text("SELECT transition FROM job_events WHERE job_id = :job ORDER BY id"),
                                         {"job": job["pk"]}).scalars().all()
    assert transitions == ["acquire", "release"]


def test_acquire_next(worker, admin, make_job):
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}, status=204).body == b""
    first, second = make_job(), make_job()
    worker.post("/v1/jobs/acquire-next", {"executors": ["other.Executor"]}, status=204)
    got = worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}).json
    assert got["pk"] == first["pk"] and got["status"] == "QUEUED"
    # Until it starts that one, the node is given it again.
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}).json["pk"] == first["pk"]
    worker.post(path(first, "start"), {})
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}).json["pk"] == second["pk"]
    admin.post("/v1/jobs/acquire-next", {"executors": []}, status=403)
    worker.post("/v1/jobs/acquire-next", {"executor": []}, status=400)


def test_a_node_is_not_given_a_job_whose_template_its_user_cannot_read(admin, alice, bob, engine):
    """A user-scope template is its creator's: another user's worker could not read what to run, gave up and
    got the same job again at once, for ever."""
    import copy

    from sqlalchemy import text

    from job_helpers import ECHO, register

    private = copy.deepcopy(ECHO)
    private.update(name="private-echo", scope="user")
    template = admin.post("/v1/job-templates/import", private, status=201).json["pk"]
    with engine.begin() as connection:  # import is the admins': hand the template to alice
        connection.execute(text("UPDATE job_templates SET creator_id = :user WHERE id = :template"),
                           {"user": alice.user_id, "template": template})
    job = alice.post(f"/v1/job-templates/{template}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
    bobs_node, alices_node = register(bob), register(alice, index=1)
    bobs_node.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}, status=204)
    refused = bobs_node.get(path(job, "acquire"), status=403).json["detail"]
    assert refused == f"Node {bobs_node.node_id} cannot run job {job['pk']}: its template is private to its creator"
    assert admin.get(path(job)).json["status"] == "PENDING"
    # An admin reads every template: an admin's node may run it.
    admins_node = register(admin, "10.0.0.9")
    assert admins_node.get(path(job, "acquire")).json["node"] == admins_node.node_id
    admins_node.delete(path(job, "release"))
    assert alices_node.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}).json["pk"] == job["pk"]
    alices_node.get(f"/v1/job-templates/{template}/get-all-parameters")  # what its worker reads next


def test_update_description_and_deletion(admin, bob, alice, job):
    assert bob.patch(path(job), {"description": "renamed"}).json["description"] == "renamed"
    alice.patch(path(job), {"description": "mine"}, status=403)
    bob.put(path(job), {"description": "again", "status": "COMPLETED"}, status=400)
    bob.delete(path(job), status=403)
    deleted = admin.delete(path(job)).json["deletion_time"]
    assert deleted is not None
    assert admin.delete(path(job)).json["deletion_time"] == deleted  # deleting again keeps the time
    assert bob.post("/v1/jobs/list").json == []
    # Deleted, it stays as it was until it is reinstated: its creator changed and cancelled it, and it came
    # back CANCELED instead of waiting for a node.
    before = admin.get(path(job)).json
    for client in (bob, admin):
        assert client.patch(path(job), {"description": "late"}, status=406).json == {
            "detail": f"Cannot change job {job['pk']}: it is deleted"}
        assert client.delete(path(job, "cancel"), status=406).json == {
            "detail": f"Cannot cancel job {job['pk']}: it is deleted"}
    assert admin.get(path(job)).json == before
    assert admin.delete(path(job, "reinstate")).json["status"] == "PENDING"
    assert admin.delete(path(job, "hard")).json["pk"] == job["pk"]
    admin.get(path(job), status=404)


def test_a_value_refused_for_its_size_or_type_is_not_quoted_whole(bob, worker, job):
    # The schema's message quoted the value: a description one character too long came back whole, 100 kB.
    for body in ({"description": "d" * 100_001}, {"description": ["d" * 100_000]}):
        detail = bob.patch(path(job), body, status=400).json["detail"]
        assert detail.startswith("description: ") and len(detail) < 300, detail[:300]
    assert "is too long" in detail or "is not of type 'string'" in detail
    run_to_running(worker, job)
    detail = worker.post(path(job, "finish"), {"error": "e" * 100_001}, status=400).json["detail"]
    assert detail.startswith("error: 'eeee") and detail.endswith("is too long") and len(detail) < 300
    assert worker.get(path(job)).json["status"] == "RUNNING"
    # A message may quote what is not the value refused: the name of a field that is not one.
    detail = bob.patch(path(job), {"x" * 100_000: 1}, status=400).json["detail"]
    assert detail.startswith("body: Additional properties are not allowed ('xxx") and len(detail) < 600


def test_a_deleted_job_is_not_worked_on(admin, bob, worker, other_worker, job):
    run_to_running(worker, job)
    worker.post(path(job, "progress/0.5"), {})
    deleted = admin.delete(path(job)).json
    assert deleted["status"] == "PENDING" and deleted["node"] is None and deleted["progress"] == 0
    # The node that held it: its calls change nothing, its finish frees it for other work.
    worker.post(path(job, "progress/0.7"), {}, status=403)
    assert worker.post(path(job, "finish"), {}).json["status"] == "PENDING"
    assert bob.get(f"/v1/nodes/{worker.node_id}").json["current_job"] is None
    other_worker.get(path(job, "acquire"), status=406)
    assert other_worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}, status=204)

    reinstated = admin.delete(path(job, "reinstate")).json
    assert reinstated["status"] == "PENDING" and reinstated["deletion_time"] is None
    run_to_running(other_worker, job)
    assert other_worker.post(path(job, "finish"), {}).json["status"] == "COMPLETED"


def test_a_failed_job_deleted_while_held_is_not_reset_until_reinstated(admin, worker, job):
    """The reset put the deleted job back in QUEUED, and acquire-next handed it out again until released."""
    run_to_running(worker, job)
    worker.post(path(job, "finish"), {"error": "boom"})
    assert admin.delete(path(job)).json["node"] == worker.node_id  # failed: nothing to abort
    assert worker.delete(path(job, "reset"), status=406).json == {
        "detail": f"Cannot reset job {job['pk']}: it is deleted"}
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}, status=204)
    assert admin.get(path(job)).json["status"] == "FAILED"
    # Reinstated, it is its node's failed job again, to reset (or release).
    admin.delete(path(job, "reinstate"))
    assert worker.delete(path(job, "reset")).json["status"] == "QUEUED"
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}).json["pk"] == job["pk"]


def test_acquire_next_never_hands_out_a_deleted_job_its_node_holds(admin, worker, job, engine):
    """A deleted job left QUEUED on its node (as a reset of a deleted job did) waits for its reinstatement."""
    from sqlalchemy import update

    from ufdl_pyramid.models import Job

    worker.get(path(job, "acquire"))
    admin.delete(path(job))  # aborted: no node holds it any more
    with engine.begin() as connection:  # as the reset of a deleted failed job left it
        connection.execute(update(Job).where(Job.id == job["pk"]).values(status="QUEUED", node_id=worker.node_id))
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}, status=204)
    assert worker.post(path(job, "start"), {}, status=406).json["detail"].endswith("it is deleted")
    admin.delete(path(job, "reinstate"))
    assert worker.post("/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}).json["pk"] == job["pk"]


def test_jobs_list_filters(bob, worker, make_job):
    first, second = make_job("a"), make_job("b")
    worker.get(path(second, "acquire"))
    body = {"expressions": [{"type": "exact", "field": "status", "value": "QUEUED"}]}
    assert [row["pk"] for row in bob.post("/v1/jobs/list", body).json] == [second["pk"]]
    body = {"expressions": [{"type": "exact", "field": "template.name", "value": "echo"}],
            "order_by": [{"field": "pk", "ascending": False}]}
    assert [row["pk"] for row in bob.post("/v1/jobs/list", body).json] == [second["pk"], first["pk"]]
    # JSON columns have no order (PostgreSQL refuses one), and another user's private fields are not filters:
    # matching an e-mail address character by character would read it.
    for body in ({"order_by": [{"field": "input_values"}]},
                 {"expressions": [{"type": "contains", "field": "creator.email", "sub_string": "@"}]},
                 {"expressions": [{"type": "exact", "field": "node.owner.is_admin", "value": True}]}):
        bob.post("/v1/jobs/list", body, status=400)
    body = {"expressions": [{"type": "exact", "field": "creator.username", "value": "bob"}]}
    assert len(bob.post("/v1/jobs/list", body).json) == 2
    # A number compared with progress (a float column) is taken as a float, however large an integer it is.
    for value, expected in ((0, [first["pk"], second["pk"]]), (2**63, []), (10**300, [])):
        body = {"expressions": [{"type": "compare", "field": "progress", "operator": ">=", "value": value}]}
        assert [row["pk"] for row in bob.post("/v1/jobs/list", body).json] == expected, value
    body = {"expressions": [{"type": "compare", "field": "progress", "operator": "<", "value": 10**400}]}
    assert "out of its range" in bob.post("/v1/jobs/list", body, status=400).json["detail"]


def test_an_exact_filter_on_a_column_of_fixed_values_refuses_a_value_outside_them(bob, job):
    """A typo (FINSHED) answered an empty list, as if no job matched: it is a 400 naming the values."""
    def refusal(field, value, **more):
        body = {"expressions": [{"type": "exact", "field": field, "value": value, **more}]}
        return bob.post("/v1/jobs/list", body, status=400).json["detail"]

    assert refusal("status", "FINSHED") == \
        "Field 'status' is one of PENDING, QUEUED, RUNNING, COMPLETED, FAILED, CANCELED: 'FINSHED' is not one"
    assert refusal("status", "pending").endswith("'pending' is not one")
    assert refusal("status", "FINSHED", invert=True).startswith("Field 'status' is one of")
    assert refusal("error_category", "ALGO") == \
        "Field 'error_category' is one of SYSTEM, ALGORITHM, DATA: 'ALGO' is not one"
    assert refusal("template.kind", "workabel").startswith("Field 'template.kind' is one of workable, meta")
    assert refusal("template.scope", "private").startswith("Field 'template.scope' is one of public, project, user")
    templates = {"expressions": [{"type": "exact", "field": "scope", "value": "pubic"}]}
    assert "one of public, project, user" in bob.post("/v1/job-templates/list", templates, status=400).json["detail"]
    # A value of the set, or one in another case when case_insensitive says so, filters as before; so does
    # contains, which matches parts of values.
    for expression in ({"type": "exact", "field": "status", "value": "PENDING"},
                       {"type": "exact", "field": "status", "value": "pending", "case_insensitive": True},
                       {"type": "exact", "field": "status", "value": "FAILED", "invert": True},
                       {"type": "contains", "field": "status", "sub_string": "PEND"}):
        assert [row["pk"] for row in bob.post("/v1/jobs/list", {"expressions": [expression]}).json] == \
            [job["pk"]], expression


def test_an_inverted_filter_keeps_the_rows_whose_field_is_null(worker, bob, job, make_job):
    """"Not ALGORITHM" keeps the jobs with no error category at all, as upstream's exclude() does: SQL's
    NOT (NULL = 'ALGORITHM') is NULL, which dropped them."""
    other = make_job("no error")
    run_to_running(worker, job)
    worker.post(path(job, "finish"), {"error": "out of memory"})

    def listed(expression):
        return sorted(row["pk"] for row in bob.post("/v1/jobs/list", {"expressions": [expression]}).json)

    assert listed({"type": "exact", "field": "error_category", "value": "ALGORITHM", "invert": True}) == [other["pk"]]
    assert listed({"type": "exact", "field": "error_category", "value": "DATA", "invert": True}) == \
        sorted([job["pk"], other["pk"]])
    assert listed({"type": "contains", "field": "error_reason", "sub_string": "memory", "invert": True}) == \
        [other["pk"]]
    assert listed({"type": "compare", "field": "start_time", "operator": ">", "value": "2000-01-01T00:00:00Z",
                   "invert": True}) == [other["pk"]]
    assert listed({"type": "or", "invert": True, "sub_expressions": [
        {"type": "exact", "field": "error_category", "value": "ALGORITHM"},
        {"type": "exact", "field": "error_category", "value": "DATA"}]}) == [other["pk"]]


def copies_of_a_pending_job(engine, make_job, count: int) -> None:
    """``count`` rows copied from one job in one statement: creating hundreds through the API is slow."""
    from sqlalchemy import insert, select

    from ufdl_pyramid.models import Job

    with engine.begin() as connection:
        row = dict(connection.execute(select(Job.__table__).where(Job.id == make_job("copy")["pk"])).mappings().one())
        del row["id"]
        connection.execute(insert(Job.__table__), [row] * count)


def test_a_list_longer_than_a_batch_answers_each_job_once_in_order_with_its_own_outputs(engine, bob, worker,
                                                                                         make_job):
    """A long unpaged list is read and sent LIST_BATCH_SIZE rows at a time, from a transaction of its own: the
    jobs on either side of a batch's edge keep their outputs, the answer is the pages' rows end to end, and the
    list's connection goes back to the pool."""
    from ufdl_pyramid.services.listing import LIST_BATCH_SIZE

    def with_output(text):
        job = make_job(text)
        run_to_running(worker, job)
        worker.request("POST", path(job, f"outputs/out-{text}/str"), body=text.encode(), status=201)
        return worker.post(path(job, "finish"), {}).json

    first = with_output("first")
    copies_of_a_pending_job(engine, make_job, LIST_BATCH_SIZE)  # with the original: a batch and one
    last = with_output("last")
    total = LIST_BATCH_SIZE + 3

    unpaged = bob.post("/v1/jobs/list")
    assert unpaged.headers["X-Total-Count"] == str(total) and unpaged.content_type == "application/json"
    jobs = unpaged.json
    assert [job["pk"] for job in jobs] == sorted({job["pk"] for job in jobs}) and len(jobs) == total
    assert jobs[0] == first and jobs[-1] == last
    assert jobs[0]["outputs"][0]["name"] == "out-first" and jobs[-1]["outputs"][0]["name"] == "out-last"
    assert all(job["outputs"] == [] for job in jobs[1:-1])
    pages = [bob.post("/v1/jobs/list", {"page": page, "page_size": 200}).json for page in range(1, 4)]
    assert [job for page in pages for job in page] == jobs
    assert engine.pool.checkedout() == 0


def test_a_long_list_abandoned_by_its_client_ends_its_transaction(engine, wsgi_app, bob, make_job):
    """The client leaves after the first bytes (the server closes the answer): the list's own session ends
    there, its connection back in the pool, instead of staying checked out with a transaction open."""
    from webob import Request

    from ufdl_pyramid.services.listing import LIST_BATCH_SIZE

    copies_of_a_pending_job(engine, make_job, LIST_BATCH_SIZE + 1)
    request = Request.blank("/v1/jobs/list", method="POST", headers=bob.headers())
    status, _headers, body = request.call_application(wsgi_app)
    assert status.startswith("200") and "Content-Length" not in dict(_headers)  # sent as it is read
    chunks = iter(body)
    assert next(chunks) == b"[" and next(chunks).startswith(b'{"pk": ')  # the first batch
    assert engine.pool.checkedout() == 1  # the list's, still reading
    body.close()
    assert engine.pool.checkedout() == 0


def test_a_long_list_is_sent_chunked_and_cut_short_if_the_database_fails_part_way(engine, wsgi_app, bob, make_job,
                                                                                  monkeypatch, caplog):
    """Over real HTTP (waitress): no Content-Length, chunked; a failure after the first batch closes the
    connection before the array's end, so that no client takes a part for the whole list. The log says so in
    one line (waitress logged a traceback)."""
    import http.client

    from sqlalchemy.exc import OperationalError
    from webtest.http import StopableWSGIServer

    from ufdl_pyramid.services import listing

    copies_of_a_pending_job(engine, make_job, 2 * listing.LIST_BATCH_SIZE)
    read_rows = listing.read_rows

    def failing_after_a_batch(db, query):
        for number, row in enumerate(read_rows(db, query)):
            if number == listing.LIST_BATCH_SIZE:
                raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
            yield row

    server = StopableWSGIServer.create(wsgi_app)
    try:
        assert server.wait()
        connection = http.client.HTTPConnection(server.adj.host, server.adj.port, timeout=10)
        connection.request("POST", "/v1/jobs/list", headers=bob.headers())
        response = connection.getresponse()
        assert response.getheader("Transfer-Encoding") == "chunked" and response.getheader("Content-Length") is None
        assert len(json.loads(response.read())) == 2 * listing.LIST_BATCH_SIZE + 1

        monkeypatch.setattr(listing, "read_rows", failing_after_a_batch)
        connection.request("POST", "/v1/jobs/list", headers=bob.headers())
        response = connection.getresponse()
        assert response.status == 200
        with pytest.raises(http.client.IncompleteRead) as cut:  # not a timeout: the server closed it
            response.read()
        assert cut.value.partial.startswith(b'[{"pk": ') and not cut.value.partial.endswith(b"]")
        connection.close()
    finally:
        server.shutdown()
    assert engine.pool.checkedout() == 0
    assert [(record.name, record.levelno, record.getMessage(), record.exc_info) for record in caplog.records
            if record.levelno >= logging.WARNING] == [
        ("ufdl_pyramid.views.api", logging.ERROR, "/v1/jobs/list: the database failed after the answer started "
         "(the connection is closed): server closed the connection unexpectedly", None)]


def test_a_list_answer_declares_its_length(wsgi_app, bob, make_job):
    """A list of one batch or less, or a page, is encoded whole before it is answered, so it says its length
    (Content-Length) as the JSON renderer did, rather than being sent chunked. Read from the app's own headers:
    WebTest fills in a length from the body."""
    from webob import Request

    for text in ("one", "two"):
        make_job(text)
    for body in (b"", b'{"page": 1, "page_size": 1}'):
        answer = Request.blank("/v1/jobs/list", method="POST", body=body, content_type="application/json",
                               headers=bob.headers()).get_response(wsgi_app)
        assert answer.status_int == 200 and answer.headers["X-Total-Count"] == "2"
        assert answer.headers["Content-Length"] == str(len(b"".join(answer.app_iter)))


def test_lost_leases_send_jobs_back_and_finally_fail_them(admin, worker, other_worker, job, engine):
    from datetime import timedelta

    from sqlalchemy import update

    from ufdl_pyramid.models import Job, Node
    from ufdl_pyramid.models.meta import utcnow

    def silence(node_id):
        with engine.begin() as connection:
            past = utcnow() - timedelta(hours=1)
            connection.execute(update(Node).where(Node.id == node_id).values(last_seen=past))
            connection.execute(update(Job).where(Job.id == job["pk"]).values(last_status_change=past))

    # A failed run reset and started again is no lost lease (it counted: the job failed at its first loss).
    run_to_running(worker, job)
    worker.post(path(job, "finish"), {"error": "boom"})
    worker.delete(path(job, "reset"))
    worker.post(path(job, "start"), {})
    for attempt in range(3):
        if attempt == 1:  # lost before it started: that counts too (it did not, and could bounce for ever)
            worker.get(path(job, "acquire"))
        elif attempt:
            run_to_running(worker, job)
        silence(worker.node_id)
        # Any idle node polling for work notices the lost lease.
        other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
        state = admin.get(path(job)).json
        if attempt < 2:
            assert state["status"] == "PENDING" and state["node"] is None
        if attempt == 0:
            worker.post(path(job, "finish"), {})  # the lost node comes back: 2xx, nothing changes
    assert state["status"] == "FAILED" and state["error_category"] == "SYSTEM"
    assert state["error_reason"] == f"Node {worker.node_id} was not seen for 120 s; given up after 3 lost leases"
    # An admin's abort gives it a fresh count: its next lost lease sends it back (before, that failed it again).
    admin.delete(path(job, "abort"))
    run_to_running(other_worker, job)
    silence(other_worker.node_id)
    worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    assert admin.get(path(job)).json["status"] == "PENDING"


def test_the_late_finish_of_a_job_failed_for_its_last_lost_lease_is_answered(admin, worker, other_worker,
                                                                             make_job, engine):
    """The lease it lost for good takes the job from the node like an abort (design §9): once the node is back
    and working on another job, its late finish of the failed one is answered and changes nothing (only the
    aborts counted: it was 403)."""
    from datetime import timedelta

    from sqlalchemy import update

    from ufdl_pyramid.models import Job, Node
    from ufdl_pyramid.models.meta import utcnow

    job, other = make_job(), make_job()
    run_to_running(worker, job)
    with engine.begin() as connection:  # its third lease (ufdl.max_tries) is about to be lost
        past = utcnow() - timedelta(hours=1)
        connection.execute(update(Node).where(Node.id == worker.node_id).values(last_seen=past))
        connection.execute(update(Job).where(Job.id == job["pk"]).values(last_status_change=past, lost_leases=2))
    other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    failed = admin.get(path(job)).json
    assert (failed["status"], failed["error_category"], failed["node"]) == ("FAILED", "SYSTEM", None)
    run_to_running(worker, other)
    assert worker.post(path(job, "finish"), {}).json == failed == admin.get(path(job)).json
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == other["pk"]


@pytest.mark.parametrize("case", ["failed job", "status changed lately", "node never seen"])
def test_which_jobs_of_a_silent_node_lose_their_lease(admin, worker, other_worker, job, engine, case):
    """Only a QUEUED or RUNNING job whose node and status have both been still for the timeout is taken back:
    a failed job waits for its node (or its user) however long, a job that changed status within the timeout
    keeps its node, and a node never seen counts as silent."""
    from datetime import timedelta

    from sqlalchemy import update

    from ufdl_pyramid.models import Job, Node
    from ufdl_pyramid.models.meta import utcnow

    run_to_running(worker, job)
    if case == "failed job":
        worker.post(path(job, "finish"), {"error": "boom"})
    past = utcnow() - timedelta(hours=1)
    with engine.begin() as connection:
        seen = None if case == "node never seen" else past
        connection.execute(update(Node).where(Node.id == worker.node_id).values(last_seen=seen))
        if case != "status changed lately":
            connection.execute(update(Job).where(Job.id == job["pk"]).values(last_status_change=past))
    before = admin.get(path(job)).json
    other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = admin.get(path(job)).json
    if case == "node never seen":
        assert (state["status"], state["node"]) == ("PENDING", None)
    else:
        assert state == before and state["node"] == worker.node_id


def test_a_hidden_template_is_not_read_through_its_jobs_list_filter(admin, bob):
    """A user-scope template is its creator's: a filter on the jobs' template.* must not read it for others."""
    from job_helpers import ECHO

    private = admin.post("/v1/job-templates/import", {**ECHO, "name": "private", "scope": "user",
                                                      "description": "TOPSECRET plan"}, status=201).json
    job = admin.post(f"/v1/job-templates/{private['pk']}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
    body = {"expressions": [{"type": "contains", "field": "template.description", "sub_string": "TOPSECRET"}]}
    assert bob.post("/v1/jobs/list", body).json == []
    assert [row["pk"] for row in admin.post("/v1/jobs/list", body).json] == [job["pk"]]
    bob.get(f"/v1/job-templates/{private['pk']}", status=404)


def test_a_list_filter_follows_no_one_to_many_relation(bob, job):
    """A job's outputs are many: a path through them would repeat the job once per output."""
    body = {"expressions": [{"type": "exact", "field": "outputs.name", "value": "model"}]}
    refused = bob.post("/v1/jobs/list", body, status=400).json
    assert refused == {"detail": "Unknown field 'outputs.name': 'outputs' is not a relation that can be followed"}


def test_a_server_start_holds_leases_back_for_a_full_timeout(admin, worker, other_worker, job, engine):
    """No node could reach the server while it was down: a node silent since before the start keeps its job
    until the timeout (120 s) has passed since the start. Before, the first poll after the start took it."""
    from datetime import timedelta

    from job_helpers import server_came_back, silence
    from ufdl_pyramid import main
    from ufdl_pyramid.testing import app_settings_for_tests

    run_to_running(worker, job)
    silence(engine, worker.node_id, job["pk"])
    main({}, **app_settings_for_tests(engine))  # the server starts
    other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = admin.get(path(job)).json
    assert (state["status"], state["node"]) == ("RUNNING", worker.node_id)

    server_came_back(engine, ago=timedelta(seconds=115))
    other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    assert admin.get(path(job)).json["status"] == "RUNNING"
    server_came_back(engine, ago=timedelta(seconds=125))
    other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = admin.get(path(job)).json
    assert (state["status"], state["node"], state["error_category"]) == ("PENDING", None, None)


def test_each_server_process_checks_the_leases_itself_while_no_node_polls(admin, worker, job, engine):
    """No acquire-next at all (every node busy, or none left): the process's own check, every
    ``ufdl.leases.check_interval`` seconds, takes the job back. Before, it showed RUNNING until a node polled."""
    import time

    import webtest

    from job_helpers import silence
    from ufdl_pyramid.testing import make_test_app

    run_to_running(worker, job)
    silence(engine, worker.node_id, job["pk"])
    app = make_test_app(engine, **{"ufdl.leases.check_interval": "0.1"})
    try:
        webtest.TestApp(app).get("/v1/health", status=200)  # a process's first request starts its checks
        deadline = time.monotonic() + 30
        while admin.get(path(job)).json["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        app.registry["ufdl.lease_watch"].stop()
    state = admin.get(path(job)).json
    assert (state["status"], state["node"]) == ("PENDING", None)
    assert admin.get(f"/v1/nodes/{worker.node_id}").json["current_job"] == job["pk"]  # until its late finish


def test_a_return_marked_after_a_later_one_does_not_move_the_lease_clock_back(admin, worker, other_worker, job,
                                                                                engine):
    """Processes mark their returns each on its own: a return from before the last one, marked after it (its
    request began earlier), leaves the later mark."""
    from datetime import timedelta

    from job_helpers import silence
    from ufdl_pyramid.models.meta import utcnow
    from ufdl_pyramid.services.lease_clock import mark_resumed

    run_to_running(worker, job)
    silence(engine, worker.node_id, job["pk"])
    mark_resumed(engine, utcnow())
    mark_resumed(engine, utcnow() - timedelta(seconds=125))
    other_worker.post("/v1/jobs/acquire-next", {"executors": []}, status=204)
    state = admin.get(path(job)).json
    assert (state["status"], state["node"]) == ("RUNNING", worker.node_id)
