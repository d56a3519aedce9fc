"""Audit: node lifecycle races on PostgreSQL (temporary file)."""
import threading
import time
from collections import Counter

import pytest
import webtest
from sqlalchemy import text

from ufdl_pyramid.testing import ApiClient, make_test_app
from job_helpers import ECHO

ROUNDS = 25

TRANS = {
    "create": ({"PENDING"}, {"PENDING"}),
    "acquire": ({"PENDING"}, {"QUEUED"}),
    "start": ({"QUEUED"}, {"RUNNING"}),
    "progress": ({"RUNNING"}, {"RUNNING"}),
    "add_output": ({"RUNNING"}, {"RUNNING"}),
    "finish": ({"RUNNING"}, {"COMPLETED"}),
    "error": ({"RUNNING", "QUEUED"}, {"FAILED"}),
    "reset": ({"FAILED"}, {"QUEUED"}),
    "release": ({"QUEUED", "FAILED"}, {"PENDING", "FAILED"}),
    "abort": ({"QUEUED", "RUNNING", "FAILED"}, {"PENDING"}),
    "cancel": ({"PENDING", "QUEUED", "RUNNING", "FAILED"}, {"CANCELED"}),
}

REPORT = []


def note(line):
    REPORT.append(line)
    with open("/tmp/audit_pg/report.txt", "a") as f:
        f.write(line + "\n")
    print(line, flush=True)


def events_of(engine, pk):
    with engine.connect() as c:
        return c.execute(text("SELECT id, transition, status, progress, node_id FROM job_events "
                              "WHERE job_id=:j ORDER BY id"), {"j": pk}).all()


def row_of(engine, pk):
    with engine.connect() as c:
        return c.execute(text("SELECT status, node_id, progress, is_cancelled, tries FROM jobs WHERE id=:j"),
                         {"j": pk}).one()


def problems(engine, pk):
    out = []
    state = "PENDING"
    evs = events_of(engine, pk)
    for _, tr, st, prog, node in evs:
        frm, to = TRANS.get(tr, (None, None))
        if frm is None:
            continue
        if state not in frm:
            out.append(f"{tr} from {state}")
        if st not in to:
            out.append(f"{tr} wrote status {st}")
        state = st
    row = row_of(engine, pk)
    if evs and row.status != state:
        out.append(f"row {row.status} but last event {state}")
    if row.status in ("QUEUED", "RUNNING") and row.node_id is None:
        out.append(f"{row.status} with no node")
    if row.status == "PENDING" and row.node_id is not None:
        out.append("PENDING with node")
    if row.status == "COMPLETED" and row.progress != 1.0:
        out.append(f"COMPLETED with progress {row.progress}")
    if row.status == "CANCELED" and not row.is_cancelled:
        out.append("CANCELED not is_cancelled")
    if row.is_cancelled and row.status != "CANCELED":
        out.append(f"is_cancelled but {row.status}")
    return out, [e[1] for e in evs], row


def race(wsgi_app, *calls, hold_node=None, engine=None):
    if hold_node is None:
        return _race(wsgi_app, *calls)
    # a slow transaction of the same node (e.g. an output upload) holds the node row meanwhile
    with engine.connect() as c:
        c.execute(text("SELECT 1 FROM nodes WHERE id=:n FOR UPDATE"), {"n": hold_node})
        out = []
        t = threading.Thread(target=lambda: out.append(_race(wsgi_app, *calls)))
        t.start()
        time.sleep(0.4)
        c.rollback()
    t.join()
    return out[0]


def _race(wsgi_app, *calls):
    """calls: (method, path, json, headers); all fire after a barrier; returns statuses."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i):
        method, path, body, headers = calls[i]
        app = webtest.TestApp(wsgi_app)
        barrier.wait()
        if method == "GET":
            r = app.get(path, headers=headers, expect_errors=True)
        elif method == "DELETE":
            r = app.delete(path, headers=headers, expect_errors=True)
        else:
            r = app.post_json(path, body, headers=headers, expect_errors=True)
        results[i] = (r.status_int, r.json.get("detail") if r.status_int >= 400 and r.body else None)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture
def tpl(admin):
    return admin.post("/v1/job-templates/import", ECHO, status=201).json


def new_job(bob, tpl):
    return bob.post(f"/v1/job-templates/{tpl['pk']}/create-job",
                    {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]


def new_node(alice, i):
    return alice.as_node(alice.post("/v1/nodes/create", {"ip": f"10.9.{i // 200}.{i % 200}", "index": 0},
                                    status=201).json["pk"])


def summarize(name, outcomes):
    bad = [o for o in outcomes if o[1]]
    note(f"== {name}: {len(bad)}/{len(outcomes)} rounds broken")
    for statuses, probs, evs, row in bad[:3]:
        note(f"   statuses={statuses} problems={probs} events={evs} row={tuple(row)}")
    c = Counter(str(o[0]) for o in outcomes)
    if len(c) < 6:
        note(f"   status combos: {dict(c)}")
    note(f"   problem kinds: {dict(Counter(tuple(o[1]) for o in bad))}")
    note(f"   event seqs of broken: {dict(Counter(tuple(o[2][-3:]) for o in bad))}")


def running_job(bob, alice, tpl, i):
    pk = new_job(bob, tpl)
    node = new_node(alice, i)
    node.get(f"/v1/jobs/{pk}/acquire", status=200)
    node.post(f"/v1/jobs/{pk}/start", {}, status=200)
    return pk, node


def test_finish_vs_abort(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    outs = []
    for i in range(ROUNDS):
        pk, node = running_job(bob, alice, tpl, i)
        st = race(wsgi_app, ("POST", f"/v1/jobs/{pk}/finish", {}, node.headers()),
                  ("DELETE", f"/v1/jobs/{pk}/abort", None, admin.headers()))
        p, evs, row = problems(engine, pk)
        outs.append((st, p, evs, row))
    summarize("finish vs admin abort", outs)


def test_finish_vs_cancel(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    outs = []
    for i in range(ROUNDS):
        pk, node = running_job(bob, alice, tpl, i)
        st = race(wsgi_app, ("POST", f"/v1/jobs/{pk}/finish", {}, node.headers()),
                  ("DELETE", f"/v1/jobs/{pk}/cancel", None, bob.headers()))
        p, evs, row = problems(engine, pk)
        outs.append((st, p, evs, row))
    summarize("finish vs cancel", outs)


def test_progress_vs_finish_abort_cancel(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    outs = []
    for i in range(ROUNDS):
        pk, node = running_job(bob, alice, tpl, i)
        other = [("POST", f"/v1/jobs/{pk}/finish", {}, node.headers()),
                 ("DELETE", f"/v1/jobs/{pk}/abort", None, admin.headers()),
                 ("DELETE", f"/v1/jobs/{pk}/cancel", None, bob.headers())][i % 3]
        st = race(wsgi_app, ("POST", f"/v1/jobs/{pk}/progress/0.5", {}, node.headers()), other,
                  ("POST", f"/v1/jobs/{pk}/progress/0.6", {}, node.headers()))
        p, evs, row = problems(engine, pk)
        outs.append((st, p, evs, row))
    summarize("progress (express) vs finish/abort/cancel", outs)


def test_release_vs_start(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    outs = []
    for i in range(ROUNDS):
        pk = new_job(bob, tpl)
        node = new_node(alice, i)
        node.get(f"/v1/jobs/{pk}/acquire", status=200)
        st = race(wsgi_app, ("DELETE", f"/v1/jobs/{pk}/release", None, node.headers()),
                  ("POST", f"/v1/jobs/{pk}/start", {}, node.headers()))
        p, evs, row = problems(engine, pk)
        outs.append((st, p, evs, row))
    summarize("release vs start (same node)", outs)


def test_reset_vs_abort(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    outs = []
    for i in range(ROUNDS):
        pk, node = running_job(bob, alice, tpl, i)
        node.post(f"/v1/jobs/{pk}/finish", {"error": "boom"}, status=200)
        st = race(wsgi_app, ("DELETE", f"/v1/jobs/{pk}/reset", None, node.headers()),
                  ("DELETE", f"/v1/jobs/{pk}/abort", None, admin.headers()))
        p, evs, row = problems(engine, pk)
        outs.append((st, p, evs, row))
    summarize("reset vs abort", outs)


def test_duplicate_requests_same_node(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    for k, action in enumerate(("acquire", "start", "finish", "release")):
        outs = []
        for i in range(ROUNDS):
            pk = new_job(bob, tpl)
            node = new_node(alice, 1000 + 100 * k + i)
            if action != "acquire":
                node.get(f"/v1/jobs/{pk}/acquire", status=200)
            if action == "finish":
                node.post(f"/v1/jobs/{pk}/start", {}, status=200)
            call = {"acquire": ("GET", f"/v1/jobs/{pk}/acquire", None, node.headers()),
                    "start": ("POST", f"/v1/jobs/{pk}/start", {}, node.headers()),
                    "finish": ("POST", f"/v1/jobs/{pk}/finish", {}, node.headers()),
                    "release": ("DELETE", f"/v1/jobs/{pk}/release", None, node.headers())}[action]
            st = race(wsgi_app, call, call)
            p, evs, row = problems(engine, pk)
            if evs.count(action) > 1:
                p.append(f"{evs.count(action)} {action} events")
            if action == "start" and row.tries != 1:
                p.append(f"tries={row.tries}")
            outs.append((st, p, evs, row))
        summarize(f"two identical {action} calls from the holder", outs)


def test_same_node_starts_two_jobs(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    outs = []
    for i in range(ROUNDS):
        a, b = new_job(bob, tpl), new_job(bob, tpl)
        node = new_node(alice, i)
        node.get(f"/v1/jobs/{a}/acquire", status=200)
        node.get(f"/v1/jobs/{b}/acquire", status=200)
        st = race(wsgi_app, ("POST", f"/v1/jobs/{a}/start", {}, node.headers()),
                  ("POST", f"/v1/jobs/{b}/start", {}, node.headers()))
        statuses = [row_of(engine, a).status, row_of(engine, b).status]
        p = [] if statuses.count("RUNNING") == 1 else [f"statuses {statuses}"]
        outs.append((st, p, [], tuple(statuses)))
    summarize("one node starts two jobs at once", outs)


def test_acquire_next_two_nodes_two_jobs(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    outs = []
    for i in range(ROUNDS):
        jobs = [new_job(bob, tpl), new_job(bob, tpl)]
        n1, n2 = new_node(alice, 2 * i), new_node(alice, 2 * i + 1)
        st = race(wsgi_app, ("POST", "/v1/jobs/acquire-next", {"executors": ["tests.Echo"]}, n1.headers()),
                  ("POST", "/v1/jobs/acquire-next", {"executors": ["tests.Echo", "other"]}, n2.headers()))
        left = [pk for pk in jobs if row_of(engine, pk).status == "PENDING"]
        p = [f"204 while job(s) {left} still PENDING"] if any(s[0] == 204 for s in st) and left else []
        outs.append((st, p, [], ()))
        # drain leftovers
        for pk in jobs:
            if row_of(engine, pk).status != "PENDING":
                admin.delete(f"/v1/jobs/{pk}/abort")
            admin.delete(f"/v1/jobs/{pk}")
    summarize("acquire-next: two nodes, two pending jobs", outs)


def test_lease_expiry_vs_finish(on_postgresql, engine, admin, alice, bob, tpl):
    app = make_test_app(engine, **{"ufdl.node_timeout": "0.3", "ufdl.max_tries": "5"})
    outs = []
    for i in range(ROUNDS):
        pk, node = running_job(bob, alice, tpl, i)
        poller = new_node(alice, 500 + i)
        time.sleep(0.45)
        st = race(app, ("POST", f"/v1/jobs/{pk}/finish", {}, node.headers()),
                  ("POST", "/v1/jobs/acquire-next", {"executors": ["nothing"]}, poller.headers()))
        p, evs, row = problems(engine, pk)
        outs.append((st, p, evs, row))
    summarize("lease expiry (acquire-next) vs finish", outs)


def test_progress_express_vs_full_stack_shapes(on_postgresql, engine, admin, alice, bob, tpl):
    """Same answers with the lane on and off, for progress values written in odd spellings."""
    full = make_test_app(engine, **{"ufdl.progress_express": "false"})
    pk, node = running_job(bob, alice, tpl, 0)
    diffs = []
    for spelling in ("0.5", "1", "0", "1e-05", "5e-1", ".5", "0.50", "1.0", "inf", "-0", "0x1", "1_0",
                     " 0.5", "0.5%20", "nan", "1E-5", "%EF%BC%90.5", "0.5/", "1e0", "0.00000000000000000000000000000000001"):
        a = node.app.post_json(f"/v1/jobs/{pk}/progress/{spelling}", {"s": spelling}, headers=node.headers(),
                               expect_errors=True)
        b = webtest.TestApp(full).post_json(f"/v1/jobs/{pk}/progress/{spelling}", {"s": spelling},
                                            headers=node.headers(), expect_errors=True)
        ja, jb = a.json, b.json
        if isinstance(ja, dict) and isinstance(jb, dict):
            ja = {k: v for k, v in ja.items() if k != "last_status_change"}
            jb = {k: v for k, v in jb.items() if k != "last_status_change"}
        if (a.status_int, ja) != (b.status_int, jb):
            diffs.append((spelling, a.status_int, b.status_int, ja, jb))
    note(f"== express vs full stack: {len(diffs)} differences")
    for d in diffs[:5]:
        note(f"   {d}")


def test_same_node_races_behind_a_busy_node_row(on_postgresql, wsgi_app, engine, admin, alice, bob, tpl):
    for k, action in enumerate(("release-start", "start", "finish", "release", "acquire")):
        outs = []
        for i in range(10):
            pk = new_job(bob, tpl)
            node = new_node(alice, 3000 + 100 * k + i)
            if action != "acquire":
                node.get(f"/v1/jobs/{pk}/acquire", status=200)
            if action == "finish":
                node.post(f"/v1/jobs/{pk}/start", {}, status=200)
            calls = {"release-start": [("DELETE", f"/v1/jobs/{pk}/release", None, node.headers()),
                                       ("POST", f"/v1/jobs/{pk}/start", {}, node.headers())],
                     "start": [("POST", f"/v1/jobs/{pk}/start", {}, node.headers())] * 2,
                     "finish": [("POST", f"/v1/jobs/{pk}/finish", {}, node.headers())] * 2,
                     "release": [("DELETE", f"/v1/jobs/{pk}/release", None, node.headers())] * 2,
                     "acquire": [("GET", f"/v1/jobs/{pk}/acquire", None, node.headers())] * 2}[action]
            st = race(wsgi_app, *calls, hold_node=node.node_id, engine=engine)
            p, evs, row = problems(engine, pk)
            for t in set(evs):
                if t != "progress" and evs.count(t) > 1:
                    p.append(f"{evs.count(t)} {t} events")
            if row.tries > 1:
                p.append(f"tries={row.tries}")
            if action == "acquire" and any(s[0] != 200 for s in st):
                p.append("holder asking again refused")
            outs.append((st, p, evs, row))
        summarize(f"same node, node row busy: {action}", outs)


PRODUCE = {"name": "produce", "version": 1, "scope": "public", "licence": "MIT",
           "specific": {"job_type": "Process<str, BLOB>", "executor_class": "tests.Produce",
                        "required_packages": "", "parameters": {}}}
CONSUME = {"name": "consume", "version": 1, "scope": "public", "licence": "MIT",
           "specific": {"job_type": "Process<JobOutput<BLOB>, BLOB>", "executor_class": "tests.Consume",
                        "required_packages": "", "parameters": {"mode": {"types": ["str"], "help": "",
                                                                          "default": "fast"}}}}
PIPELINE = {"name": "pipeline", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"nodes": {"first": {"name": "produce"}, "second": {"name": "consume"}},
                         "dependencies": [{"from_node": "first", "from_output": "output", "to_node": "second",
                                           "to_input": "input"}]}}


def test_meta_child_progress_vs_finish(on_postgresql, wsgi_app, engine, admin, alice, bob):
    admin.post("/v1/job-templates/import", PRODUCE, status=201)
    admin.post("/v1/job-templates/import", CONSUME, status=201)
    pipe = admin.post("/v1/job-templates/import", PIPELINE, status=201).json
    outs = []
    for i in range(ROUNDS):
        parent = bob.post(f"/v1/job-templates/{pipe['pk']}/create-job",
                          {"input_values": {"first:input": {"value": "w", "type": "str"}}}, status=201).json
        body = {"expressions": [{"type": "exact", "field": "parent", "value": parent["pk"]}]}
        child = bob.post("/v1/jobs/list", body).json[0]["pk"]
        node = new_node(alice, 5000 + i)
        node.get(f"/v1/jobs/{child}/acquire", status=200)
        node.post(f"/v1/jobs/{child}/start", {}, status=200)
        node.request("POST", f"/v1/jobs/{child}/outputs/output/BLOB", body=b"d", status=201)
        other = [("POST", f"/v1/jobs/{child}/finish", {}, node.headers()),
                 ("DELETE", f"/v1/jobs/{child}/abort", None, admin.headers()),
                 ("DELETE", f"/v1/jobs/{parent['pk']}/cancel", None, bob.headers())][i % 3]
        st = race(wsgi_app, ("POST", f"/v1/jobs/{child}/progress/0.5", {}, admin.as_node(node.node_id).headers()),
                  other)
        p, evs, row = problems(engine, child)
        if "progress" in evs and any(t in evs[:max(j for j, t in enumerate(evs) if t == "progress")]
                                     for t in ("finish", "abort", "cancel")):
            p.append("progress event after finish/abort/cancel")
        outs.append((st, p, evs, row))
    summarize("meta child: progress vs finish/abort/parent cancel", outs)
