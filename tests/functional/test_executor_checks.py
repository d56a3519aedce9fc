"""create-job asks the template's executor, when the server has it installed, whether it could ever run the job
(``Executor.check_job``): the Seed executor's rules for a v6 job type's template, and plugin executors of this
module's own (registered with a second app) for the merge of parameters, a plugin's bug and no check at all."""
import logging
import sys

import pytest
import webtest

from ufdl_pyramid.executors import ExecutionError, Executor
from ufdl_pyramid.plugins import hookimpl
from ufdl_pyramid.testing import ApiClient, make_test_app

from test_scale_job_types import SPEC_POST, template_of


def create_job(client, template: dict, value, status: int):
    return client.post(f"/v1/job-templates/{template['pk']}/create-job",
                       {"input_values": {"input": {"value": value, "type": "JSON"}}}, status=status)


def jobs_of(client, template: dict) -> list[dict]:
    return client.post("/v1/jobs/list", {"expressions": [
        {"type": "exact", "field": "template", "value": template["pk"]}]}).json


@pytest.fixture
def seed_template(admin, bob):
    return template_of(bob, admin.post("/v6/job-types/", SPEC_POST, status=201).json)


# The spec's manifest takes INPUT_TEXT (a file: a job-output pk) and READ_LENGTH (an integer), both required.
@pytest.mark.parametrize("value, problem", [
    ({"INPUT_TEXT": 12}, "the required input 'READ_LENGTH' is missing"),
    ({"INPUT_TEXT": 12, "READ_LENGTH": "five"}, "input 'READ_LENGTH' must be of JSON type integer, not string"),
    ({"INPUT_TEXT": 12, "READ_LENGTH": 5, "LENGTH": 5}, "input 'LENGTH' is not an input of test 1.0.0"),
    ({"INPUT_TEXT": "notes.txt", "READ_LENGTH": 5}, "input 'INPUT_TEXT' must be a job-output pk"),
    ([{"INPUT_TEXT": 12, "READ_LENGTH": 5}], "the input 'input' must be a JSON object"),
])
def test_a_v6_job_the_seed_executor_would_refuse_is_400_and_not_created(bob, seed_template, spec_input, value,
                                                                        problem):
    detail = create_job(bob, seed_template, value, 400).json["detail"]
    assert detail.startswith("ufdl_seed.SeedExecutor refuses the job: ") and problem in detail
    assert jobs_of(bob, seed_template) == []
    assert create_job(bob, seed_template, spec_input, 201).json["input_values"]["input"]["value"] == spec_input


def test_a_v6_job_whose_file_input_names_no_output_is_400_and_not_created(admin, bob, seed_template, spec_input):
    """The Seed executor answers the outputs its file inputs name: each must be there (not deleted, nor its
    job), as a JobOutput<T> input must, or the job would only fail on its node when it downloads it."""
    source = spec_input["INPUT_TEXT"]
    for missing in (source + 1000, 2 ** 62):
        assert create_job(bob, seed_template, {**spec_input, "INPUT_TEXT": missing}, 400).json == {
            "detail": f"input 'INPUT_TEXT': there is no job output {missing}"}
    admin.delete(f"/v1/job-outputs/{source}")
    assert create_job(bob, seed_template, spec_input, 400).json == {
        "detail": f"input 'INPUT_TEXT': there is no job output {source}"}
    admin.delete(f"/v1/job-outputs/{source}/reinstate")
    source_job = admin.get(f"/v1/job-outputs/{source}").json["job"]
    admin.delete(f"/v1/jobs/{source_job}")
    create_job(bob, seed_template, spec_input, 400)
    assert jobs_of(bob, seed_template) == []
    admin.delete(f"/v1/jobs/{source_job}/reinstate")
    create_job(bob, seed_template, spec_input, 201)


@pytest.mark.parametrize("command, problem", [
    ("${INPUT_TEXT} ${INPUT_FILES} ${READ_LENGTH}", "the manifest's command names ${INPUT_FILES}, which is no "
                                                    "input, setting or resource variable of test 1.0.0"),
    ("run --password=${DB_PASS}", "the manifest's command names the secret setting ${DB_PASS}"),
])
def test_a_template_whose_command_no_run_could_fill_is_refused(bob, engine, seed_template, spec_input, command,
                                                               problem):
    """A job type made before validation checked the command: its revision's template holds such a manifest."""
    from sqlalchemy import select, update
    from ufdl_pyramid.models import JobTemplate
    with engine.begin() as connection:
        parameters = connection.scalar(select(JobTemplate.parameters).where(JobTemplate.id == seed_template["pk"]))
        parameters["seed_manifest"]["default"]["job"]["interface"]["command"] = command
        connection.execute(update(JobTemplate).where(JobTemplate.id == seed_template["pk"])
                           .values(parameters=parameters))
    detail = create_job(bob, seed_template, spec_input, 400).json["detail"]
    assert detail.startswith("ufdl_seed.SeedExecutor refuses the job: ") and problem in detail
    assert jobs_of(bob, seed_template) == []


def test_a_meta_jobs_first_step_is_checked_by_its_executor(admin, bob, seed_template, spec_input):
    graph = admin.post("/v1/job-templates/import", {
        "name": "seed-graph", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"nodes": {"seed": {"name": seed_template["name"], "version": 1}}, "dependencies": []}},
        status=201).json

    def create(value, status):
        return bob.post(f"/v1/job-templates/{graph['pk']}/create-job",
                        {"input_values": {"seed:input": {"value": value, "type": "JSON"}}}, status=status)

    detail = create({"INPUT_TEXT": spec_input["INPUT_TEXT"]}, 400).json["detail"]
    assert detail.startswith("graph node seed: ufdl_seed.SeedExecutor refuses the job: ") and "READ_LENGTH" in detail
    missing = spec_input["INPUT_TEXT"] + 1
    assert create({**spec_input, "INPUT_TEXT": missing}, 400).json == {
        "detail": f"graph node seed: input 'INPUT_TEXT': there is no job output {missing}"}
    assert jobs_of(bob, graph) == [] and jobs_of(bob, seed_template) == []  # neither the parent nor its step
    parent = create(spec_input, 201).json
    [step] = bob.post("/v1/jobs/list", {"expressions": [{"type": "exact", "field": "parent",
                                                           "value": parent["pk"]}]}).json
    assert step["input_values"] == {"input": {"value": spec_input, "type": "JSON"}}


# Executors of this module, registered only with the app of ``plugged``.

class Picky(Executor):
    """Refuses an input longer than its parameter ``limit``."""

    @classmethod
    def check_job(cls, parameters, inputs):
        if len(inputs["input"]) > parameters["limit"]:
            raise ExecutionError(f"input 'input' is longer than {parameters['limit']} characters")


class Buggy(Executor):
    """A check with a bug of its own, which first meddles with the input it was given."""

    @staticmethod
    def check_job(parameters, inputs):
        inputs["input"].clear()
        raise KeyError("a bug")


class Reader(Executor):
    """Reads the job outputs whose pks its JSON input lists (``{"files": [...]}``), as the Seed executor does."""

    @classmethod
    def check_job(cls, parameters, inputs):
        return {"input 'files'": inputs["input"]["files"]}


class Garbled(Executor):
    """Answers what is no ``{what: [pk, ...]}``: a plugin's bug."""

    @classmethod
    def check_job(cls, parameters, inputs):
        return 12


class Unchecked:
    """No ``check_job``: an executor class need not derive from ``Executor``."""

    def execute(self, context):
        pass


@hookimpl
def ufdl_register_executors():
    return [Picky, Buggy, Reader, Garbled, Unchecked]


def template(admin, name: str, executor_class: str, parameters: dict | None = None,
             job_type: str = "Process<str, str>") -> dict:
    return admin.post("/v1/job-templates/import", {
        "name": name, "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"job_type": job_type, "executor_class": executor_class, "required_packages": "",
                     "parameters": parameters or {}}}, status=201).json


@pytest.fixture(scope="module")
def plugged_app(engine):
    return webtest.TestApp(make_test_app(engine, extra_plugins=[sys.modules[__name__]]))


@pytest.fixture
def plugged(plugged_app, bob):
    """bob, on an app with this module's executors installed."""
    return ApiClient(plugged_app, bob.token, bob.refresh_token, user_id=bob.user_id)


def text_job(client, template: dict, text: str, status: int, **parameters):
    return client.post(f"/v1/job-templates/{template['pk']}/create-job", {
        "input_values": {"input": {"value": text, "type": "str"}},
        "parameter_values": {name: {"value": value, "type": "int"} for name, value in parameters.items()}},
        status=status)


def test_the_check_sees_the_defaults_merged_with_the_jobs_parameters(admin, plugged):
    picky = template(admin, "picky", f"{__name__}.Picky",
                     {"limit": {"types": ["int"], "help": "", "default": 3}})
    assert text_job(plugged, picky, "long", 400).json == {
        "detail": f"{__name__}.Picky refuses the job: input 'input' is longer than 3 characters"}
    assert plugged.post("/v1/jobs/list").json == []
    text_job(plugged, picky, "abc", 201)
    text_job(plugged, picky, "long", 201, limit=4)
    assert text_job(plugged, picky, "longer", 400, limit=4).json["detail"].endswith("longer than 4 characters")
    # An executor without a check, and one the server does not have, take what the template's types take.
    text_job(plugged, template(admin, "unchecked", f"{__name__}.Unchecked"), "anything", 201)
    text_job(plugged, template(admin, "elsewhere", "not_installed_here.Executor"), "anything", 201)


def test_a_check_that_raises_something_else_is_logged_and_the_job_created(admin, plugged, caplog):
    buggy = template(admin, "buggy", f"{__name__}.Buggy", job_type="Process<JSON, str>")
    caplog.set_level(logging.ERROR, logger="ufdl_pyramid.services.executor_checks")
    job = create_job(plugged, buggy, {"keep": "me"}, 201).json
    [record] = [record for record in caplog.records if record.name == "ufdl_pyramid.services.executor_checks"]
    assert f"{__name__}.Buggy.check_job raised" in record.getMessage() and "KeyError: 'a bug'" in record.exc_text
    [listed] = plugged.post("/v1/jobs/list").json
    # The check was given a copy: the job keeps its input as given.
    assert listed["pk"] == job["pk"] and listed["input_values"]["input"]["value"] == {"keep": "me"}


def test_the_outputs_a_check_answers_must_be_there(admin, plugged, spec_input, caplog):
    reader = template(admin, "reader", f"{__name__}.Reader", job_type="Process<JSON, str>")
    there = spec_input["INPUT_TEXT"]
    for files, named in (([there, there + 1], there + 1), ([there, True], "true"), ([there, "12"], '"12"')):
        assert create_job(plugged, reader, {"files": files}, 400).json == {
            "detail": f"input 'files': there is no job output {named}"}
    assert jobs_of(plugged, reader) == []
    create_job(plugged, reader, {"files": [there, there]}, 201)
    # An answer of another form is the plugin's bug: logged, and the job created with its downloads unchecked.
    caplog.set_level(logging.ERROR, logger="ufdl_pyramid.services.executor_checks")
    create_job(plugged, template(admin, "garbled", f"{__name__}.Garbled", job_type="Process<JSON, str>"),
               {"files": [there + 1]}, 201)
    [record] = [record for record in caplog.records if record.name == "ufdl_pyramid.services.executor_checks"]
    assert record.getMessage().startswith(f"{__name__}.Garbled.check_job answered 12, not {{what: [job-output pk")
