"""The Scale v6 job-type API (seed 002): reads, paging and filters, validation, creation, revisions, editing,
secret settings, permissions and bad input."""
import copy
import json
import pathlib
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from ufdl_pyramid.models import SeedJobType

MANIFESTS = pathlib.Path(__file__).parent / "seed_manifests"
# The body of the spec's "Add Seed Image" example (its JSON is valid as written).
# The spec's "Add Seed Image" example, with the errors' names it leaves out (the Seed standard requires them).
SPEC_POST = json.loads((MANIFESTS / "spec_add_seed_image.json").read_text())


def manifest(name: str, version: str | None = None, job_name: str | None = None) -> dict:
    """One of the Seed spec's example manifests, with another jobVersion or name if asked."""
    document = json.loads((MANIFESTS / f"{name}.manifest.json").read_text())
    if version is not None:
        document["job"]["jobVersion"] = version
    if job_name is not None:
        document["job"]["name"] = job_name
    return document


def add(admin, document: dict, image: str = "registry/job:1", status: int = 201, **fields):
    return admin.post("/v6/job-types/", {"docker_image": image, "manifest": document, **fields}, status=status)


@pytest.fixture
def spec_job(admin):
    return admin.post("/v6/job-types/", SPEC_POST, status=201)


# Reads

def test_anonymous_is_401_everywhere(anonymous, spec_job):
    for path in ("/v6/job-type-names/", "/v6/job-types/", "/v6/job-types/test/", "/v6/job-types/test/1.0.0/",
                 "/v6/job-types/test/1.0.0/revisions/", "/v6/job-types/test/1.0.0/revisions/1/",
                 "/v6/job-types/nothing/9.9.9/"):
        refused = anonymous.get(path, status=401)
        assert refused.json == {"detail": "Authentication credentials were not provided."}
    anonymous.post("/v6/job-types/", SPEC_POST, status=401)
    anonymous.post("/v6/job-types/validation/", {"manifest": SPEC_POST["manifest"]}, status=401)
    anonymous.patch("/v6/job-types/test/1.0.0/", {"is_paused": True}, status=401)


def test_the_spec_example_is_created_and_read_back(admin, alice, spec_job):
    details = spec_job.json
    assert spec_job.headers["Location"] == "http://localhost/v6/job-types/test/1.0.0/"
    assert details["name"] == "test" and details["version"] == "1.0.0"
    assert details["title"] == "Job to demonstrate job type APIs"
    assert details["description"] == SPEC_POST["manifest"]["job"]["description"]
    assert (details["icon_code"], details["max_scheduled"], details["docker_image"]) == (
        "f1c5", 1, "test-1.0.0-seed:1.0.0")
    assert (details["is_published"], details["is_active"], details["is_paused"], details["is_system"]) == (
        False, True, False, False)
    assert (details["max_tries"], details["revision_num"], details["recipe_types"]) == (3, 1, [])
    assert details["manifest"] == SPEC_POST["manifest"]
    assert details["deprecated"] is None and details["paused"] is None
    assert details["created"].endswith("Z") and details["last_modified"].endswith("Z")
    # Made in one moment, as Scale's example shows: last_modified came before created, the revision after both.
    assert details["last_modified"] == details["created"]
    assert alice.get("/v6/job-types/test/1.0.0/revisions/1/").json["created"] == details["created"]
    # Any user reads it, with or without the trailing slash.
    assert alice.get("/v6/job-types/test/1.0.0/").json == details
    assert alice.get("/v6/job-types/test/1.0.0").json == details


def test_lists(admin, alice, spec_job):
    add(admin, manifest("complete"))
    add(admin, manifest("complete", "1.1.0"))
    listed = alice.get("/v6/job-types/").json
    assert listed["count"] == 3 and listed["next"] is None and listed["previous"] is None
    assert [(row["name"], row["version"]) for row in listed["results"]] == [
        ("my-job", "1.0.0"), ("my-job", "1.1.0"), ("test", "1.0.0")]
    assert set(listed["results"][0]) == {
        "id", "name", "version", "title", "description", "icon_code", "is_published", "is_active", "is_paused",
        "is_system", "max_scheduled", "revision_num", "docker_image", "created", "deprecated", "paused",
        "last_modified"}
    assert alice.get("/v6/job-types").json == listed
    names = alice.get("/v6/job-type-names/").json
    assert names == {"count": 2, "next": None, "previous": None, "results": [
        {"name": "my-job", "title": "My first job", "description": manifest("complete")["job"]["description"],
         "icon_code": None, "is_published": False, "versions": ["1.0.0", "1.1.0"],
         "latest_version": "1.1.0"},
        {"name": "test", "title": "Job to demonstrate job type APIs", "description": SPEC_POST["manifest"]["job"][
            "description"], "icon_code": "f1c5", "is_published": False, "versions": ["1.0.0"],
         "latest_version": "1.0.0"}]}
    versions = alice.get("/v6/job-types/my-job/").json  # newest first, as Scale's view lists them
    assert [row["version"] for row in versions["results"]] == ["1.1.0", "1.0.0"]
    assert versions["count"] == 2 and "unmet_resources" in versions["results"][0]


def test_the_configuration_is_answered_whole(admin, alice, spec_job):
    """The v6 docs call a configuration's mounts, output_workspaces, priority and settings required, and Scale
    answers its defaults for those not given: a job type without a configuration was answered null, the spec's
    example without a priority."""
    whole = {"mounts": {}, "output_workspaces": {"outputs": {}}, "priority": 100, "settings": {}}
    assert spec_job.json["configuration"] == {**SPEC_POST["configuration"], "priority": 100,
                                              "settings": {"DB_HOST": "som.host.name"}}
    assert add(admin, manifest("random-number")).json["configuration"] == whole
    admin.patch("/v6/job-types/test/1.0.0/", {"configuration": None}, status=200)
    assert alice.get("/v6/job-types/test/1.0.0/").json["configuration"] == whole
    admin.patch("/v6/job-types/test/1.0.0/", {"configuration": {"priority": 7, "output_workspaces": {
        "default": "w"}}}, status=200)
    assert alice.get("/v6/job-types/test/1.0.0/").json["configuration"] == {
        "mounts": {}, "output_workspaces": {"default": "w", "outputs": {}}, "priority": 7, "settings": {}}


def test_latest_version_follows_semantic_versioning(admin, alice):
    for version in ("1.10.0", "1.9.0", "1.10.0-alpha", "1.10.0-alpha.2", "1.10.0-alpha.10", "1.10.0+build.7"):
        add(admin, manifest("random-number", version))
    [names] = alice.get("/v6/job-type-names/").json["results"]
    assert names["versions"] == ["1.9.0", "1.10.0-alpha", "1.10.0-alpha.2", "1.10.0-alpha.10", "1.10.0",
                                 "1.10.0+build.7"]
    assert names["latest_version"] == "1.10.0+build.7"
    assert [row["version"] for row in alice.get("/v6/job-types/random-number-gen/").json["results"]] == list(
        reversed(names["versions"]))


@pytest.mark.parametrize("version", ["1.0.0-alpha", "1.0.0+build.1", "2.0.0-rc.1+exp.sha.5114f85"])
def test_versions_with_pre_release_or_build_parts_are_reachable(admin, alice, version):
    created = add(admin, manifest("random-number", version))
    assert created.json["version"] == version
    assert alice.get(created.headers["Location"]).json["version"] == version
    assert alice.get(f"/v6/job-types/random-number-gen/{version}/").json == created.json
    assert alice.get(f"/v6/job-types/random-number-gen/{version}/revisions/1/").json["job_type"]["version"] == version


def test_unknown_names_versions_and_revisions_are_404(alice, spec_job):
    for path in ("/v6/job-types/nothing/", "/v6/job-types/nothing/1.0.0/", "/v6/job-types/test/2.0.0/",
                 "/v6/job-types/test/1.0.0/revisions/2/", "/v6/job-types/test/1.0.0/revisions/x/",
                 "/v6/job-types/test/1.0.0/revisions/0/", "/v6/job-types/test/1.0.0/revisions/99999999999/",
                 "/v6/job-types/test/1.0.0/other/", "/v6/job-types/%00/", "/v6/job-types/test/%00/",
                 "/v6/job-types/" + "a" * 300 + "/", "/v6/nothing/"):
        assert alice.get(path, status=404).json == {"detail": "Not found."}, path


def test_revisions(admin, alice, spec_job):
    changed = copy.deepcopy(SPEC_POST)
    changed["manifest"]["job"]["title"] = "A new title"
    second = admin.post("/v6/job-types/", changed, status=201).json
    assert second["revision_num"] == 2 and second["id"] == spec_job.json["id"] and second["title"] == "A new title"
    revisions = alice.get("/v6/job-types/test/1.0.0/revisions/").json
    # Newest first, as Scale's view lists them (order -revision_num).
    assert revisions["count"] == 2 and [row["revision_num"] for row in revisions["results"]] == [2, 1]
    first = revisions["results"][1]
    assert set(first) == {"id", "job_type", "revision_num", "docker_image", "created"}
    assert first["job_type"] == {"id": second["id"], "name": "test", "version": "1.0.0", "title": "A new title",
                                 "description": second["description"], "is_active": True, "is_paused": False,
                                 "is_published": False, "icon_code": "f1c5", "unmet_resources": "cpus,mem"}
    assert revisions["results"][0]["created"] == second["last_modified"]  # the revision is the change
    one = alice.get("/v6/job-types/test/1.0.0/revisions/1/").json
    assert one["manifest"] == SPEC_POST["manifest"] and one["docker_image"] == "test-1.0.0-seed:1.0.0"
    assert alice.get("/v6/job-types/test/1.0.0/revisions/2").json["manifest"] == changed["manifest"]


def test_unmet_resources_lists_what_no_node_offers(admin, alice):
    """What no registered node would acquire a job for (a node that did not say is not held back); disk and
    sharedMem are taken as offered, nodes do not report them."""
    document = manifest("random-number")
    document["job"]["resources"] = {"scalar": [
        {"name": "cpus", "value": 4}, {"name": "mem", "value": 1024}, {"name": "gpus", "value": 2},
        {"name": "disk", "value": 10}, {"name": "sharedMem", "value": 1}, {"name": "chocolate", "value": 2}]}
    add(admin, document)
    path = "/v6/job-types/random-number-gen/0.1.0/"
    assert alice.get(path).json["unmet_resources"] == "cpus,mem,gpus,chocolate"
    small = alice.post("/v1/nodes/create", {"ip": "10.0.0.1", "index": 0, "cpu_mem": 2**29, "cpus": 2,
                                            "gpu_mem": 8 * 2**30, "gpus": 1}, status=201).json
    assert alice.get(path).json["unmet_resources"] == "cpus,mem,gpus,chocolate"
    alice.patch(f"/v1/nodes/{small['pk']}", {"cpus": 4, "gpus": None}, status=200)  # a GPU at least, of no count
    assert alice.get(path).json["unmet_resources"] == "mem,chocolate"
    alice.post("/v1/nodes/create", {"ip": "10.0.0.2", "index": 0, "driver_version": "1", "hardware_generation":
                                    "Pascal", "cpu_mem": 2 * 2**30}, status=201)
    assert alice.get(path).json["unmet_resources"] == "chocolate"


# Paging

def test_paging(admin, alice):
    for minor in range(5):
        add(admin, manifest("random-number", f"1.{minor}.0"))
    first = alice.get("/v6/job-types/?page_size=2&is_system=false").json
    assert first["count"] == 5 and len(first["results"]) == 2 and first["previous"] is None
    next_url = urlsplit(first["next"])
    assert next_url.scheme == "http" and next_url.path == "/v6/job-types/"
    assert parse_qs(next_url.query) == {"page_size": ["2"], "is_system": ["false"], "page": ["2"]}
    second = alice.get(first["next"]).json
    # As DRF's: page 1 is the default, so the link to it drops page (and keeps the rest).
    assert parse_qs(urlsplit(second["previous"]).query) == {"page_size": ["2"], "is_system": ["false"]}
    assert alice.get(second["previous"]).json == first
    third = alice.get(second["next"]).json
    assert third["next"] is None and len(third["results"]) == 1
    assert parse_qs(urlsplit(third["previous"]).query) == {"page_size": ["2"], "is_system": ["false"],
                                                           "page": ["2"]}
    seen = [row["version"] for page in (first, second, third) for row in page["results"]]
    assert sorted(seen) == [f"1.{minor}.0" for minor in range(5)]
    assert alice.get("/v6/job-types/?page=4&page_size=2", status=404).json == {"detail": "Invalid page."}
    assert alice.get("/v6/job-types/?page=0", status=404).json == {"detail": "Invalid page."}
    # page_size is brought into 1..1000.
    assert len(alice.get("/v6/job-types/?page_size=0").json["results"]) == 1
    assert len(alice.get("/v6/job-types/?page_size=-5").json["results"]) == 1
    assert len(alice.get("/v6/job-types/?page_size=5000").json["results"]) == 5
    # An empty first page exists.
    assert alice.get("/v6/job-types/?keyword=nothing").json == {"count": 0, "next": None, "previous": None,
                                                                 "results": []}
    assert alice.get("/v6/job-type-names/?page=2", status=404).json == {"detail": "Invalid page."}
    assert alice.get("/v6/job-types/random-number-gen/?page_size=3&page=2").json["count"] == 5
    assert alice.get("/v6/job-types/random-number-gen/1.0.0/revisions/?page=2", status=404).json == {
        "detail": "Invalid page."}


# Filters and order

def test_a_keyword_matches_one_tag_or_the_name_in_any_letters_case(admin, alice):
    document = manifest("random-number")
    document["job"]["tags"] = ["Übersetzung", "image", "processing"]
    add(admin, document)

    def count(keyword: str) -> int:
        return alice.get(f"/v6/job-types/?{urlencode({'keyword': keyword})}").json["count"]

    assert count("übersetzung") == count("ÜBERSETZUNG") == count("bersetz") == 1
    assert count("image") == count("processing") == 1
    assert count("e\np") == count("image\nprocessing") == 0  # across two tags


def test_filters(admin, alice, spec_job):
    add(admin, manifest("complete"))
    add(admin, manifest("watermark"))
    other = add(admin, manifest("random-number")).json
    admin.patch("/v6/job-types/image-watermark/0.1.0/", {"is_active": False}, status=200)

    def names(query: str, path: str = "/v6/job-types/") -> list:
        return [row["name"] for row in alice.get(path + query).json["results"]]

    assert names("?keyword=WATER") == ["image-watermark"]  # name, case-insensitive
    assert names("?keyword=sample") == ["test"]  # a tag
    assert names("?keyword=sample&keyword=random") == ["random-number-gen", "test"]
    assert names("?keyword=%25") == [] and names("?keyword=_") == []  # literal % and _
    assert names("?keyword=-") == ["image-watermark", "my-job", "random-number-gen"]
    assert names(f"?id={other['id']}") == ["random-number-gen"]
    assert names(f"?id={other['id']}&id={spec_job.json['id']}") == ["random-number-gen", "test"]
    assert names("?id=99999999999") == []
    assert names("?is_active=FALSE") == ["image-watermark"]
    assert names("?is_active=1") == ["my-job", "random-number-gen", "test"]
    assert names("?is_system=true") == [] and len(names("?is_system=0")) == 4
    assert names("?is_active=false", "/v6/job-type-names/") == ["image-watermark"]
    assert names("?keyword=job", "/v6/job-type-names/") == ["my-job", "test"]
    assert [row["version"] for row in alice.get("/v6/job-types/my-job/?is_active=false").json["results"]] == []


def test_order(admin, alice):
    add(admin, manifest("random-number", "1.0.0"), image="b")
    add(admin, manifest("random-number", "2.0.0"), image="a")
    add(admin, manifest("watermark"), image="a")

    def order(query: str) -> list:
        return [(row["name"], row["version"]) for row in alice.get("/v6/job-types/" + query).json["results"]]

    assert order("?order=-name") == [("random-number-gen", "1.0.0"), ("random-number-gen", "2.0.0"),
                                     ("image-watermark", "0.1.0")]
    assert order("?order=docker_image&order=-version") == [
        ("random-number-gen", "2.0.0"), ("image-watermark", "0.1.0"), ("random-number-gen", "1.0.0")]
    assert [row["name"] for row in alice.get("/v6/job-type-names/?order=-name").json["results"]] == [
        "random-number-gen", "image-watermark"]
    # Nulls sort above every value, as on Scale's PostgreSQL, on SQLite too (which sorted them below).
    admin.patch("/v6/job-types/random-number-gen/2.0.0/", {"is_active": False}, status=200)
    assert order("?order=deprecated") == [("random-number-gen", "2.0.0"), ("random-number-gen", "1.0.0"),
                                          ("image-watermark", "0.1.0")]
    assert order("?order=-deprecated&order=name") == [("image-watermark", "0.1.0"), ("random-number-gen", "1.0.0"),
                                                      ("random-number-gen", "2.0.0")]
    # The docs' example, order=name&order=version, holds for the names too (it was a 400 there).
    for query in ("?order=name&order=version", "?order=-version&order=name"):
        assert [row["name"] for row in alice.get("/v6/job-type-names/" + query).json["results"]] == [
            "image-watermark", "random-number-gen"], query


@pytest.mark.parametrize("query", [
    "page=x", "page=1.5", "page=", "page=" + "9" * 30, "page_size=abc", "page_size=" + "1" * 5000,
    "id=abc", "id=1.0", "id=", "is_active=yes", "is_active=", "is_system=maybe", "order=nope", "order=",
    "order=--name", "keyword=%00", "keyword=%ED%A0%80", "page=%FF"])
@pytest.mark.parametrize("path", ["/v6/job-types/", "/v6/job-type-names/"])
def test_malformed_query_parameters_are_400(alice, spec_job, path, query):
    refused = alice.get(f"{path}?{query}", status=400)
    assert set(refused.json) == {"detail"}


@pytest.mark.parametrize("path", ["/v6/job-types/", "/v6/job-type-names/"])
def test_many_keywords_or_orders_are_no_server_error(alice, spec_job, path):
    """SQLite refused the SQL (an expression tree over 1,000 deep, over 2,000 ORDER BY terms): a 500."""
    keywords = "&".join(f"keyword=k{number}" for number in range(500))
    assert "at most 100" in alice.get(f"{path}?{keywords}", status=400).json["detail"]
    many = "&".join(f"keyword=k{number}" for number in range(99)) + "&keyword=job"
    assert alice.get(f"{path}?{many}").json["count"] == 1
    # Ordering by a field again changes nothing.
    assert alice.get(f"{path}?{'&'.join(['order=-name'] * 3000)}").json["count"] == 1


@pytest.mark.parametrize("path", ["/v6/job-types/", "/v6/job-type-names/"])
def test_a_keyword_longer_than_a_like_pattern_may_be_is_400(alice, spec_job, path):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): a 500 on SQLite alone."""
    refused = alice.get(f"{path}?keyword=job&keyword={'k' * 10_001}", status=400).json
    assert refused == {"detail": "keyword: at most 10000 characters, not 10001"}
    assert alice.get(f"{path}?keyword={'%F0%9F%98%80' * 10_000}").json["count"] == 0


@pytest.mark.parametrize("query", ["page=x", "page_size=y", "is_active=2"])
def test_malformed_paging_of_versions_and_revisions_is_400(alice, spec_job, query):
    alice.get(f"/v6/job-types/test/?{query}", status=400)
    if not query.startswith("is_active"):
        alice.get(f"/v6/job-types/test/1.0.0/revisions/?{query}", status=400)


# Validation

def test_validation(alice):
    for name in ("complete", "random-number", "read-bytes", "watermark"):
        answer = alice.post("/v6/job-types/validation/", {"manifest": manifest(name)}).json
        # Without a configuration, the mounts, settings and workspaces a manifest asks for are warned about.
        assert answer["is_valid"] is True and answer["errors"] == [], name
    spec = {"manifest": SPEC_POST["manifest"], "configuration": SPEC_POST["configuration"]}
    assert alice.post("/v6/job-types/validation/", spec).json["is_valid"] is True
    assert alice.post("/v6/job-types/validation", spec).json["is_valid"] is True


def test_a_settings_value_is_never_in_an_error(admin, alice, caplog):
    """A setting's value may be a secret: a wrong one is named by its JSON type only, in the answer and in
    what the server logs."""
    secret = "hunter2-SECRET"
    for settings, problem in (({**SPEC_POST["configuration"]["settings"], "DB_PASS": [secret]},
                               'configuration.settings.DB_PASS: an array is not of type "string"'),
                              ([secret], 'configuration.settings: an array is not of type "object"')):
        body = {**SPEC_POST, "configuration": {**SPEC_POST["configuration"], "settings": settings}}
        answer = alice.post("/v6/job-types/validation/", {key: body[key] for key in ("manifest", "configuration")})
        assert problem + " (the value is not shown)" in [error["description"] for error in answer.json["errors"]]
        refused = admin.post("/v6/job-types/", body, status=400)
        assert secret not in answer.text and secret not in refused.text
    assert secret not in caplog.text


def test_a_request_checks_the_manifest_against_the_schema_once(admin, alice, monkeypatch):
    """The configuration's check asked validate_manifest again, for the schema's whole walk over the manifest:
    twice per validation, creation or edit. Nothing else shows it, so the schema's checks are counted."""
    from ufdl_pyramid.services import seed_validation

    checked = []

    class CountingValidator:
        def iter_errors(self, instance, _validator=seed_validation._MANIFEST_VALIDATOR):
            checked.append(instance)
            return _validator.iter_errors(instance)

    monkeypatch.setattr(seed_validation, "_MANIFEST_VALIDATOR", CountingValidator())
    spec = {"manifest": SPEC_POST["manifest"], "configuration": SPEC_POST["configuration"]}
    assert alice.post("/v6/job-types/validation/", spec).json["is_valid"] is True
    assert len(checked) == 1
    admin.post("/v6/job-types/", SPEC_POST, status=201)
    assert len(checked) == 2
    admin.patch("/v6/job-types/test/1.0.0/", {"configuration": SPEC_POST["configuration"]})
    assert len(checked) == 3


@pytest.mark.parametrize("document", [
    {"seedVersion": "0.9.0", "job": manifest("random-number")["job"]},
    manifest("random-number", job_name="my-job\n"),
    ["not", "an", "object"], "a string", {"seedVersion": "1.0.0"}])
def test_validation_reports_invalid_manifests(alice, admin, document):
    answer = alice.post("/v6/job-types/validation/", {"manifest": document}).json
    assert answer["is_valid"] is False and answer["errors"]
    assert all(set(error) == {"name", "description"} for error in answer["errors"])
    assert answer["errors"][0]["name"] == "JSON_VALIDATION_ERROR"
    # The same manifest is refused on creation, with the same errors, and nothing is stored.
    refused = add(admin, document, status=400).json
    assert refused["is_valid"] is False and refused["errors"] == answer["errors"] and refused["detail"]
    assert admin.get("/v6/job-types/").json["count"] == 0


def test_validation_reports_the_errors_of_a_bad_manifest_and_a_bad_configuration_at_once(alice):
    """design notes §7: every error. The configuration's went unreported while the manifest had any."""
    bad_manifest = {**SPEC_POST["manifest"], "seedVersion": "0.9.0"}
    bad_configuration = {"mounts": {"MOUNT_PATH": {"type": "host", "host_path": "relative/path"}}, "priority": 0}
    answer = alice.post("/v6/job-types/validation/", {"manifest": bad_manifest,
                                                      "configuration": bad_configuration}).json
    names = {error["name"] for error in answer["errors"]}
    assert answer["is_valid"] is False and {"JSON_VALIDATION_ERROR", "INVALID_CONFIGURATION"} <= names, names


def test_validation_answers_stay_small_however_many_problems(alice):
    """The meaning's errors, the configuration's mounts and the warnings were listed one by one, each duplicate
    with its every owner: a 1 MB manifest drew answers of 5 MB. At most 100 are listed, the rest counted."""
    document = manifest("random-number")
    document["job"]["interface"] = {"inputs": {"json": [{"name": "same", "type": "string"}] * 300 + [
        {"name": f"i{number // 2}", "type": "string"} for number in range(400)]}}
    errors = alice.post("/v6/job-types/validation/", {"manifest": document}).json["errors"]
    assert [error["name"] for error in errors] == ["NAME_COLLISION_ERROR"] * 101
    assert len(errors[0]["description"]) < 500 and "295 more" in errors[0]["description"]
    assert errors[-1]["description"].startswith("101 more not listed")
    document["job"]["interface"] = {"settings": [{"name": f"s{number}"} for number in range(300)]}
    configuration = {"mounts": {f"m{number}": {"type": "host", "host_path": "relative"} for number in range(300)}}
    answer = alice.post("/v6/job-types/validation/", {"manifest": document, "configuration": configuration}).json
    assert [error["name"] for error in answer["errors"]] == ["HOST_ABSOLUTE_PATH"] * 101
    assert [warning["name"] for warning in answer["warnings"]] == ["UNKNOWN_MOUNT"] * 100 + [
        "UNKNOWN_MOUNT", "MISSING_SETTING"]
    assert answer["warnings"][-1]["description"].startswith("300 more not listed")


@pytest.mark.parametrize("body", [[], "x", 1, None, {}, {"configuration": {}}, {"manifest": {}, "other": 1}])
def test_validation_of_a_body_without_a_manifest_is_400(alice, body):
    refused = alice.post("/v6/job-types/validation/", body, status=400)
    assert set(refused.json) == {"detail"}


def test_malformed_json_bodies_are_400(admin):
    for method, path in (("post", "/v6/job-types/validation/"), ("post", "/v6/job-types/"),
                         ("patch", "/v6/job-types/test/1.0.0/")):
        if method == "patch":
            admin.post("/v6/job-types/", SPEC_POST, status=201)
        for body in (b"{", b"", b"\xff", b'{"manifest": NaN}', b'{"a": 1, "a": 2}', b'{"manifest": "\\u0000"}'):
            refused = getattr(admin.app, method)(path, body, headers=admin.headers(), status=400,
                                                 content_type="application/json")
            assert set(refused.json) == {"detail"}


# Creation

def test_only_admins_create_and_edit(alice, spec_job):
    assert alice.post("/v6/job-types/", SPEC_POST, status=403).json == {
        "detail": "You do not have permission to perform this action."}
    alice.patch("/v6/job-types/test/1.0.0/", {"is_paused": True}, status=403)


def test_posting_the_same_manifest_again_makes_no_new_revision(admin, spec_job):
    again = admin.post("/v6/job-types/", {**SPEC_POST, "icon_code": "f000", "is_published": True}, status=201)
    assert again.json["revision_num"] == 1 and again.json["id"] == spec_job.json["id"]
    assert (again.json["icon_code"], again.json["is_published"]) == ("f000", True)
    assert admin.get("/v6/job-types/test/1.0.0/revisions/").json["count"] == 1
    # A new image is a new revision.
    image = admin.post("/v6/job-types/", {**SPEC_POST, "docker_image": "test:2"}, status=201).json
    assert image["revision_num"] == 2 and image["docker_image"] == "test:2"
    assert admin.get("/v6/job-types/test/1.0.0/revisions/2/").json["docker_image"] == "test:2"


def test_a_new_version_is_a_new_job_type(admin, spec_job):
    changed = copy.deepcopy(SPEC_POST)
    changed["manifest"]["job"]["jobVersion"] = "1.1.0"
    created = admin.post("/v6/job-types/", changed, status=201)
    assert created.headers["Location"].endswith("/v6/job-types/test/1.1.0/")
    assert created.json["id"] != spec_job.json["id"] and created.json["revision_num"] == 1


@pytest.mark.parametrize("body, field", [
    ({"manifest": SPEC_POST["manifest"]}, "docker_image"),
    ({"docker_image": "x"}, "manifest"),
    ({**SPEC_POST, "docker_image": ""}, "docker_image"),
    ({**SPEC_POST, "docker_image": 5}, "docker_image"),
    ({**SPEC_POST, "docker_image": "x" * 1001}, "docker_image"),
    ({**SPEC_POST, "icon_code": 5}, "icon_code"),
    ({**SPEC_POST, "icon_code": "x" * 201}, "icon_code"),
    ({**SPEC_POST, "is_published": "yes"}, "is_published"),
    ({**SPEC_POST, "is_active": 1}, "is_active"),
    ({**SPEC_POST, "is_paused": None}, "is_paused"),
    ({**SPEC_POST, "auto_update": "true"}, "auto_update"),
    ({**SPEC_POST, "max_scheduled": 0}, "max_scheduled"),
    ({**SPEC_POST, "max_scheduled": 2**31}, "max_scheduled"),
    ({**SPEC_POST, "max_scheduled": 1.5}, "max_scheduled"),
    ({**SPEC_POST, "max_scheduled": True}, "max_scheduled"),
    ({**SPEC_POST, "max_scheduled": 10**5000}, "body"),
    ({**SPEC_POST, "unknown": 1}, "unknown"),
])
def test_bad_create_fields_are_400(admin, body, field):
    if field == "body":
        text = json.dumps({**SPEC_POST, "max_scheduled": 0}).replace('"max_scheduled": 0', '"max_scheduled": '
                                                                     + "9" * 5000)
        refused = admin.app.post("/v6/job-types/", text, headers=admin.headers(), status=400,
                                 content_type="application/json")
    else:
        refused = admin.post("/v6/job-types/", body, status=400)
    assert field in refused.json["detail"]
    assert admin.get("/v6/job-types/").json["count"] == 0


def test_a_docker_image_must_be_an_image_reference(admin, spec_job):
    """docker run reads the image as an argument: "--privileged" was stored and given to docker as an option."""
    for image in ("--privileged", "-v/:/host", "ubuntu\n", "Ubuntu", "ubuntu latest", "ubuntu:", "a//b",
                  "ubuntu@sha256:abc", "a" * 256):
        refused = admin.post("/v6/job-types/", {**SPEC_POST, "docker_image": image}, status=400).json
        assert refused["is_valid"] is False and [error["name"] for error in refused["errors"]] == [
            "INVALID_DOCKER_IMAGE"]
        assert refused["detail"].startswith("INVALID_DOCKER_IMAGE: docker_image ")
        changed = admin.patch("/v6/job-types/test/1.0.0/", {"docker_image": image}, status=400).json
        assert changed["errors"] == refused["errors"]
    assert admin.get("/v6/job-types/test/1.0.0/").json == spec_job.json
    assert admin.get("/v6/job-types/test/1.0.0/revisions/").json["count"] == 1
    for image in ("ubuntu", "library/ubuntu:22.04", "localhost:5000/a/b-c__d.e:1.0_rc-1", "[::1]:5000/seed",
                  "registry.example/x@sha256:" + "0" * 64):
        assert admin.patch("/v6/job-types/test/1.0.0/", {"docker_image": image}, status=200).json["is_valid"]


def test_an_invalid_docker_image_is_reported_beside_the_manifests_errors(admin):
    refused = add(admin, manifest("random-number", job_name="status"), image="-it", status=400).json
    assert [error["name"] for error in refused["errors"]] == ["INVALID_JOB_TYPE_NAME", "INVALID_DOCKER_IMAGE"]


def test_a_reserved_name_is_refused(admin):
    for name in ("validation", "status", "pending", "running", "system-failures"):
        assert "reserved" in add(admin, manifest("random-number", job_name=name), status=400).json["detail"]


def test_a_name_or_version_too_long_to_store_is_400(admin):
    add(admin, manifest("random-number", job_name="a" * 201), status=400)
    add(admin, manifest("random-number", version="1.0.0-" + "a" * 200), status=400)


@pytest.mark.parametrize("document, name", [
    (manifest("random-number", job_name="status"), "INVALID_JOB_TYPE_NAME"),
    (manifest("random-number", job_name="a" * 201), "INVALID_JOB_TYPE_NAME"),
    (manifest("random-number", version="1.0.0-" + "a" * 200), "INVALID_JOB_TYPE_VERSION")])
def test_validation_refuses_what_creation_refuses(alice, admin, document, name):
    """A reserved name, or a name or version too long to store: validation answered is_valid true, and the
    creation it was to predict then failed."""
    answer = alice.post("/v6/job-types/validation/", {"manifest": document}).json
    assert answer["is_valid"] is False and [error["name"] for error in answer["errors"]] == [name]
    refused = add(admin, document, status=400).json
    assert refused["is_valid"] is False and refused["errors"] == answer["errors"]


def with_command(command: str, version: str = "1.0.0") -> dict:
    """The spec's manifest with another command: its inputs INPUT_TEXT and READ_LENGTH, its settings DB_HOST and
    DB_PASS (secret), its resources cpus, mem, sharedMem and disk, and here my-gpus too."""
    document = copy.deepcopy(SPEC_POST["manifest"])
    document["job"]["jobVersion"] = version
    document["job"]["interface"]["command"] = command
    document["job"]["resources"]["scalar"].append({"name": "my-gpus", "value": 1})
    return document


@pytest.mark.parametrize("command, name, named", [
    ("${INPUT_TEXT} ${INPUT_FILES} ${READ_LENGTH}", "UNKNOWN_COMMAND_VARIABLE", "${INPUT_FILES}"),  # the spec's
    ("run ${input_text}", "UNKNOWN_COMMAND_VARIABLE", "${input_text}"),  # as the manifest spells it
    ("run ${ALLOCATED_my-gpus}", "UNKNOWN_COMMAND_VARIABLE", "${ALLOCATED_my-gpus}"),
    ("run ${cpus}", "UNKNOWN_COMMAND_VARIABLE", "${cpus}"),
    ("run --password=${DB_PASS}", "SECRET_COMMAND_VARIABLE", "${DB_PASS}"),
    ("run 'unbalanced", "INVALID_COMMAND", "No closing quotation"),
])
def test_a_command_that_no_run_could_fill_is_refused(alice, admin, spec_job, command, name, named):
    """The Seed executor fails such a job when it runs (a ${NAME} that is no variable of the run, or whose value
    would be on the command line): known from the manifest alone, so validation says so and nothing is made."""
    answer = alice.post("/v6/job-types/validation/", {"manifest": with_command(command)}).json
    assert answer["is_valid"] is False and [error["name"] for error in answer["errors"]] == [name]
    assert named in answer["errors"][0]["description"]
    # Neither a new version, nor a new revision by creation or by an edit.
    assert add(admin, with_command(command, "2.0.0"), status=400).json["errors"] == answer["errors"]
    assert add(admin, with_command(command), status=400).json["errors"] == answer["errors"]
    edited = admin.patch("/v6/job-types/test/1.0.0/", {"manifest": with_command(command)}, status=400).json
    assert edited["errors"] == answer["errors"]
    assert admin.get("/v6/job-types/").json["count"] == 1
    assert admin.get("/v6/job-types/test/1.0.0/").json == spec_job.json


def test_a_command_may_name_every_variable_of_a_run(alice):
    command = ("run ${INPUT_TEXT} ${READ_LENGTH} ${DB_HOST} ${OUTPUT_DIR} ${ALLOCATED_CPUS} ${ALLOCATED_MEM} "
               "${ALLOCATED_SHAREDMEM} ${ALLOCATED_DISK} --gpus=${ALLOCATED_MY_GPUS} '$HOME' \"$DB_PASS\"")
    answer = alice.post("/v6/job-types/validation/", {"manifest": with_command(command)}).json
    assert answer["is_valid"] is True and answer["errors"] == []


def test_a_job_type_stored_with_such_a_command_stays_editable(admin, engine, spec_job):
    """Stored before validation checked the command: its flags can still be changed; a new manifest is checked."""
    from sqlalchemy import update
    with engine.begin() as connection:
        connection.execute(update(SeedJobType).values(manifest=with_command("run ${INPUT_FILES}")))
    answer = admin.patch("/v6/job-types/test/1.0.0/", {"is_paused": True}, status=200).json
    assert answer == {"is_valid": True, "errors": [], "warnings": answer["warnings"]}
    admin.patch("/v6/job-types/test/1.0.0/", {"manifest": with_command("run ${INPUT_FILES}")}, status=400)
    admin.patch("/v6/job-types/test/1.0.0/", {"manifest": with_command("run ${INPUT_TEXT}")}, status=200)


def test_max_scheduled_null_and_integral_float(admin, spec_job):
    assert '"max_scheduled": 5,' in add(admin, manifest("random-number"), max_scheduled=5.0).text
    admin.patch("/v6/job-types/test/1.0.0/", {"max_scheduled": 7.0}, status=200)
    assert '"max_scheduled": 7,' in admin.get("/v6/job-types/test/1.0.0/").text
    assert add(admin, manifest("random-number"), max_scheduled=None).json["max_scheduled"] is None


# Secret settings

def stored(engine, name: str) -> SeedJobType:
    with engine.connect() as connection:
        return connection.execute(select(SeedJobType).where(SeedJobType.name == name)).one()


def test_secret_settings_are_stored_encrypted_and_never_returned(admin, alice, engine, spec_job):
    for answer in (spec_job.text, alice.get("/v6/job-types/test/1.0.0/").text, alice.get("/v6/job-types/").text,
                   alice.get("/v6/job-types/test/").text, alice.get("/v6/job-types/test/1.0.0/revisions/1/").text,
                   alice.get("/v6/job-type-names/").text):
        assert "secret_password" not in answer and "DB_PASS" not in json.dumps(
            json.loads(answer).get("configuration", {}))
    assert spec_job.json["configuration"]["settings"] == {"DB_HOST": "som.host.name"}
    assert spec_job.json["configuration"]["mounts"] == SPEC_POST["configuration"]["mounts"]
    row = stored(engine, "test")
    assert "secret_password" not in json.dumps(row.configuration) and "secret_password" not in row.secrets
    from cryptography.fernet import Fernet
    from ufdl_pyramid.testing import TEST_SETTINGS
    assert json.loads(Fernet(TEST_SETTINGS["ufdl.seed.secret_key"]).decrypt(row.secrets.encode())) == {
        "DB_PASS": "secret_password"}


def test_an_edit_replaces_given_secrets_and_keeps_the_others(admin, engine, spec_job):
    from cryptography.fernet import Fernet
    from ufdl_pyramid.testing import TEST_SETTINGS
    fernet = Fernet(TEST_SETTINGS["ufdl.seed.secret_key"])
    configuration = copy.deepcopy(SPEC_POST["configuration"])
    configuration["settings"] = {"DB_HOST": "other.host"}
    admin.patch("/v6/job-types/test/1.0.0/", {"configuration": configuration}, status=200)
    row = stored(engine, "test")
    assert row.configuration["settings"] == {"DB_HOST": "other.host"}
    assert json.loads(fernet.decrypt(row.secrets.encode())) == {"DB_PASS": "secret_password"}
    configuration["settings"]["DB_PASS"] = "new_password"
    admin.patch("/v6/job-types/test/1.0.0/", {"configuration": configuration}, status=200)
    assert json.loads(fernet.decrypt(stored(engine, "test").secrets.encode())) == {"DB_PASS": "new_password"}
    assert "new_password" not in admin.get("/v6/job-types/test/1.0.0/").text


@pytest.mark.parametrize("method", ["patch", "post"])
def test_a_setting_that_a_new_manifest_makes_secret_leaves_the_configuration(admin, alice, engine, spec_job,
                                                                             method):
    """Its value, given while it was not secret, was still answered by every GET."""
    from cryptography.fernet import Fernet
    from ufdl_pyramid.testing import TEST_SETTINGS
    changed = copy.deepcopy(SPEC_POST["manifest"])
    changed["job"]["interface"]["settings"][0]["secret"] = True  # DB_HOST
    if method == "patch":
        admin.patch("/v6/job-types/test/1.0.0/", {"manifest": changed}, status=200)
    else:
        admin.post("/v6/job-types/", {"docker_image": SPEC_POST["docker_image"], "manifest": changed}, status=201)
    details = alice.get("/v6/job-types/test/1.0.0/")
    assert details.json["revision_num"] == 2 and "som.host.name" not in details.text
    assert details.json["configuration"]["settings"] == {}
    fernet = Fernet(TEST_SETTINGS["ufdl.seed.secret_key"])
    assert json.loads(fernet.decrypt(stored(engine, "test").secrets.encode())) == {
        "DB_HOST": "som.host.name", "DB_PASS": "secret_password"}


def test_secret_values_without_a_key_are_a_clear_503(admin, keyless):
    refused = keyless(admin).post("/v6/job-types/", SPEC_POST, status=503).json
    assert refused == {"detail": "Secret setting values cannot be stored: the server has no encryption key. Set "
                                 "ufdl.seed.secret_key (or the environment variable UFDL_SEED_SECRET_KEY) to a "
                                 "Fernet key."}
    assert admin.get("/v6/job-types/").json["count"] == 0
    # Without secret values, a server without a key creates job types.
    body = copy.deepcopy(SPEC_POST)
    del body["configuration"]["settings"]["DB_PASS"]
    keyless(admin).post("/v6/job-types/", body, status=201)


# Editing

def test_edit(admin, alice, spec_job):
    path = "/v6/job-types/test/1.0.0/"
    answer = admin.patch(path, {"icon_code": "012F", "is_published": True, "is_active": True, "is_paused": False,
                                "max_scheduled": 7}, status=200).json
    # DB_PASS's value is stored (encrypted, apart from the configuration): not missing. The spec's configuration
    # names a workspace for an output its manifest does not have.
    assert answer["is_valid"] is True and answer["errors"] == []
    assert [warning["name"] for warning in answer["warnings"]] == ["UNKNOWN_OUTPUT"]
    details = alice.get(path).json
    assert (details["icon_code"], details["is_published"], details["max_scheduled"], details["revision_num"]) == (
        "012F", True, 7, 1)
    assert details["last_modified"] >= spec_job.json["last_modified"]
    # The spec's example edit.
    example = {"icon_code": "012F", "is_published": True, "is_active": True, "is_paused": False, "max_scheduled": 1,
               "configuration": SPEC_POST["configuration"]}
    assert admin.patch(path, example, status=200).json["is_valid"] is True


def test_edit_deprecates_and_pauses(admin, alice, spec_job):
    path = "/v6/job-types/test/1.0.0/"
    admin.patch(path, {"is_active": False, "is_paused": True}, status=200)
    details = alice.get(path).json
    assert details["is_active"] is False and details["deprecated"] is not None
    assert details["is_paused"] is True and details["paused"] is not None
    # Saying it again keeps the times; turning them back clears them.
    admin.patch(path, {"is_active": False, "is_paused": True}, status=200)
    again = alice.get(path).json
    assert (again["deprecated"], again["paused"]) == (details["deprecated"], details["paused"])
    admin.patch(path, {"is_active": True, "is_paused": False}, status=200)
    back = alice.get(path).json
    assert (back["is_active"], back["deprecated"], back["is_paused"], back["paused"]) == (True, None, False, None)


def test_edit_with_a_new_manifest_or_image_is_a_new_revision(admin, alice, spec_job):
    path = "/v6/job-types/test/1.0.0/"
    changed = copy.deepcopy(SPEC_POST["manifest"])
    changed["job"]["title"] = "Edited"
    admin.patch(path, {"manifest": changed}, status=200)
    details = alice.get(path).json
    assert (details["revision_num"], details["title"], details["manifest"]) == (2, "Edited", changed)
    admin.patch(path, {"manifest": changed}, status=200)  # the same again: no revision
    assert alice.get(path).json["revision_num"] == 2
    admin.patch(path, {"docker_image": "test:3"}, status=200)
    assert alice.get(path).json["revision_num"] == 3
    assert alice.get(path + "revisions/3/").json["docker_image"] == "test:3"


@pytest.mark.parametrize("body", [
    {"manifest": manifest("random-number")},  # another name
    {"manifest": {**SPEC_POST["manifest"], "job": {**SPEC_POST["manifest"]["job"], "jobVersion": "2.0.0"}}},
    {"manifest": {**SPEC_POST["manifest"], "seedVersion": "2.0.0"}},
    {"manifest": "not an object"},
    {"configuration": "not an object"},
])
def test_an_invalid_edit_is_400_and_writes_nothing(admin, alice, spec_job, body):
    path = "/v6/job-types/test/1.0.0/"
    refused = admin.patch(path, {"icon_code": "zzz", **body}, status=400).json
    assert refused["is_valid"] is False and refused["errors"] and refused["detail"]
    assert alice.get(path).json == spec_job.json


@pytest.mark.parametrize("body", [
    [], "x", {"is_active": "no"}, {"max_scheduled": -1}, {"docker_image": ""}, {"name": "other"},
    {"icon_code": ["x"]}, {"is_paused": 0}])
def test_bad_edit_fields_are_400(admin, alice, spec_job, body):
    refused = admin.patch("/v6/job-types/test/1.0.0/", body, status=400).json
    assert set(refused) == {"detail"}
    assert alice.get("/v6/job-types/test/1.0.0/").json == spec_job.json


def test_edit_of_an_unknown_job_type_is_404(admin):
    admin.patch("/v6/job-types/nothing/1.0.0/", {"is_paused": True}, status=404)


def test_methods_not_served_are_405(admin, spec_job):
    admin.delete("/v6/job-types/test/1.0.0/", status=405)
    admin.put("/v6/job-types/test/1.0.0/", {}, status=405)
    admin.get("/v6/job-types/validation/", status=405)
    admin.post("/v6/job-type-names/", {}, status=405)


def test_a_server_with_another_key_is_a_clear_503_when_it_needs_the_secrets(admin, engine, spec_job):
    import webtest
    from cryptography.fernet import Fernet
    from ufdl_pyramid.testing import ApiClient, make_test_app
    app = webtest.TestApp(make_test_app(engine, **{"ufdl.seed.secret_key": Fernet.generate_key().decode()}))
    other = ApiClient(app, admin.token, admin.refresh_token, user_id=admin.user_id)
    assert other.get("/v6/job-types/test/1.0.0/").json == admin.get("/v6/job-types/test/1.0.0/").json
    refused = other.patch("/v6/job-types/test/1.0.0/", {"configuration": SPEC_POST["configuration"]}, status=503)
    assert refused.json == {"detail": "The stored secret setting values cannot be decrypted with the server's key "
                                      "(ufdl.seed.secret_key was changed)."}


# The job counts: each revision is a workable job template, whose jobs are counted.

def template_of(client, job_type: dict, revision: int = 1) -> dict:
    [template] = client.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": f"seed-job-type-{job_type['id']}"},
        {"type": "exact", "field": "version", "value": revision}]}).json
    return template


def run_job(client, template: dict, value: dict) -> dict:
    """A job of the template, of input ``value`` (``spec_input``: the spec's job type)."""
    return client.post(f"/v1/job-templates/{template['pk']}/create-job",
                       {"input_values": {"input": {"value": value, "type": "JSON"}}}, status=201).json


def set_job(engine, pk: int, **values) -> None:
    from sqlalchemy import update
    from ufdl_pyramid.models import Job
    with engine.begin() as connection:
        connection.execute(update(Job).where(Job.id == pk).values(**values))


def seed_parameters(client, template: dict) -> dict:
    """The image and manifest a node reads from the template's defaults (get-all-parameters, as the worker)."""
    answer = client.get(f"/v1/job-templates/{template['pk']}/get-all-parameters").json
    return {name: (spec["types"], spec["default"]["value"], spec["default"]["type"], spec["default"]["const"])
            for name, spec in answer.items()}


def test_each_revision_is_a_workable_job_template(admin, bob, spec_job, spec_input):
    template = template_of(bob, spec_job.json)
    assert (template["type"], template["executor_class"], template["version"]) == (
        "Process<JSON, JSON>", "ufdl_seed.SeedExecutor", 1)
    assert seed_parameters(bob, template) == {
        "seed_image": ({"str": {"type": "string"}}, "test-1.0.0-seed:1.0.0", "str", True),
        "seed_manifest": ({"JSON": {}}, SPEC_POST["manifest"], "JSON", True)}
    assert run_job(bob, template, spec_input)["template"]["pk"] == template["pk"]
    changed = copy.deepcopy(SPEC_POST)
    changed["manifest"]["job"]["title"] = "Second"
    admin.post("/v6/job-types/", changed, status=201)
    second = template_of(bob, spec_job.json, 2)
    assert second["version"] == 2
    assert seed_parameters(bob, second)["seed_manifest"][1] == changed["manifest"]
    # A new image is a new revision, whose template runs it; the older revisions' templates keep theirs.
    admin.patch("/v6/job-types/test/1.0.0/", {"docker_image": "test-1.0.0-seed:1.0.1"}, status=200)
    assert seed_parameters(bob, template_of(bob, spec_job.json, 3))["seed_image"][1] == "test-1.0.0-seed:1.0.1"
    assert seed_parameters(bob, template)["seed_image"][1] == "test-1.0.0-seed:1.0.0"
    admin.post("/v6/job-types/", {**changed, "docker_image": "test-1.0.0-seed:1.0.1"},
               status=201)  # identical: no revision, no template
    assert len(admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": f"seed-job-type-{spec_job.json['id']}"}]}).json) == 3


def test_a_job_types_template_holds_no_setting_value(admin, bob, spec_job):
    """Secret settings are stored encrypted on the server; the template (read by any user and every node)
    carries the manifest, which names the settings, and no configuration."""
    template = template_of(bob, spec_job.json)
    exported = admin.get(f"/v1/job-templates/{template['pk']}/export").text
    assert "DB_PASS" in exported and "secret_password" not in exported and "som.host.name" not in exported
    assert "secret_password" not in bob.get(f"/v1/job-templates/{template['pk']}/get-all-parameters").text
    # The template cannot be made to run another image: its parameters are constant.
    refused = bob.post(f"/v1/job-templates/{template['pk']}/create-job", {
        "input_values": {"input": {"value": {}, "type": "JSON"}},
        "parameter_values": {"seed_image": {"value": "evil:latest", "type": "str"}}}, status=400).json
    assert "seed_image" in refused["detail"]



def test_the_templates_input_says_what_the_manifests_inputs_are(admin, bob, spec_job):
    assert bob.get(f"/v1/job-templates/{template_of(bob, spec_job.json)['pk']}/get-inputs").json == {
        "input": {"types": ["JSON"], "help": "The inputs of test 1.0.0, a JSON object by name: INPUT_TEXT: a "
                                             "job-output pk (a file, text/plain); READ_LENGTH: a JSON integer."}}
    document = manifest("random-number")
    document["job"].setdefault("interface", {})["inputs"] = {
        "files": [{"name": "PARTS", "multiple": True, "required": False, "mediaTypes": ["image/png", "image/gif"]}],
        "json": [{"name": "SEED", "type": "integer", "required": False}, {"name": "LABEL", "type": "string"}]}
    made = add(admin, document).json
    assert bob.get(f"/v1/job-templates/{template_of(bob, made)['pk']}/get-inputs").json["input"]["help"] == (
        "The inputs of random-number-gen 0.1.0, a JSON object by name: PARTS: a list of job-output pks (files, "
        "optional, image/png, image/gif); SEED: a JSON integer (optional); LABEL: a JSON string.")
    document["job"]["interface"]["inputs"] = {}
    add(admin, document, "registry/job:2", status=201)  # a new revision
    assert bob.get(f"/v1/job-templates/{template_of(bob, made, 2)['pk']}/get-inputs").json["input"]["help"] == (
        "random-number-gen 0.1.0 takes no inputs: an empty JSON object.")


def test_a_job_types_template_cannot_be_deleted_through_v1(admin, bob, engine, spec_job, spec_input):
    """Hard-deleted through v1 (it had no jobs), the revision was still served with no template: it could never
    run again, nor be made anew (an import may not take the name; the same manifest is no new revision)."""
    template = admin.get(f"/v1/job-templates/{template_of(bob, spec_job.json)['pk']}").json
    refused = {"detail": f"Template {template['pk']} is revision 1 of the Scale job type 'test' 1.0.0: the v6 API "
                         "owns it. Pause or deactivate the job type instead (PATCH /v6/job-types/test/1.0.0/ with "
                         "is_paused or is_active)"}
    for path in (f"/v1/job-templates/{template['pk']}", f"/v1/job-templates/{template['pk']}/hard"):
        assert admin.delete(path, status=409).json == refused
    assert admin.get(f"/v1/job-templates/{template['pk']}").json == template
    run_job(bob, template, spec_input)
    # The v6 API's own changes still work, and a new revision gets a template of its own, as protected.
    assert admin.patch("/v6/job-types/test/1.0.0/", {"is_paused": True, "is_active": False}).status_int == 200
    admin.patch("/v6/job-types/test/1.0.0/", {"docker_image": "test-1.0.0-seed:1.0.1"}, status=200)
    second = template_of(admin, spec_job.json, 2)
    assert admin.delete(f"/v1/job-templates/{second['pk']}/hard", status=409).json["detail"].startswith(
        f"Template {second['pk']} is revision 2 of the Scale job type 'test' 1.0.0")
    # One soft-deleted before the refusal (an older database) may be reinstated.
    from sqlalchemy import update
    from ufdl_pyramid.models import JobTemplate
    from ufdl_pyramid.models.meta import utcnow
    with engine.begin() as connection:
        connection.execute(update(JobTemplate).where(JobTemplate.id == second["pk"]).values(deletion_time=utcnow()))
    assert admin.delete(f"/v1/job-templates/{second['pk']}/reinstate").json["deletion_time"] is None


def test_an_import_may_not_take_the_name_of_a_job_types_template(admin, spec_job):
    """A template imported as seed-job-type-{id} stood in for that job type's (or made its next revision's
    template a 409 conflict, so that the job type could not be changed)."""
    number = spec_job.json["id"] + 1
    document = {"name": f"seed-job-type-{number}", "version": 1, "scope": "public", "licence": "MIT",
                "specific": {"job_type": "Process<JSON, JSON>", "executor_class": "ufdl_seed.SeedExecutor",
                             "required_packages": "", "parameters": {}}}
    refused = admin.post("/v1/job-templates/import", document, status=400).json
    assert "seed-job-type-" in refused["detail"]
    add(admin, manifest("random-number"))  # job type {number}: its template is made
    assert admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": f"seed-job-type-{number}"}]}).json[0]["version"] == 1

@pytest.fixture
def counted_jobs(admin, bob, alice, engine, spec_job, spec_input):
    """Jobs of the spec's job type in every state, from both its revisions; another job type without jobs."""
    from datetime import timedelta
    from job_helpers import register
    from ufdl_pyramid.models.meta import utcnow
    add(admin, manifest("random-number"))
    first = template_of(bob, spec_job.json)
    changed = copy.deepcopy(SPEC_POST)
    changed["manifest"]["job"]["title"] = "Second"
    admin.post("/v6/job-types/", changed, status=201)
    second = template_of(bob, spec_job.json, 2)
    jobs = {name: run_job(bob, first if index % 2 else second, spec_input)["pk"] for index, name in enumerate(
        ("pending", "pending_old", "running", "running_old", "algorithm", "data", "system_1", "system_2",
         "system_3", "completed", "completed_old"))}
    admin.patch("/v6/job-types/test/1.0.0/", {"max_scheduled": None}, status=200)  # two are worked at once
    node = register(alice)
    node.get(f"/v1/jobs/{jobs['running']}/acquire")
    node.post(f"/v1/jobs/{jobs['running']}/start", {})
    other = register(alice, "10.0.0.2")
    other.get(f"/v1/jobs/{jobs['algorithm']}/acquire")
    other.post(f"/v1/jobs/{jobs['algorithm']}/start", {})
    other.post(f"/v1/jobs/{jobs['algorithm']}/finish", {"error": "bad input"})
    third = register(alice, "10.0.0.3")
    third.get(f"/v1/jobs/{jobs['data']}/acquire")
    third.post(f"/v1/jobs/{jobs['data']}/start", {})
    third.post(f"/v1/jobs/{jobs['data']}/finish", {"error": "unreadable image", "error_category": "DATA"})
    now = utcnow()
    day_ago = now - timedelta(days=1)
    set_job(engine, jobs["pending_old"], last_status_change=day_ago)
    set_job(engine, jobs["running_old"], status="RUNNING", start_time=day_ago, last_status_change=day_ago)
    for name, reason, when in (("system_1", "node lost", now - timedelta(hours=2)),
                               ("system_2", "node lost", now - timedelta(hours=1)),
                               ("system_3", "disk full", day_ago)):
        set_job(engine, jobs[name], status="FAILED", error_category="SYSTEM", error_reason=reason,
                last_status_change=when)
    set_job(engine, jobs["completed"], status="COMPLETED")
    set_job(engine, jobs["completed_old"], status="COMPLETED", last_status_change=day_ago)
    return jobs


def test_status_counts(alice, spec_job, counted_jobs):
    answer = alice.get("/v6/job-types/status/").json
    assert answer["count"] == 2 and answer["next"] is None
    [others, spec] = answer["results"]  # by name: random-number-gen, test
    assert others["job_counts"] == [] and others["job_type"]["name"] == "random-number-gen"
    assert spec["job_type"]["id"] == spec_job.json["id"] and set(spec["job_type"]) == {
        "id", "name", "version", "title", "description", "is_active", "is_paused", "is_published", "icon_code",
        "unmet_resources"}
    counts = {(count["status"], count["category"]): count["count"] for count in spec["job_counts"]}
    # The last 3 hours by default, and every RUNNING job whenever it started.
    assert counts == {("COMPLETED", None): 1, ("FAILED", "ALGORITHM"): 1, ("FAILED", "DATA"): 1,
                      ("FAILED", "SYSTEM"): 2, ("PENDING", None): 1, ("RUNNING", None): 2}
    assert all(count["most_recent"].endswith("Z") for count in spec["job_counts"])
    wider = alice.get("/v6/job-types/status/?started=P2D").json["results"][1]["job_counts"]
    assert {(count["status"], count["category"]): count["count"] for count in wider} == {
        ("COMPLETED", None): 2, ("FAILED", "ALGORITHM"): 1, ("FAILED", "DATA"): 1, ("FAILED", "SYSTEM"): 3,
        ("PENDING", None): 2, ("RUNNING", None): 2}
    # ISO 8601 (and Scale's parser) let any component of a duration have a fraction, after a point or a comma.
    fraction = alice.get("/v6/job-types/status/?started=PT1.5H").json["results"][1]["job_counts"]
    assert {(count["status"], count["category"]): count["count"] for count in fraction}[("FAILED", "SYSTEM")] == 1
    assert alice.get("/v6/job-types/status/?started=P1,5D").json["results"][1]["job_counts"] == wider
    assert alice.get("/v6/job-types/status/?started=P1.5DT0.5H").json["results"][1]["job_counts"] == wider
    narrow = alice.get("/v6/job-types/status/?started=2000-01-01T00:00:00Z&ended=2000-01-02T00:00:00").json
    assert {count["status"] for count in narrow["results"][1]["job_counts"]} == {"RUNNING"}
    assert alice.get("/v6/job-types/status/?is_active=false").json["count"] == 0
    assert alice.get("/v6/job-types/status/?page_size=1&page=2").json["results"][0]["job_type"]["name"] == "test"


def test_pending_running_and_system_failures(alice, spec_job, counted_jobs):
    [pending] = alice.get("/v6/job-types/pending/").json["results"]
    assert (pending["job_type"]["name"], pending["count"]) == ("test", 2)
    [running] = alice.get("/v6/job-types/running/").json["results"]
    assert (running["job_type"]["name"], running["count"]) == ("test", 2)
    # Since the oldest started running, and the oldest became PENDING.
    assert running["longest_running"] == alice.get(f"/v1/jobs/{counted_jobs['running_old']}").json["start_time"]
    assert pending["longest_pending"] == alice.get(f"/v1/jobs/{counted_jobs['pending_old']}").json[
        "last_status_change"]
    failures = alice.get("/v6/job-types/system-failures/").json
    assert [(row["error"]["name"], row["count"]) for row in failures["results"]] == [("node lost", 2),
                                                                                    ("disk full", 1)]
    node_lost = failures["results"][0]
    assert node_lost["error"]["category"] == "SYSTEM" and node_lost["first_error"] < node_lost["last_error"]


def test_counts_without_jobs_are_empty(alice, spec_job):
    for path in ("pending", "running", "system-failures"):
        assert alice.get(f"/v6/job-types/{path}/").json == {"count": 0, "next": None, "previous": None,
                                                             "results": []}
    assert alice.get("/v6/job-types/status/").json["results"][0]["job_counts"] == []


@pytest.mark.parametrize("query", ["started=yesterday", "ended=PT", "started=P", "started=PT3X", "started=PT1.H",
                                   "started=PT.5H", "started=PT1.5.5H",
                                   "started=P999999999D", "ended=2015-13-01T00:00:00Z", "started=%00",
                                   "page=x", "is_active=maybe",
                                   # Valid ISO-8601, but out of range once in UTC (a 500 before).
                                   "started=0001-01-01T00:00:00%2B05:00", "ended=9999-12-31T23:59:59-05:00",
                                   # Other scripts' digits (Arabic-Indic 3, fullwidth 1): durations before.
                                   "started=PT%D9%A3H", "ended=P%EF%BC%91D"])
def test_malformed_count_parameters_are_400(alice, spec_job, query):
    assert set(alice.get(f"/v6/job-types/status/?{query}", status=400).json) == {"detail"}


def test_counts_need_a_token(anonymous):
    for path in ("status", "pending", "running", "system-failures"):
        anonymous.get(f"/v6/job-types/{path}/", status=401)


# Concurrency (real threads over the real app; PostgreSQL is where rows race)

def in_threads(count: int, target) -> list:
    import threading
    answers, errors = [None] * count, []
    barrier = threading.Barrier(count)

    def run(index):
        try:
            barrier.wait()
            answers[index] = target(index)
        except Exception as error:  # a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    return answers


def test_concurrent_edits_each_make_their_own_revision(admin, spec_job):
    def edit(index):
        changed = copy.deepcopy(SPEC_POST["manifest"])
        changed["job"]["title"] = f"Edit {index}"
        return admin.patch("/v6/job-types/test/1.0.0/", {"manifest": changed}, status=200)

    in_threads(8, edit)
    revisions = admin.get("/v6/job-types/test/1.0.0/revisions/").json["results"]
    assert [row["revision_num"] for row in revisions] == list(range(9, 0, -1))


def test_concurrent_creations_of_one_job_type_make_one(admin):
    answers = in_threads(8, lambda index: admin.post("/v6/job-types/", SPEC_POST, status=201).json)
    assert len({answer["id"] for answer in answers}) == 1
    assert admin.get("/v6/job-types/test/1.0.0/revisions/").json["count"] == 1


# Bent requests (as test_fuzz.py bends the v1 API's): never a 5xx, every refusal a JSON detail

V6_ODD_QUERIES = ["page=0", "page=abc", "page_size=0", "page_size=99999999999", "page=99999999999999999999",
                  "keyword=%00", "keyword=%25_", "keyword=%ff", "id=abc", "id=99999999999", "id=-1", "id=1e3",
                  "is_active=x", "is_system=TRUE", "is_system=2", "order=-name&order=version", "order=secrets",
                  "order=-", "started=P", "started=PT3H", "ended=2015-01-01T00:00:00Z", "started=9999-12-31",
                  "ended=P999999999D", "started=2015-02-30", "%ff=%fe"]


@pytest.mark.parametrize("seed", [1, 2])
def test_bent_v6_requests_never_get_a_server_error(testapp, admin, alice, anonymous, seed):
    import random
    from test_fuzz import ODD_BODIES, ODD_HEADERS, ODD_SEGMENTS, bend
    admin.post("/v6/job-types/", SPEC_POST, status=201)
    add(admin, manifest("complete"))
    clients = {"admin": admin, "alice": alice, "anonymous": anonymous}
    edit = {"icon_code": "012F", "is_published": True, "is_active": True, "is_paused": False, "max_scheduled": 1,
            "docker_image": "test:2", "manifest": SPEC_POST["manifest"], "configuration": SPEC_POST["configuration"]}
    endpoints = [
        ("GET", "/v6/job-type-names/", None), ("GET", "/v6/job-types/", None),
        ("GET", "/v6/job-types/{name}/", None), ("GET", "/v6/job-types/{name}/{version}/", None),
        ("GET", "/v6/job-types/{name}/{version}/revisions/", None),
        ("GET", "/v6/job-types/{name}/{version}/revisions/1/", None),
        ("POST", "/v6/job-types/validation/", {"manifest": SPEC_POST["manifest"],
                                               "configuration": SPEC_POST["configuration"]}),
        ("POST", "/v6/job-types/", SPEC_POST), ("POST", "/v6/job-types/", {"docker_image": "x",
                                                                             "manifest": manifest("complete")}),
        ("PATCH", "/v6/job-types/{name}/{version}/", edit),
        ("GET", "/v6/job-types/status/", None), ("GET", "/v6/job-types/pending/", None),
        ("GET", "/v6/job-types/running/", None), ("GET", "/v6/job-types/system-failures/", None)]
    rng = random.Random(seed)
    statuses = {}
    for number in range(600):
        method, path, body = rng.choice(endpoints)
        path = path.replace("{name}", "test").replace("{version}", "1.0.0")
        headers, raw = {}, None
        what = rng.randrange(8)
        if what == 0:
            segments = path.split("/")
            segments[rng.randrange(2, len(segments) - 1)] = rng.choice(ODD_SEGMENTS)
            path = "/".join(segments)
        elif what == 1:
            raw = rng.choice(ODD_BODIES)
        elif what == 2:
            headers = dict(rng.choice(ODD_HEADERS))
        elif what in (3, 4):
            path += "?" + "&".join(rng.sample(V6_ODD_QUERIES, rng.randrange(1, 4)))
        elif isinstance(body, dict):
            body = bend(rng, body)
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        client = clients[rng.choice(list(clients))]
        response = testapp.request(path, method=method, body=raw or b"", expect_errors=True,
                                   headers=client.headers({"Content-Type": "application/json", **headers}))
        where = f"seed {seed}, request {number}: {method} {path} {headers} {raw!r:.300}"
        assert response.status_int < 500, f"{where} -> {response.status}: {response.text[:500]}"
        if response.status_int >= 400 and method != "HEAD":
            assert isinstance(response.json.get("detail"), str), where
        statuses[response.status_int] = statuses.get(response.status_int, 0) + 1
    assert sum(count for status, count in statuses.items() if status < 300) > 60, statuses
    assert {400, 401, 403, 404} <= set(statuses), statuses


def test_an_output_media_type_no_download_could_carry_is_refused(alice):
    """The Seed executor refuses every job of it (it would be the output's Content-Type)."""
    manifest = copy.deepcopy(SPEC_POST["manifest"])
    manifest["job"]["interface"]["outputs"]["files"][0]["mediaType"] = "text/plain\r\nSet-Cookie: x=1"
    answer = alice.post("/v6/job-types/validation/", {"manifest": manifest}).json
    assert answer["is_valid"] is False and [error["name"] for error in answer["errors"]] == ["INVALID_MEDIA_TYPE"]
    assert "OUTPUT_TEXT" in answer["errors"][0]["description"]
