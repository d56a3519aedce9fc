"""The Seed manifest and Scale job type configuration checks (services/seed_validation.py): no database."""
import copy
import json
from pathlib import Path

import pytest

from ufdl_pyramid.services.seed_validation import (
    MAX_ERRORS, secret_setting_names, validate_configuration, validate_manifest, validate_runnable)

# Copies of the Seed standard's example manifests and one of Scale's (Apache-2.0).
FIXTURES = Path(__file__).resolve().parents[1] / "functional" / "seed_manifests"
FIXTURE_NAMES = ["complete", "random-number", "read-bytes", "watermark"]


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.manifest.json").read_text())


def minimal(**interface) -> dict:
    """The smallest valid manifest, with the given interface members (and resources/errors if given)."""
    job = {"name": "my-job", "jobVersion": "1.0.0", "packageVersion": "1.0.0", "title": "T", "description": "D",
           "timeout": 10, "maintainer": {"name": "N", "email": "e@example.com"}}
    for member in ("resources", "errors"):
        if member in interface:
            job[member] = interface.pop(member)
    if interface:
        job["interface"] = interface
    return {"seedVersion": "1.0.0", "job": job}


def names(items) -> list[str]:
    return [item["name"] for item in items]


def errors_of(manifest) -> list[dict]:
    errors, warnings = validate_manifest(manifest)
    assert warnings == []
    return errors


# --- the fixtures ---

@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_the_fixture_manifests_are_valid(name):
    assert validate_manifest(fixture(name)) == ([], [])


def test_a_complete_configuration_of_the_complete_manifest_has_no_warning():
    configuration = {
        "mounts": {"MOUNT_PATH": {"type": "host", "host_path": "/data"},
                   "WRITE_PATH": {"type": "volume", "driver": "local", "driver_opts": {"o": "bind"}}},
        "output_workspaces": {"default": "ws1", "outputs": {"output_file_csv": "ws2"}},
        "priority": 100,
        "settings": {"VERSION": "1", "DB_HOST": "db", "DB_PASS": "secret"},
    }
    assert validate_configuration(configuration, fixture("complete")) == ([], [])


def test_the_secret_settings_are_named():
    assert secret_setting_names(fixture("complete")) == {"DB_PASS"}
    assert secret_setting_names(fixture("watermark")) == set()


def test_validation_does_not_change_its_arguments():
    manifest, configuration = fixture("complete"), {"settings": {"X": "1"}}
    before = copy.deepcopy((manifest, configuration))
    validate_manifest(manifest)
    validate_configuration(configuration, manifest)
    secret_setting_names(manifest)
    assert (manifest, configuration) == before


# --- the schema ---

@pytest.mark.parametrize("path, value", [
    (("job", "name"), "my-job\n"),
    (("job", "name"), "my_job"),
    (("job", "name"), ""),
    (("seedVersion",), "1.0.0\n"),
    (("seedVersion",), "1.0.1"),
    (("job", "jobVersion"), "1.0.0\n"),
    (("job", "jobVersion"), "1.0"),
    (("job", "jobVersion"), "01.0.0"),
    (("job", "packageVersion"), "1.0.\u0663"),  # an Arabic-Indic digit: \d would take it
    (("job", "timeout"), 0),
    (("job", "timeout"), 1.5),
    (("job", "timeout"), True),
])
def test_a_bad_value_is_a_json_validation_error_at_its_path(path, value):
    manifest = minimal()
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    errors = errors_of(manifest)
    assert names(errors) == ["JSON_VALIDATION_ERROR"]
    assert errors[0]["description"].startswith("manifest." + ".".join(path) + ": ")


def test_a_name_ending_in_a_newline_is_refused_at_every_level():
    manifest = minimal(inputs={"files": [{"name": "IN\n"}]}, settings=[{"name": "S\n"}],
                       mounts=[{"name": "M\n", "path": "/m"}], errors=[{"code": 1, "name": "e\n"}],
                       resources={"scalar": [{"name": "cpus\n", "value": 1}]})
    described = [error["description"] for error in errors_of(manifest)]
    assert len(described) == 5
    assert all('\\n" must be only letters, digits' in text for text in described)


def test_pre_release_and_build_versions_are_valid():
    manifest = minimal()
    manifest["job"]["jobVersion"] = "1.0.0-alpha.1+build.5"
    assert errors_of(manifest) == []


def test_every_schema_error_is_reported_at_once():
    manifest = minimal(mounts=[{"name": "M", "path": "/m", "mode": "rx"}], unknown=1)
    manifest["seedVersion"] = 1
    del manifest["job"]["title"]
    manifest["job"]["errors"] = [{"code": "1", "name": "e", "category": "fatal"}]
    described = sorted(error["description"] for error in errors_of(manifest))
    assert described == [
        'manifest.job.errors[0].category: "fatal" is not one of "job", "data"',
        'manifest.job.errors[0].code: "1" is not of type "integer"',
        'manifest.job.interface.mounts[0].mode: "rx" is not one of "ro", "rw"',
        'manifest.job.interface: unknown field(s) "unknown"',
        "manifest.job: 'title' is a required property",
        'manifest.seedVersion: 1 is not of type "string"',
    ]


def test_resources_need_their_scalar_list():
    errors = errors_of(minimal(resources={}))
    assert [error["description"] for error in errors] == ["manifest.job.resources: 'scalar' is a required property"]


def test_an_error_without_a_name_is_refused():  # the v6 docs' example omits it; the standard requires it
    errors = errors_of(minimal(errors=[{"code": 1, "category": "data"}]))
    assert [error["description"] for error in errors] == ["manifest.job.errors[0]: 'name' is a required property"]


def test_a_schema_error_skips_the_semantic_checks():
    manifest = minimal(mounts=[{"name": "M", "path": "relative"}, {"name": "M", "path": 5}])
    assert names(errors_of(manifest)) == ["JSON_VALIDATION_ERROR"]


# --- the semantic checks ---

@pytest.mark.parametrize("interface", [
    {"inputs": {"files": [{"name": "db-host"}]}, "settings": [{"name": "DB_HOST"}]},
    {"inputs": {"files": [{"name": "A"}], "json": [{"name": "a", "type": "string"}]}},
    {"settings": [{"name": "OUTPUT_DIR"}]},
    {"inputs": {"json": [{"name": "ALLOCATED_CPUS", "type": "integer"}]},
     "resources": {"scalar": [{"name": "cpus", "value": 1}]}},
    {"resources": {"scalar": [{"name": "mem", "value": 1}, {"name": "mem", "value": 2}]}},
    {"settings": [{"name": "S"}, {"name": "S"}]},
    {"outputs": {"files": [{"name": "OUT", "pattern": "*.png"}], "json": [{"name": "OUT", "type": "string"}]}},
])
def test_names_that_collide_are_a_name_collision_error(interface):
    assert names(errors_of(minimal(**interface))) == ["NAME_COLLISION_ERROR"]


def test_an_input_may_share_its_name_with_an_output_and_a_mount():
    manifest = minimal(inputs={"files": [{"name": "X"}]}, outputs={"files": [{"name": "X", "pattern": "x"}]},
                       mounts=[{"name": "X", "path": "/x"}])
    assert errors_of(manifest) == []


def test_a_collision_names_who_collides():
    errors = errors_of(minimal(inputs={"files": [{"name": "db-host"}]}, settings=[{"name": "DB_HOST"}]))
    assert 'input "db-host", setting "DB_HOST" collide as the environment variable DB_HOST' \
        in errors[0]["description"]


@pytest.mark.parametrize("interface, name", [
    ({"mounts": [{"name": "M", "path": "/a"}, {"name": "M", "path": "/b"}]}, "DUPLICATE_MOUNT_NAMES"),
    ({"mounts": [{"name": "M", "path": "relative/path"}]}, "INVALID_MOUNT_PATH"),
    ({"mounts": [{"name": "A", "path": "/data"}, {"name": "B", "path": "/data/"}]}, "DUPLICATE_MOUNT_PATHS"),
    ({"errors": [{"code": 1, "name": "a"}, {"code": 1, "name": "b"}]}, "DUPLICATE_ERROR_CODES"),
    ({"errors": [{"code": 1, "name": "a"}, {"code": 2, "name": "a"}]}, "DUPLICATE_ERROR_NAMES"),
    ({"outputs": {"files": [{"name": "O", "pattern": "/etc/*"}]}}, "INVALID_OUTPUT_PATTERN"),
    ({"outputs": {"files": [{"name": "O", "pattern": "sub/../../*"}]}}, "INVALID_OUTPUT_PATTERN"),
])
def test_each_semantic_error_has_its_name(interface, name):
    assert names(errors_of(minimal(**interface))) == [name]


@pytest.mark.parametrize("media_type", ["text/plain\r\nX-Evil: 1", "image/" + "x" * 195, "t\u00e9xt/plain"])
def test_an_output_media_type_that_cannot_be_a_content_type_would_fail_every_job(media_type):
    manifest = minimal(outputs={"files": [{"name": "O", "pattern": "*", "mediaType": media_type},
                                          {"name": "P", "pattern": "p", "mediaType": "image/tiff"}]})
    assert errors_of(manifest) == []  # a stored manifest is not checked again: see validate_runnable
    assert names(validate_runnable(manifest)) == ["INVALID_MEDIA_TYPE"]


def test_every_semantic_error_is_reported_at_once():
    manifest = minimal(settings=[{"name": "OUTPUT_DIR"}],
                       mounts=[{"name": "M", "path": "rel"}, {"name": "M", "path": "/abs"}],
                       errors=[{"code": 3, "name": "x"}, {"code": 3, "name": "x"}])
    assert sorted(names(errors_of(manifest))) == ["DUPLICATE_ERROR_CODES", "DUPLICATE_ERROR_NAMES",
                                                  "DUPLICATE_MOUNT_NAMES", "INVALID_MOUNT_PATH",
                                                  "NAME_COLLISION_ERROR"]


# --- the configuration ---

MANIFEST = minimal(mounts=[{"name": "M", "path": "/m"}], settings=[{"name": "S"}, {"name": "P", "secret": True}],
                   outputs={"files": [{"name": "F", "pattern": "*.txt"}], "json": [{"name": "J", "type": "integer"}]})
FULL = {"mounts": {"M": {"type": "host", "host_path": "/host"}}, "settings": {"S": "s", "P": "p"},
        "output_workspaces": {"default": "ws"}, "priority": 1}


def configured(**changes) -> dict:
    configuration = copy.deepcopy(FULL)
    for key, value in changes.items():
        if value is None:
            del configuration[key]
        else:
            configuration[key] = value
    return configuration


def test_a_full_configuration_is_valid_without_warning():
    assert validate_configuration(FULL, MANIFEST) == ([], [])


@pytest.mark.parametrize("version", ["6", "2.0"])
def test_the_configuration_versions_scale_reads_are_valid(version):
    assert validate_configuration(configured(version=version), MANIFEST) == ([], [])


@pytest.mark.parametrize("changes, name", [
    ({"mounts": {"M": {"type": "host", "host_path": "/h"}, "X": {"type": "volume"}}}, "UNKNOWN_MOUNT"),
    ({"mounts": None}, "MISSING_MOUNT"),
    ({"settings": {"S": "s", "P": "p", "X": "x"}}, "UNKNOWN_SETTING"),
    ({"settings": {"S": "s"}}, "MISSING_SETTING"),
    ({"output_workspaces": None}, "MISSING_WORKSPACE"),
    ({"output_workspaces": {"default": ""}}, "MISSING_WORKSPACE"),  # Scale reads an empty default as none
    ({"output_workspaces": {"default": "ws", "outputs": {"J": "ws2"}}}, "UNKNOWN_OUTPUT"),  # J is no file
])
def test_each_configuration_warning_has_its_name(changes, name):
    errors, warnings = validate_configuration(configured(**changes), MANIFEST)
    assert (errors, names(warnings)) == ([], [name])


def test_a_workspace_for_each_file_output_needs_no_default():
    configuration = configured(output_workspaces={"outputs": {"F": "ws"}})
    assert validate_configuration(configuration, MANIFEST) == ([], [])


def test_no_configuration_warns_of_everything_the_manifest_needs():
    errors, warnings = validate_configuration(None, MANIFEST)
    assert errors == []
    assert names(warnings) == ["MISSING_MOUNT", "MISSING_SETTING", "MISSING_SETTING", "MISSING_WORKSPACE"]


@pytest.mark.parametrize("changes, name", [
    ({"priority": 0}, "INVALID_CONFIGURATION"),
    ({"priority": True}, "INVALID_CONFIGURATION"),
    ({"priority": 1.5}, "INVALID_CONFIGURATION"),
    ({"settings": {"S": 1, "P": "p"}}, "INVALID_CONFIGURATION"),
    ({"mounts": {"M": {"type": "nfs", "host_path": "/h"}}}, "INVALID_CONFIGURATION"),
    ({"mounts": {"M": {"type": "host"}}}, "INVALID_CONFIGURATION"),
    ({"mounts": {"M": {"type": "host", "host_path": None}}}, "INVALID_CONFIGURATION"),
    ({"mounts": {"M": {"type": "host", "host_path": "/h", "driver": "local"}}}, "INVALID_CONFIGURATION"),
    ({"mounts": {"M": {"type": "volume", "host_path": "/h"}}}, "INVALID_CONFIGURATION"),
    ({"mounts": {"M": {"type": "volume", "driver_opts": {"o": 1}}}}, "INVALID_CONFIGURATION"),
    ({"output_workspaces": {"default": "ws", "other": "x"}}, "INVALID_CONFIGURATION"),
    ({"unknown": 1}, "INVALID_CONFIGURATION"),
    ({"version": "1.0"}, "INVALID_VERSION"),
    ({"mounts": {"M": {"type": "host", "host_path": "relative"}}}, "HOST_ABSOLUTE_PATH"),
])
def test_each_configuration_error_has_its_name(changes, name):
    errors, warnings = validate_configuration(configured(**changes), MANIFEST)
    assert (names(errors), warnings) == ([name], [])


def test_every_configuration_error_is_reported_at_once():
    configuration = configured(priority=0, version="5", settings={"S": None, "P": "p"},
                               mounts={"M": {"type": "host", "host_path": "rel"}})
    errors, _ = validate_configuration(configuration, MANIFEST)
    assert sorted(names(errors)) == ["HOST_ABSOLUTE_PATH", "INVALID_CONFIGURATION", "INVALID_CONFIGURATION",
                                     "INVALID_VERSION"]


def test_a_configuration_is_not_compared_with_an_invalid_manifest():
    errors, warnings = validate_configuration({"mounts": {"M": {"type": "volume"}}}, {"job": "garbage"})
    assert (errors, warnings) == ([], [])


# --- garbage ---

NOT_OBJECTS = [None, "", "manifest", 0, 1.5, True, [], [{}], ["seedVersion", "job"]]


@pytest.mark.parametrize("value", NOT_OBJECTS)
def test_a_manifest_that_is_no_object_is_one_error(value):
    assert names(errors_of(value)) == ["JSON_VALIDATION_ERROR"]
    assert secret_setting_names(value) == set()


@pytest.mark.parametrize("value", [value for value in NOT_OBJECTS if value is not None])
def test_a_configuration_that_is_no_object_is_one_error(value):
    errors, warnings = validate_configuration(value, MANIFEST)
    assert (names(errors), warnings) == (["INVALID_CONFIGURATION"], [])


@pytest.mark.parametrize("manifest", NOT_OBJECTS)
def test_a_configuration_against_garbage_is_checked_alone(manifest):
    assert validate_configuration(FULL, manifest) == ([], [])


def test_wrong_types_at_every_level_are_errors():
    garbage = {"seedVersion": ["1.0.0"], "job": {
        "name": {}, "jobVersion": 1, "packageVersion": None, "title": [], "description": 2, "timeout": "10",
        "tags": "x", "maintainer": [], "resources": {"scalar": [1, {"name": [], "value": "1"}]},
        "interface": {"command": [], "inputs": {"files": "x", "json": [None]}, "outputs": [],
                      "mounts": [1, "a", None, {"name": 1, "path": []}], "settings": [{"name": 1, "secret": "yes"}]},
        "errors": {"code": 1}}}
    errors = errors_of(garbage)
    assert len(errors) >= 20 and set(names(errors)) == {"JSON_VALIDATION_ERROR"}
    assert secret_setting_names(garbage) == set()
    configuration = {"mounts": {"M": "host", "N": {"type": []}, "O": {"type": "host", "host_path": 1}},
                     "output_workspaces": {"default": [], "outputs": []}, "priority": "1", "settings": [],
                     "version": 6}
    errors, warnings = validate_configuration(configuration, garbage)
    assert len(errors) == 8 and set(names(errors)) == {"INVALID_CONFIGURATION"} and warnings == []


def test_secret_settings_of_a_manifest_with_odd_settings_are_the_well_formed_ones():
    manifest = minimal(settings=[{"name": "A", "secret": True}, {"name": "B", "secret": "true"}, {"secret": True},
                                 {"name": ["C"], "secret": True}, "D"])
    assert secret_setting_names(manifest) == {"A"}


def test_a_deeply_nested_document_is_one_error():
    deep = []
    for _ in range(50_000):
        deep = [deep]
    assert names(errors_of({"seedVersion": "1.0.0", "job": deep})) == ["JSON_VALIDATION_ERROR"]
    errors, _ = validate_configuration({"settings": {"S": deep}}, MANIFEST)
    assert names(errors) == ["INVALID_CONFIGURATION"]
    assert secret_setting_names({"job": {"interface": {"settings": [{"name": "S", "secret": deep}]}}}) == set()


def test_huge_values_make_short_descriptions():
    huge = "x" * 1_000_000
    manifest = minimal(settings=[{"name": huge + "!"}], mounts=[{"name": "M", "path": huge}])
    manifest["job"][huge] = huge
    manifest["job"]["jobVersion"] = "1.0.0-" + "1" * 1_000_000 + "!"
    errors = errors_of(manifest)
    assert len(errors) == 3 and all(len(error["description"]) < 300 for error in errors)
    configuration = {"mounts": {huge: {"type": "host", "host_path": huge}}, "settings": {huge: huge}}
    errors, warnings = validate_configuration(configuration, MANIFEST)
    assert names(errors) == ["HOST_ABSOLUTE_PATH"]
    assert all(len(item["description"]) < 300 for item in errors + warnings)


def test_a_flood_of_errors_is_cut_short():
    manifest = minimal(settings=[{"name": i} for i in range(5 * MAX_ERRORS)])
    errors = errors_of(manifest)
    assert len(errors) == MAX_ERRORS + 1
    assert errors[-1]["description"].endswith(f"(only the first {MAX_ERRORS} are)")


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_a_character_no_database_stores_is_an_error(text):
    manifest = minimal()
    manifest["job"]["title"] = text
    assert names(errors_of(manifest)) == ["JSON_VALIDATION_ERROR"]
    errors, _ = validate_configuration({"settings": {"S": text, "P": "p"}}, MANIFEST)
    assert names(errors) == ["INVALID_CONFIGURATION"]
