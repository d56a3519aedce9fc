"""create-job: inputs and parameters checked against the template; meta-jobs create their ready children."""
import pytest

from templates_fixtures import DATASET, PREDICT, TRAIN, TRAIN_THEN_PREDICT, document


@pytest.fixture
def train(admin):
    return admin.post("/v1/job-templates/import", TRAIN, status=201).json


@pytest.fixture
def meta(admin, train):
    admin.post("/v1/job-templates/import", PREDICT, status=201)
    return admin.post("/v1/job-templates/import", TRAIN_THEN_PREDICT, status=201).json


def create(client, template, body, status=201):
    return client.post(f"/v1/job-templates/{template['pk']}/create-job", body, status=status)


def test_create_job(alice, train):
    body = {"input_values": {"dataset": DATASET}, "parameter_values": {"tag": {"value": "first", "type": "str"}},
            "description": "a first run"}
    response = create(alice, train, body)
    job = response.json
    assert response.headers["Location"].endswith(f"/v1/jobs/{job['pk']}")
    assert job["template"] == {"pk": train["pk"], "name": "tiny-train", "version": 1}
    assert job["input_values"] == {"dataset": DATASET}
    assert job["parameter_values"] == {"tag": {"value": "first", "type": "str"}}
    assert job["status"] == "PENDING" and job["progress"] == 0 and job["node"] is None
    assert job["parent"] is None and job["outputs"] == [] and job["is_cancelled"] is False
    assert job["creator"] == alice.user_id and job["description"] == "a first run"
    assert alice.get(f"/v1/jobs/{job['pk']}").json == job


@pytest.mark.parametrize("body, needle", [
    ({"parameter_values": {"tag": {"value": "x", "type": "str"}}}, "missing input(s) dataset"),
    ({"input_values": {"dataset": DATASET, "image": DATASET}}, "unknown input(s) image"),
    ({"input_values": {"dataset": {"value": 7, "type": "PK<Dataset<Domain<'od'>>>"}}}, "is not one of"),
    ({"input_values": {"dataset": {"value": "seven", "type": "PK<Dataset<Domain<'ic'>>>"}}},
     "input_values.dataset: value"),
    ({"input_values": {"dataset": {"value": 7, "type": "PK<Dataset<"}}}, "input_values.dataset type"),
    ({"input_values": {"dataset": {"value": 7}}}, "type"),
    ({"input_values": {"dataset": DATASET}}, "parameter_values.tag: required"),
    ({"input_values": {"dataset": DATASET}, "parameter_values": {"tag": {"value": "x", "type": "str"},
                                                                 "rate": {"value": 0.5, "type": "float"}}},
     "constant"),
    ({"input_values": {"dataset": DATASET}, "parameter_values": {"tag": {"value": "x", "type": "str"},
                                                                 "speed": {"value": 1, "type": "int"}}},
     "unknown parameter(s) speed"),
    ({"input_values": {"dataset": DATASET}, "parameter_values": {"tag": {"value": 3, "type": "str"}}},
     "parameter_values.tag: value"),
    ({"input_values": {"dataset": DATASET}, "parameter_values": {"tag": {"value": "x", "type": "str"}},
      "notification_override": {"actions": {"on_finish": [{"type": "pigeon"}]}}}, "notification_override"),
    ({"input_values": {"dataset": DATASET}, "extra": 1}, "extra"),
])
def test_create_job_validation(alice, train, body, needle):
    response = create(alice, train, body, status=400)
    assert needle in response.json["detail"]
    assert alice.post("/v1/jobs/list").json == []


def test_job_output_inputs_must_exist(admin, alice, train):
    predict = admin.post("/v1/job-templates/import", PREDICT, status=201).json
    body = {"input_values": {"dataset": DATASET, "model": {
        "value": 99, "type": "JobOutput<Model<Domain<'ic'>, Framework<'numpy', '1.26'>>>"}}}
    assert "there is no job output 99" in create(alice, predict, body, status=400).json["detail"]
    # Past what an id column holds: refused as no output, never a database error.
    for value in (2**31, 10**30):
        body["input_values"]["model"]["value"] = value
        create(alice, predict, body, status=400)


def test_a_job_output_parameter_must_exist_as_an_input_must(admin, alice):
    """A parameter of a JobOutput type took any number: the job was created naming an output that is not there."""
    template = admin.post("/v1/job-templates/import", {
        "name": "with-output-parameter", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"job_type": "Process<str, str>", "executor_class": "tests.Echo", "required_packages": "",
                     "parameters": {"reference": {"types": ["JobOutput<BLOB>"], "help": "an earlier result"}}}},
        status=201).json
    body = {"input_values": {"input": {"value": "x", "type": "str"}},
            "parameter_values": {"reference": {"value": 99, "type": "JobOutput<BLOB>"}}}
    assert create(alice, template, body, status=400).json["detail"] == (
        "parameter_values.reference: there is no job output 99")
    assert alice.post("/v1/jobs/list").json == []


def test_a_job_output_input_must_be_of_the_declared_type(admin, alice):
    from job_helpers import CONSUME, PRODUCE, register

    produce = admin.post("/v1/job-templates/import", PRODUCE, status=201).json
    consume = admin.post("/v1/job-templates/import", CONSUME, status=201).json
    worker = register(alice)
    job = create(alice, produce, {"input_values": {"input": {"value": "x", "type": "str"}}}).json
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    text = worker.request("POST", f"/v1/jobs/{job['pk']}/outputs/text/str", body=b"x",
                          content_type="text/plain", status=201).json
    blob = worker.request("POST", f"/v1/jobs/{job['pk']}/outputs/blob/BLOB", body=b"x",
                          content_type="application/data", status=201).json
    # The consumer takes a JobOutput<BLOB>: the value claims that type, but names an output of a str.
    refused = create(alice, consume, {"input_values": {"input": {"value": text["pk"], "type": "JobOutput<BLOB>"}}},
                     status=400).json["detail"]
    assert refused == f"input_values.input: job output {text['pk']} is a 'str', not a 'BLOB'"
    create(alice, consume, {"input_values": {"input": {"value": blob["pk"], "type": "JobOutput<BLOB>"}}})
    # JSON Schema takes 1.0 for the integer 1: it names the output 1 too (it was 'there is no job output 1.0'),
    # and the job holds the integer, as the executors and a meta-job's wiring expect.
    job = create(alice, consume, {"input_values": {"input": {"value": float(blob["pk"]), "type": "JobOutput<BLOB>"}}})
    assert job.json["input_values"]["input"] == {"value": blob["pk"], "type": "JobOutput<BLOB>"}
    assert isinstance(alice.get(f"/v1/jobs/{job.json['pk']}").json["input_values"]["input"]["value"], int)


def test_whole_numbers_written_as_floats_are_kept_as_integers(alice, train):
    """An int parameter (or a primary key) written 5.0 passed JSON Schema and was kept as 5.0: the executor got a
    float where its template promised an int (range(5.0) fails)."""
    job = create(alice, train, {"input_values": {"dataset": {**DATASET, "value": 7.0}},
                                "parameter_values": {"epochs": {"value": 5.0, "type": "int"},
                                                     "tag": {"value": "t", "type": "str"}}}).json
    for entry in (job["input_values"]["dataset"], job["parameter_values"]["epochs"]):
        assert isinstance(entry["value"], int), entry
    assert alice.get(f"/v1/jobs/{job['pk']}").json == job


def test_whole_numbers_written_as_floats_in_templates_are_kept_as_integers(admin, alice):
    """As a value given at create-job: a default, and a graph's override of one, written 9.0 for an int were kept
    as 9.0, and the override reached the step's executor as a float."""
    train = admin.post("/v1/job-templates/import", document(TRAIN, specific__parameters__epochs__default=5.0),
                       status=201).json
    assert type(train["parameters"]["epochs"]["default"]) is int
    admin.post("/v1/job-templates/import", PREDICT, status=201)
    meta = admin.post("/v1/job-templates/import", document(
        TRAIN_THEN_PREDICT, specific__nodes__train__parameter_default_overrides__epochs__value=9.0), status=201).json
    assert type(meta["parameters"]["train:epochs"]["default"]) is int
    parent = create(alice, meta, {"input_values": {"train:dataset": DATASET, "predict:dataset": DATASET},
                                  "parameter_values": {"train:tag": {"value": "t", "type": "str"}}}).json
    child = next(job for job in alice.post("/v1/jobs/list").json if job["parent"] == parent["pk"])
    assert child["parameter_values"]["epochs"] == {"value": 9, "type": "int"}
    assert type(child["parameter_values"]["epochs"]["value"]) is int


def test_int_is_accepted_where_float_is_expected(admin, alice):
    template = admin.post("/v1/job-templates/import", {
        "name": "floaty", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"job_type": "Process<str, str>", "executor_class": "x.Y", "required_packages": "",
                     "parameters": {"scale": {"types": ["float"], "help": "", "default": 1.5}}}},
        status=201).json
    job = create(alice, template, {"input_values": {"input": {"value": "hi", "type": "str"}},
                                   "parameter_values": {"scale": {"value": 2, "type": "int"}}}).json
    assert job["parameter_values"] == {"scale": {"value": 2, "type": "int"}}
    # Defaults are not copied into the job: given none, it has none (null, not an empty object).
    job = create(alice, template, {"input_values": {"input": {"value": "hi", "type": "str"}}}).json
    assert job["parameter_values"] is None


def test_meta_job_creates_the_children_that_wait_on_nothing(alice, meta):
    body = {"input_values": {"train:dataset": DATASET, "predict:dataset": {**DATASET, "value": 8}},
            "parameter_values": {"train:tag": {"value": "meta", "type": "str"}},
            "child_notification_overrides": {"train": {"actions": {"on_finish": [{"type": "print"}]}}}}
    parent = create(alice, meta, body).json
    assert parent["template"]["name"] == "train-then-predict" and parent["status"] == "PENDING"
    jobs = alice.post("/v1/jobs/list").json
    children = [job for job in jobs if job["parent"] == parent["pk"]]
    # Only 'train' is created now: 'predict' waits for train's model.
    assert [child["template"]["name"] for child in children] == ["tiny-train"]
    child = children[0]
    assert child["input_values"] == {"dataset": DATASET}
    assert child["parameter_values"] == {"tag": {"value": "meta", "type": "str"},
                                         "epochs": {"value": 9, "type": "int"}}
    # The graph's override is only a default: a value given for the step wins over it.
    body["parameter_values"]["train:epochs"] = {"value": 3, "type": "int"}
    parent = create(alice, meta, body).json
    child = next(job for job in alice.post("/v1/jobs/list").json if job["parent"] == parent["pk"])
    assert child["parameter_values"]["epochs"] == {"value": 3, "type": "int"}


def test_a_later_step_gets_its_own_inputs_from_the_meta_job_beside_the_wired_one(alice, meta):
    """predict waits for train's model, and takes its dataset from the meta-job's ``predict:dataset``: both
    must reach it when train's finish creates it."""
    from urllib.parse import quote

    from job_helpers import register
    from templates_fixtures import IC_NUMPY

    body = {"input_values": {"train:dataset": DATASET, "predict:dataset": {**DATASET, "value": 8}},
            "parameter_values": {"train:tag": {"value": "meta", "type": "str"}}}
    parent = create(alice, meta, body).json

    def steps():
        return {job["template"]["name"]: job for job in alice.post("/v1/jobs/list").json
                if job["parent"] == parent["pk"]}

    train, worker = steps()["tiny-train"], register(alice)
    worker.get(f"/v1/jobs/{train['pk']}/acquire")
    worker.post(f"/v1/jobs/{train['pk']}/start", {})
    model = worker.request("POST", f"/v1/jobs/{train['pk']}/outputs/model/{quote(f'Model<{IC_NUMPY}>')}",
                           body=b"weights", content_type="application/data", status=201).json
    worker.post(f"/v1/jobs/{train['pk']}/finish", {})
    assert steps()["tiny-predict"]["input_values"] == {
        "dataset": {**DATASET, "value": 8}, "model": {"value": model["pk"], "type": f"JobOutput<{model['type']}>"}}


def test_meta_job_validation_uses_prefixed_names(alice, meta):
    detail = create(alice, meta, {"input_values": {"dataset": DATASET}}, status=400).json["detail"]
    assert "unknown input(s) dataset" in detail


def test_deleted_templates_run_no_jobs(admin, alice, train):
    admin.delete(f"/v1/job-templates/{train['pk']}")
    body = {"input_values": {"dataset": DATASET}, "parameter_values": {"tag": {"value": "x", "type": "str"}}}
    assert "is deleted" in create(alice, train, body, status=400).json["detail"]


def test_hard_delete_of_a_template_with_jobs_is_409(admin, alice, train):
    create(alice, train, {"input_values": {"dataset": DATASET},
                          "parameter_values": {"tag": {"value": "x", "type": "str"}}})
    response = admin.delete(f"/v1/job-templates/{train['pk']}/hard", status=409)
    assert "used by 1 job(s)" in response.json["detail"]


def test_anonymous_cannot_create_jobs(anonymous, train):
    create(anonymous, train, {"input_values": {"dataset": DATASET}}, status=401)
