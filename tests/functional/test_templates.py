"""Job templates (seed 001): import/export, meta graphs, the template questions, permissions."""
import json

import pytest
import yaml

from templates_fixtures import DELETE, PREDICT, PROCESS, TRAIN, TRAIN_THEN_PREDICT, document


@pytest.fixture
def train(admin):
    return admin.post("/v1/job-templates/import", TRAIN, status=201).json


@pytest.fixture
def predict(admin):
    return admin.post("/v1/job-templates/import", PREDICT, status=201).json


@pytest.fixture
def meta(admin, train, predict):
    return admin.post("/v1/job-templates/import", TRAIN_THEN_PREDICT, status=201).json


def test_import_workable(admin, alice, train):
    assert train["name"] == "tiny-train" and train["version"] == 1 and train["scope"] == "public"
    assert train["type"] == "Train<Domain<'ic'>, Framework<'numpy', '1.26'>>"
    assert train["executor_class"] == "ufdl_example_executors.TinyTrainer"
    assert train["domain"] == "ic" and train["creator"] == admin.user_id and train["deletion_time"] is None
    assert train["inputs"] == {"dataset": {"types": ["PK<Dataset<Domain<'ic'>>>"], "help": train["inputs"][
        "dataset"]["help"]}}
    assert train["outputs"] == {"model": "Model<Domain<'ic'>, Framework<'numpy', '1.26'>>"}
    assert train["parameters"]["epochs"] == {"types": ["int"], "help": "Passes over the data", "default": 5,
                                             "default_type": "int"}
    assert alice.get(f"/v1/job-templates/{train['pk']}").json == train
    assert [row["pk"] for row in alice.post("/v1/job-templates/list").json] == [train["pk"]]


def test_reimport_identical_is_a_no_op_and_different_is_409(admin, train):
    again = admin.post("/v1/job-templates/import", TRAIN, status=200).json
    assert again["pk"] == train["pk"]
    changed = document(TRAIN, description="Something else")
    response = admin.post("/v1/job-templates/import", changed, status=409)
    assert "version 1 already exists with different content" in response.json["detail"]


def test_a_version_written_as_a_float_is_that_integer(admin):
    imported = admin.post("/v1/job-templates/import", document(TRAIN, version=1.0), status=201).json
    assert imported["version"] == 1 and isinstance(imported["version"], int)  # was answered 1.0
    assert admin.post("/v1/job-templates/import", TRAIN, status=200).json["pk"] == imported["pk"]


def test_no_version_means_next_version_unless_identical(admin, train):
    unversioned = document(TRAIN, version=DELETE)
    assert admin.post("/v1/job-templates/import", unversioned, status=200).json["pk"] == train["pk"]
    second = admin.post("/v1/job-templates/import", document(unversioned, description="v2"), status=201).json
    assert second["version"] == 2


def test_an_unversioned_import_is_compared_with_the_latest_version(admin, train):
    unversioned = document(TRAIN, version=DELETE, description="v2")
    second = admin.post("/v1/job-templates/import", unversioned, status=201).json
    assert admin.post("/v1/job-templates/import", unversioned, status=200).json["pk"] == second["pk"]
    # The first version's content again is a new version: only the latest is compared.
    third = admin.post("/v1/job-templates/import", document(TRAIN, version=DELETE), status=201).json
    assert (second["version"], third["version"]) == (2, 3)


def test_no_next_version_past_the_highest_is_409_and_writes_nothing(admin):
    """An unversioned import after version 2147483647 was a 500 on PostgreSQL (integer out of range), and on SQLite
    made a version 2147483648 that its own export could not import again."""
    highest = admin.post("/v1/job-templates/import", document(TRAIN, version=2**31 - 1), status=201).json
    refused = admin.post("/v1/job-templates/import", document(TRAIN, version=DELETE, description="v2"), status=409)
    assert "2147483647" in refused.json["detail"] and "give the version" in refused.json["detail"]
    assert [row["pk"] for row in admin.post("/v1/job-templates/list", {"include_inactive": True}).json] == [
        highest["pk"]]
    assert admin.post("/v1/job-templates/import", document(TRAIN, version=2, description="v2"),
                      status=201).json["version"] == 2


def test_a_deleted_version_keeps_its_number(admin, train):
    second = admin.post("/v1/job-templates/import", document(TRAIN, version=DELETE, description="v2"),
                        status=201).json
    admin.delete(f"/v1/job-templates/{second['pk']}")
    third = admin.post("/v1/job-templates/import", document(TRAIN, version=DELETE, description="v3"),
                       status=201).json
    assert third["version"] == 3
    admin.delete(f"/v1/job-templates/{second['pk']}/reinstate")  # v2 comes back beside it


def test_a_deleted_licence_or_domain_is_unknown_to_an_import(admin):
    licence = admin.post("/v1/licences/create", {"name": "WTFPL", "url": "http://www.wtfpl.net/"}, status=201).json
    domain = admin.post("/v1/domains/create", {"name": "xx", "description": "Example"}, status=201).json
    first = admin.post("/v1/job-templates/import", document(PREDICT, name="first", licence="WTFPL", domain="xx"),
                       status=201).json
    admin.delete(f"/v1/job-templates/{first['pk']}")  # no active template names them: they may be deleted
    admin.delete(f"/v1/licences/{licence['pk']}")
    admin.delete(f"/v1/domains/{domain['pk']}")
    refused = admin.post("/v1/job-templates/import", document(PREDICT, licence="WTFPL"), status=400)
    assert refused.json["detail"] == "licence: unknown licence 'WTFPL'"
    refused = admin.post("/v1/job-templates/import", document(PREDICT, domain="xx"), status=400)
    assert refused.json["detail"] == "domain: unknown domain 'xx'"


def test_export_round_trip_json_and_yaml(admin, train):
    exported = admin.get(f"/v1/job-templates/{train['pk']}/export").json
    assert exported == {**TRAIN, "specific": {**TRAIN["specific"], "parameters": {
        "epochs": {"types": ["int"], "help": "Passes over the data", "default": 5, "default_type": "int"},
        "rate": {"types": ["float"], "help": "Learning rate", "default": 0.1, "default_type": "float",
                 "const": True},
        "tag": {"types": ["str"], "help": "A label for the run"}}}}
    # What export gives, import takes unchanged: here on an emptied server.
    admin.delete(f"/v1/job-templates/{train['pk']}/hard")
    again = admin.post("/v1/job-templates/import", exported, status=201).json
    assert admin.get(f"/v1/job-templates/{again['pk']}/export").json == exported

    as_yaml = admin.get(f"/v1/job-templates/{again['pk']}/export", headers={"Accept": "application/yaml"})
    assert as_yaml.content_type == "application/yaml"
    assert as_yaml.text.startswith("name: tiny-train\nversion: 1\n")
    assert yaml.safe_load(as_yaml.text) == exported
    assert admin.get(f"/v1/job-templates/{again['pk']}/export?format=yaml").text == as_yaml.text
    admin.delete(f"/v1/job-templates/{again['pk']}/hard")
    reimported = admin.request("POST", "/v1/job-templates/import", body=as_yaml.body,
                               content_type="application/yaml", status=201).json
    assert admin.get(f"/v1/job-templates/{reimported['pk']}/export").json == exported


def test_the_pk_of_a_template_deleted_for_good_is_never_given_again(admin, train):
    """SQLite handed out max(id) + 1: a client holding the pk of the newest template, deleted for good, created
    its jobs from the next one imported."""
    admin.delete(f"/v1/job-templates/{train['pk']}/hard")
    again = admin.post("/v1/job-templates/import", TRAIN, status=201).json
    assert again["pk"] > train["pk"]
    admin.get(f"/v1/job-templates/{train['pk']}", status=404)


def test_a_yaml_media_type_is_recognised_in_any_case(admin):
    """Media types are case-insensitive (RFC 9110 8.3.1): 'Application/YAML' was read as JSON and refused as
    malformed JSON."""
    text = yaml.safe_dump(TRAIN).encode()
    for content_type, status in (("Application/YAML", 201), ("TEXT/YAML; charset=utf-8", 200)):  # then identical
        admin.request("POST", "/v1/job-templates/import", body=text, content_type=content_type, status=status)


def test_export_takes_format_json_or_yaml_over_accept_and_refuses_another(admin, train):
    export = f"/v1/job-templates/{train['pk']}/export"
    as_json = admin.get(f"{export}?format=json", headers={"Accept": "application/yaml"})
    assert as_json.content_type == "application/json" and as_json.json["name"] == train["name"]
    # ?format=xml was answered JSON, as if the server had understood it.
    refused = admin.get(f"{export}?format=xml", status=400).json
    assert refused == {"detail": "format must be json or yaml, not 'xml'"}


def test_an_export_chosen_by_accept_varies_on_accept(admin, train):
    """The one URL answers JSON or YAML by the Accept header: without 'Vary: Accept' a shared cache could hand
    the YAML it stored to a client asking for JSON."""
    export = f"/v1/job-templates/{train['pk']}/export"
    for accept, content_type in (("application/yaml", "application/yaml"), ("application/json", "application/json"),
                                 ("*/*", "application/json"), (None, "application/json"),
                                 # A type named beats one reached through a wildcard of the same quality.
                                 ("application/yaml, */*", "application/yaml"), ("*/*, text/yaml", "application/yaml"),
                                 ("application/*, application/json", "application/json"),
                                 ("application/yaml;q=0.5, */*", "application/json")):
        answer = admin.get(export, headers={"Accept": accept} if accept else {})
        assert answer.content_type == content_type
        assert answer.headers["Vary"] == "Accept"
    # ?format= chooses alone: the URL tells the two apart, the Accept header plays no part.
    assert "Vary" not in admin.get(f"{export}?format=yaml", headers={"Accept": "application/json"}).headers


def test_a_query_string_that_is_not_utf8_is_400(admin, train):
    # The views that read the query string: an export's format, and a list's paging.
    for method, path in (("GET", f"/v1/job-templates/{train['pk']}/export?format=%FE"),
                         ("POST", "/v1/job-templates/list?page=%FF"), ("POST", "/v1/jobs/list?%FF=%FE")):
        response = admin.request(method, path, status=400)
        assert "query string is not valid UTF-8" in response.json["detail"], path
    # A byte past ASCII sent raw (a client that does not escape it), not only percent-escaped.
    response = admin.app.post("/v1/jobs/list", headers=admin.headers(), extra_environ={"QUERY_STRING": "page=\xff"},
                              status=400)
    assert "query string is not valid UTF-8" in response.json["detail"]


def test_yaml_import_errors_name_the_line_and_refuse_tags(admin):
    bad = b"name: x\nscope: public\n  licence: MIT\n"
    response = admin.request("POST", "/v1/job-templates/import", body=bad, content_type="application/yaml",
                             status=400)
    assert "line 3" in response.json["detail"]
    tagged = b"name: !!python/object/apply:os.system ['true']\n"
    response = admin.request("POST", "/v1/job-templates/import", body=tagged, content_type="application/yaml",
                             status=400)
    assert "Invalid YAML" in response.json["detail"]


@pytest.mark.parametrize("value", ["!!int x", "!!int ''", "!!float x", "!!bool 12", "!!timestamp 12",
                                   "!!timestamp x", "!!binary x", "!foo x", "!!python/object:os.system x",
                                   "!!int [1]", "!!str {a: 1}"])
def test_a_tag_that_does_not_fit_its_value_is_400(admin, value):
    """An explicit tag makes the loader convert the value: ``!!int x`` was a ValueError, and a 500."""
    refused = yaml_import(admin, JSON_PARAMETER.replace("DEFAULT", value), 400).json["detail"]
    assert refused.startswith("Invalid YAML (body, line 13, column 16): "), refused


def test_yaml_import_refuses_a_key_given_twice_but_lets_a_merge_key_be_overridden(admin):
    """PyYAML keeps the last of two values of a key: the import took version 2 here without a word."""
    text = yaml.safe_dump({**TRAIN, "version": 1}, sort_keys=False) + "version: 2\n"
    refused = yaml_import(admin, text, 400).json["detail"]
    assert "found the key 'version' twice" in refused and f"line {text.count(chr(10))}" in refused, refused
    merged = yaml.safe_dump({**TRAIN, "description": "overridden"}, sort_keys=False).replace(
        "description: overridden\n", "<<: {description: merged}\ndescription: overridden\n")
    assert yaml_import(admin, merged, 201).json["description"] == "overridden"


@pytest.mark.parametrize("changes, needle", [
    ({"colour": "red"}, "colour"),
    ({"licence": "No-Such-Licence"}, "licence: unknown licence"),
    ({"domain": "zz"}, "domain: unknown domain"),
    ({"scope": "everyone"}, "scope"),
    ({"specific__job_type": "Train<Domain<'ic'>"}, "specific.job_type"),
    ({"specific__job_type": "str"}, "is not a contract"),
    ({"specific__job_type": "NoSuchContract<int>"}, "NoSuchContract"),
    ({"specific__parameters__epochs__types": ["integer"]}, "specific.parameters.epochs.types[0]"),
    ({"specific__parameters__epochs__default": "five"}, "specific.parameters.epochs.default"),
    ({"specific__parameters__epochs__default_type": "str"}, "specific.parameters.epochs.default"),
    ({"specific__parameters__tag__const": True}, "specific.parameters.tag.const"),
    ({"specific__parameters__tag__default_type": "str"}, "default_type"),
    ({"specific__executor_class": "not a class"}, "executor_class"),
    ({"specific__executor_class": "tests.Train\n"}, "executor_class"),
    ({"specific__parameters__tag\n": {"types": ["str"], "help": ""}}, "specific.parameters"),
    ({"specific__unknown": 1}, "unknown"),
])
def test_bad_imports_are_400_naming_the_field(admin, changes, needle):
    response = admin.post("/v1/job-templates/import", document(TRAIN, **changes), status=400)
    assert needle in response.json["detail"]


def test_every_problem_of_the_specific_part_is_named_in_it(admin):
    """Only the first of several problems was named in ``specific``: the others read ``body: ...`` or lost
    their ``specific.``."""
    bad = document(TRAIN, specific__executor_class=5)
    del bad["specific"]["required_packages"], bad["specific"]["parameters"]
    detail = admin.post("/v1/job-templates/import", bad, status=400).json["detail"]
    assert detail == ("specific: 'required_packages' is a required property; "
                      "specific: 'parameters' is a required property; "
                      "specific.executor_class: 5 is not of type 'string'")


def test_meta_template(admin, alice, meta, train, predict):
    assert meta["version"] == 1
    assert meta["nodes"] == {"predict": {"name": "tiny-predict", "version": 1},
                             "train": {"name": "tiny-train", "version": 1, "parameter_default_overrides": {
                                 "epochs": {"value": 9, "type": "int"}}}}
    # Its inputs and parameters are its children's unwired ones, named child:name.
    assert set(meta["inputs"]) == {"train:dataset", "predict:dataset"}
    assert meta["parameters"]["train:epochs"]["default"] == 9
    assert set(meta["parameters"]) == {"train:epochs", "train:rate", "train:tag"}
    assert set(meta["outputs"]) == {"train:model", "predict:predictions"}
    assert alice.get(f"/v1/job-templates/{meta['pk']}/get-inputs").json == meta["inputs"]
    exported = admin.get(f"/v1/job-templates/{meta['pk']}/export").json
    assert exported["specific"]["nodes"]["predict"] == {"name": "tiny-predict", "version": 1}
    assert admin.post("/v1/job-templates/import", exported, status=200).json["pk"] == meta["pk"]
    # A child of a meta-template cannot be hard-deleted.
    assert "child of meta-template" in admin.delete(f"/v1/job-templates/{train['pk']}/hard", status=409).json[
        "detail"]


def test_a_meta_template_node_without_a_version_is_the_newest_active_version(admin, train, predict):
    admin.post("/v1/job-templates/import", document(PREDICT, version=2, description="Newer."), status=201)
    deleted = admin.post("/v1/job-templates/import", document(PREDICT, version=3, description="Deleted."),
                         status=201).json
    admin.delete(f"/v1/job-templates/{deleted['pk']}")
    meta = admin.post("/v1/job-templates/import", TRAIN_THEN_PREDICT, status=201).json
    exported = admin.get(f"/v1/job-templates/{meta['pk']}/export").json
    assert exported["specific"]["nodes"]["predict"] == {"name": "tiny-predict", "version": 2}


def test_meta_graph_errors(admin, train, predict):
    admin.post("/v1/job-templates/import", PROCESS, status=201)

    def rejected(**changes):
        return admin.post("/v1/job-templates/import", document(TRAIN_THEN_PREDICT, **changes), status=400).json[
            "detail"]

    assert "no template 'nope'" in rejected(specific__nodes__predict={"name": "nope"})
    assert "no template 'tiny-predict' version 7" in rejected(specific__nodes__predict={"name": "tiny-predict",
                                                                                         "version": 7})
    assert "has no output 'weights'" in rejected(specific__dependencies=[
        {"from_node": "train", "from_output": "weights", "to_node": "predict", "to_input": "model"}])
    assert "has no input 'image'" in rejected(specific__dependencies=[
        {"from_node": "train", "from_output": "model", "to_node": "predict", "to_input": "image"}])
    assert "unknown node 'other'" in rejected(specific__dependencies=[
        {"from_node": "other", "from_output": "model", "to_node": "predict", "to_input": "model"}])
    assert "does not fit input 'predict:model'" in rejected(
        specific__nodes={"proc": {"name": "blob-process"}, "predict": {"name": "tiny-predict"}},
        specific__dependencies=[{"from_node": "proc", "from_output": "output", "to_node": "predict",
                                 "to_input": "model"}])
    cycle = {"a": {"name": "blob-process"}, "b": {"name": "blob-process"}, "c": {"name": "blob-process"}}
    detail = rejected(specific__nodes=cycle, specific__dependencies=[
        {"from_node": "a", "from_output": "output", "to_node": "b", "to_input": "input"},
        {"from_node": "b", "from_output": "output", "to_node": "c", "to_input": "input"},
        {"from_node": "c", "from_output": "output", "to_node": "a", "to_input": "input"}])
    assert "cycle: a -> b -> c -> a" in detail
    twice = {"a": {"name": "blob-process"}, "b": {"name": "blob-process"}, "c": {"name": "blob-process"}}
    assert "input 'c:input' is wired more than once" in rejected(specific__nodes=twice, specific__dependencies=[
        {"from_node": "a", "from_output": "output", "to_node": "c", "to_input": "input"},
        {"from_node": "b", "from_output": "output", "to_node": "c", "to_input": "input"}])
    assert "no template 'tiny-train'" not in rejected(specific__nodes__train__parameter_default_overrides={
        "epochs": {"value": "x", "type": "int"}})
    assert "constant" in rejected(specific__nodes__train__parameter_default_overrides={
        "rate": {"value": 0.5, "type": "float"}})


def test_template_questions(alice, train):
    pk = train["pk"]
    assert alice.get(f"/v1/job-templates/{pk}/get-types").json == {
        "D": "Domain<'ic'>", "F": "Framework<'numpy', '1.26'>"}
    assert alice.get(f"/v1/job-templates/{pk}/get-outputs").json == train["outputs"]
    parameters = alice.get(f"/v1/job-templates/{pk}/get-all-parameters").json
    assert parameters["epochs"] == {"types": {"int": {"type": "integer"}}, "help": "Passes over the data",
                                    "default": {"value": 5, "type": "int", "schema": {"type": "integer"},
                                                "const": False}}
    assert parameters["rate"]["default"]["const"] is True
    assert "default" not in parameters["tag"]


def test_matching_templates(alice, train, predict, meta):
    def matching(path, query=""):
        # WebTest passes the query string on exactly as written, as the UFDL client sends it (unencoded).
        return [row["name"] for row in alice.app.get(f"{path}?{query}", headers=alice.headers()).json]

    assert matching("/v1/job-templates/get-all-matching-templates/Train") == ["tiny-train"]
    assert matching("/v1/job-templates/get-all-matching-templates/Contract") == ["tiny-train", "tiny-predict"]
    # The UFDL client sends the query string unencoded.
    assert matching("/v1/job-templates/get-all-matching-templates/Train",
                    "dataset=PK<Dataset<Domain<'ic'>>>") == ["tiny-train"]
    assert matching("/v1/job-templates/get-all-matching-templates/Train",
                    "dataset=PK%3CDataset%3CDomain%3C'ic'%3E%3E%3E") == ["tiny-train"]
    assert matching("/v1/job-templates/get-all-matching-templates/Train",
                    "dataset=PK<Dataset<Domain<'od'>>>") == []
    assert matching("/v1/job-templates/get-all-matching-templates/Train", "image=str") == []
    assert matching("/v1/job-templates/get-all-matching-templates/Predict",
                    "dataset=PK<Dataset<Domain<'ic'>>>&model=JobOutput<Model<Domain<'ic'>, "
                    "Framework<'numpy', '1.26'>>>") == ["tiny-predict"]
    assert matching("/v1/job-templates/get-all-matching-templates/Train",
                    "dataset=PK<Dataset<Domain<'Image+Classification'>>>") == []
    for not_a_contract in ("NoSuchContract", "str", "train"):
        detail = alice.get(f"/v1/job-templates/get-all-matching-templates/{not_a_contract}", status=400).json
        assert detail["detail"].startswith(f"Unknown contract '{not_a_contract}'; the contracts are: ")
        assert "Train" in detail["detail"] and "str" not in detail["detail"].split(": ")[1]
    alice.app.get("/v1/job-templates/get-all-matching-templates/Train?dataset=PK<", headers=alice.headers(),
                  status=400)


def test_permissions(admin, alice, anonymous, train):
    pk = train["pk"]
    anonymous.post("/v1/job-templates/list", status=401)
    anonymous.get(f"/v1/job-templates/{pk}", status=401)
    alice.post("/v1/job-templates/import", PREDICT, status=403)
    alice.get(f"/v1/job-templates/{pk}/export", status=403)
    alice.delete(f"/v1/job-templates/{pk}", status=403)
    alice.delete(f"/v1/job-templates/{pk}/hard", status=403)
    alice.delete(f"/v1/job-templates/{pk}/reinstate", status=403)
    # Templates are immutable: no PUT/PATCH, and no generic create.
    admin.put(f"/v1/job-templates/{pk}", TRAIN, status=405)
    admin.patch(f"/v1/job-templates/{pk}", {"description": "x"}, status=405)
    admin.post("/v1/job-templates/create", TRAIN, status=404)


def test_user_scope_is_visible_to_creator_and_admins_only(admin, alice):
    private = admin.post("/v1/job-templates/import", document(TRAIN, scope="user", name="private"),
                         status=201).json
    alice.get(f"/v1/job-templates/{private['pk']}", status=404)
    assert alice.post("/v1/job-templates/list").json == []
    assert [row["name"] for row in admin.post("/v1/job-templates/list").json] == ["private"]


def test_a_meta_template_is_no_wider_in_scope_than_its_children(admin, train, predict):
    """Whoever may see a graph may run it: a public one over a user-scope child showed and ran the child for
    users it is hidden from."""
    admin.post("/v1/job-templates/import", document(PREDICT, scope="user", name="private-predict"), status=201)
    over_private = {"train": {"name": "tiny-train"}, "predict": {"name": "private-predict"}}
    for scope in ("public", "project"):
        detail = admin.post("/v1/job-templates/import", document(
            TRAIN_THEN_PREDICT, scope=scope, specific__nodes=over_private), status=400).json["detail"]
        assert detail == ("specific.nodes.predict: template 'private-predict' is of scope user: only a "
                          "meta-template of scope user may include it")
    admin.post("/v1/job-templates/import", document(TRAIN_THEN_PREDICT, scope="user", specific__nodes=over_private),
               status=201)


def test_soft_delete_reinstate_and_hard_delete(admin, alice, train):
    pk = train["pk"]
    assert admin.delete(f"/v1/job-templates/{pk}").json["deletion_time"] is not None
    assert alice.post("/v1/job-templates/list").json == []
    assert len(alice.post("/v1/job-templates/list", {"include_inactive": True}).json) == 1
    # The deleted version's number may be taken again; reinstating the old one then conflicts.
    admin.post("/v1/job-templates/import", document(TRAIN, description="replacement"), status=201)
    assert "already active" in admin.delete(f"/v1/job-templates/{pk}/reinstate", status=409).json["detail"]
    assert admin.delete(f"/v1/job-templates/{pk}/hard").json["pk"] == pk
    admin.get(f"/v1/job-templates/{pk}", status=404)


def test_an_action_followed_by_more_path_is_404_and_does_nothing(admin, alice, train, predict):
    """The segments after an action's name were ignored: DELETE .../1/hard/2 deleted template 1 for good, and
    POST .../import/x or .../create/x created."""
    pk = train["pk"]
    for method, path, body in (("DELETE", f"/v1/job-templates/{pk}/hard/{predict['pk']}", None),
                               ("DELETE", f"/v1/job-templates/{pk}/reinstate/x", None),
                               ("POST", "/v1/job-templates/import/x", document(TRAIN, name="other")),
                               ("POST", f"/v1/job-templates/{pk}/create-job/x", {}),
                               ("GET", f"/v1/job-templates/{pk}/export/x", None),
                               ("GET", f"/v1/job-templates/{pk}/get-outputs/x", None),
                               ("POST", "/v1/job-types/create/x", {"name": "x", "pkg": "builtins", "cls": "str"}),
                               ("POST", "/v1/job-templates/list/x", None)):
        assert admin.request(method, path, body, status=404).json == {"detail": "Not found."}, path
    assert [row["pk"] for row in alice.post("/v1/job-templates/list", {"include_inactive": True}).json] == [
        pk, predict["pk"]]
    assert alice.post("/v1/jobs/list").json == []
    assert alice.post("/v1/job-types/list", {"expressions": [{"type": "exact", "field": "name", "value": "x"}]}
                      ).json == []
    # A trailing slash is still tolerated; the actions that take a segment still take one.
    assert admin.get(f"/v1/job-templates/{pk}/get-outputs/").json == train["outputs"]
    assert alice.get("/v1/job-types/get-all-values/Domain<'ic'>").json[0]["name"] == "ic"


def test_more_path_is_404_before_the_permission_check(admin, alice, anonymous, train):
    """A caller refused the action (not an admin) got 403 for a path that names nothing; an anonymous caller is
    still 401 first, and a template that does not exist is 404 as ever."""
    pk = train["pk"]
    for method, path in (("GET", f"/v1/job-templates/{pk}/export/x"), ("DELETE", f"/v1/job-templates/{pk}/hard/x"),
                         ("POST", "/v1/job-templates/import/x"), ("GET", "/v1/job-templates/999999/export/x")):
        assert alice.request(method, path, status=404).json == {"detail": "Not found."}, path
        anonymous.request(method, path, status=401)
    alice.get(f"/v1/job-templates/{pk}/export", status=403)  # the action's own path: refused as before
    assert admin.get(f"/v1/job-templates/{pk}").json["pk"] == pk  # not deleted


def test_list_filters_on_templates(alice, train, predict, meta):
    body = {"expressions": [{"type": "exact", "field": "domain.name", "value": "ic"},
                            {"type": "contains", "field": "name", "sub_string": "tiny"}],
            "order_by": [{"field": "name", "ascending": False}]}
    assert [row["name"] for row in alice.post("/v1/job-templates/list", body).json] == ["tiny-train",
                                                                                        "tiny-predict"]
    body = {"expressions": [{"type": "exact", "field": "licence.name", "value": "MIT"},
                            {"type": "isnull", "field": "contract"}]}
    assert [row["name"] for row in alice.post("/v1/job-templates/list", body).json] == ["train-then-predict"]
    # The contract is answered as `type`: filters and ordering take that name as well.
    train_type = alice.get(f"/v1/job-templates/{train['pk']}").json["type"]
    body = {"expressions": [{"type": "exact", "field": "type", "value": train_type}],
            "order_by": [{"field": "type"}]}
    assert [row["name"] for row in alice.post("/v1/job-templates/list", body).json] == ["tiny-train"]


def test_job_types_in_use_cannot_be_destroyed_renamed_or_re_pointed(admin, alice, train):
    types = {row["name"]: row for row in admin.post("/v1/job-types/list").json}
    pk = types["Train"]["pk"]
    response = admin.delete(f"/v1/job-types/{pk}", status=409)
    assert response.json == {"detail": "Job type 'Train' is used by 1 job template(s): it cannot be deleted"}
    # The templates name it and were checked against its class: they would no longer resolve.
    # (Only a row that still names a UFDL type of its name gets this far: others are 400.)
    for change in ({"name": "Any", "pkg": "ufdl_pyramid.types", "cls": "AnyType"},
                   {"cls": "ufdl_core_types.contracts.Train"}):
        refused = admin.patch(f"/v1/job-types/{pk}", change, status=409)
        assert refused.json["detail"].endswith("it cannot be renamed or re-pointed")
    assert admin.patch(f"/v1/job-types/{pk}", {"name": "Train"}).json == types["Train"]  # no change: fine
    assert admin.get(f"/v1/job-types/{pk}").json == types["Train"]
    alice.get(f"/v1/job-templates/{train['pk']}/get-types")


def test_get_all_values(alice, admin):
    def values(type_text):
        return alice.app.get(f"/v1/job-types/get-all-values/{type_text}", headers=alice.headers()).json

    assert [row["name"] for row in values("Domain")] == ["ic", "od", "is", "sp", "tc"]
    assert [row["name"] for row in values("Domain<'sp'>")] == ["sp"]
    assert "MIT" in [row["name"] for row in values("Licence")]
    assert [(row["name"], row["version"]) for row in values("Framework<'tensorflow'>")] == [
        ("tensorflow", "1.14"), ("tensorflow", "2.15")]
    assert values("JobOutput<BLOB>") == []
    for bad, needle in (("str", "not a server-resident type"), ("Dataset", "keeps no Dataset records"),
                        ("Array<", "TYPE"), ("Nope", "Nope")):
        response = alice.app.get(f"/v1/job-types/get-all-values/{bad}", headers=alice.headers(), status=400)
        assert needle in response.json["detail"]


def test_concurrent_imports_of_one_document_create_it_once(wsgi_app, admin):
    """Eight clients import the same unversioned document at once: one version exists afterwards."""
    import threading

    import webtest

    unversioned = document(TRAIN, version=DELETE)
    statuses, barrier = [], threading.Barrier(8)

    def importer():
        client = webtest.TestApp(wsgi_app)
        barrier.wait()
        response = client.post_json("/v1/job-templates/import", unversioned, headers=admin.headers(),
                                    expect_errors=True)
        statuses.append(response.status_int)

    threads = [threading.Thread(target=importer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 7 + [201]
    assert [row["version"] for row in admin.post("/v1/job-templates/list").json] == [1]


def yaml_import(admin, text: str, status: int):
    return admin.request("POST", "/v1/job-templates/import", body=text.encode(), content_type="application/yaml",
                         status=status)


JSON_PARAMETER = """name: values
version: 1
scope: public
licence: MIT
specific:
  job_type: Process<str, str>
  executor_class: x.Y
  required_packages: ''
  parameters:
    value:
      types: [JSON]
      help: ''
      default: DEFAULT
"""


@pytest.mark.parametrize("default, needle", [
    ("2024-01-01", "not a JSON value"),                     # a date
    ("!!set {a: null}", "not a JSON value"),
    ("{1: a}", "is not a string"),                          # stored as {"1": ...}: it would not read back
    (".nan", "not a JSON number"),
    ("&a [*a]", "nested more than"),                        # an alias that contains itself
    ("[" * 150 + "]" * 150, "nested more than"),
    ('"a\\0b"', "cannot be stored"),                          # PostgreSQL stores no NUL in text or JSON
    ('{"a\\0": 1}', "cannot be stored"),
    ('"\\ud800"', "Invalid YAML"),                 # half of a surrogate pair: not UTF-8 (libyaml refuses the escape)
])
def test_yaml_values_json_cannot_hold_are_400(admin, default, needle):
    refused = yaml_import(admin, JSON_PARAMETER.replace("DEFAULT", default), 400)
    assert needle in refused.json["detail"]


def test_a_document_nested_exactly_as_deep_as_the_limit_is_accepted(admin):
    """At most 100 levels deep (the document itself is the first): 100 is imported, 101 is 400."""

    def nested(levels: int) -> str:  # JSON is YAML in flow style: every level a bracket
        document = yaml.safe_load(JSON_PARAMETER.replace("DEFAULT", "null"))
        document["specific"]["parameters"]["value"]["default"] = default = []
        for _ in range(levels - 5):  # the document, specific, parameters, value, default
            default.append([])
            default = default[0]
        return json.dumps(document)
    yaml_import(admin, nested(100), 201)
    assert "nested more than 100 levels deep" in yaml_import(admin, nested(101), 400).json["detail"]


@pytest.mark.parametrize("description", [
    "[" * 200,                                              # exported in quotes
    "Usage: [[" + "{" * 200 + "\n  # it's \"quoted\" [" * 3,  # exported as a literal block
    "a" + "[" * 200,                                        # exported plain
])
def test_brackets_in_text_are_no_nesting(admin, description):
    """Every '[' and '{' counted as a level, in strings too: a template with such a description imported as JSON
    and its own YAML export was then refused as nested too deep."""
    pk = admin.post("/v1/job-templates/import", document(TRAIN, description=description), status=201).json["pk"]
    exported = admin.get(f"/v1/job-templates/{pk}/export?format=yaml").body
    assert yaml_import(admin, exported.decode(), 200).json["pk"] == pk
    written = JSON_PARAMETER.replace("help: ''", "help: 'it''s " + "[" * 200 + "' # [[[ {{{ \"")
    assert yaml_import(admin, written, 201).json["parameters"]["value"]["help"] == "it's " + "[" * 200


def test_brackets_in_text_do_not_hide_nesting(admin):
    text = JSON_PARAMETER.replace("help: ''", "help: '" + "[" * 200 + "'").replace(
        "DEFAULT", "[" * 101 + "]" * 101)
    assert "nested more than 100 levels deep" in yaml_import(admin, text, 400).json["detail"]


def test_tabs_between_tokens_are_read_as_the_templates_registry_reads_them(admin):
    """YAML allows a tab where a space separates tokens. PyYAML's own scanner refused ``key:<tab>value``, which
    libyaml (the registry's reader) accepts: validate and sync took a file whose import was then a 400."""
    text = JSON_PARAMETER.replace("scope: public", "scope:\tpublic\t# a tab each side").replace(
        "DEFAULT", "[1,\t2]")
    assert yaml_import(admin, text, 201).json["parameters"]["value"]["default"] == [1, 2]


def test_block_style_nests_as_deep_as_flow_style(admin):
    """Indentation and '- ' nest as brackets do (up to 100 levels). PyYAML's composer recursed once per level:
    5,000 levels of them were a RecursionError, and a 500."""
    def nested(levels: int) -> str:  # the default: '- - - x', lists in compact block style
        return JSON_PARAMETER.replace("default: DEFAULT", "default:\n        " + "- " * (levels - 4) + "x")
    default = yaml_import(admin, nested(100), 201).json["parameters"]["value"]["default"]
    for _ in range(96):
        default = default[0]
    assert default == "x"
    refused = yaml_import(admin, nested(101), 400).json["detail"]
    assert "nested more than 100 levels deep" in refused, refused  # with a line only where PyYAML composes
    for deep in ("- " * 5000 + "x\n", "".join(" " * level + "a:\n" for level in range(1000))):
        assert "nest" in yaml_import(admin, deep, 400).json["detail"]  # libyaml stops at 1,000 levels itself


def test_an_alias_bomb_is_400(admin):
    bomb = "".join(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
    text = JSON_PARAMETER.replace("DEFAULT", "*a8").replace("specific:", f"x-anchors:\n  a0: &a0 lol\n{bomb}specific:")
    assert "aliases are expanded" in yaml_import(admin, text, 400).json["detail"]


def test_a_document_of_exactly_as_many_values_as_the_limit_is_accepted(admin):
    """At most 200,000 values once the aliases are expanded. The document around the default holds 15 (itself,
    name, version, ..., the default's list); the default: 1,980 lists of 101 values (one anchored, 1,979 aliases
    of it), then the rest as plain nulls."""
    def values(total: int) -> str:
        block = "&a [" + ", ".join(["null"] * 100) + "]"
        rest = total - 15 - 1980 * 101
        return JSON_PARAMETER.replace("DEFAULT", "[" + ", ".join([block] + ["*a"] * 1979 + ["null"] * rest) + "]")
    yaml_import(admin, values(200_000), 201)
    assert "more than 200000 values" in yaml_import(admin, values(200_001), 400).json["detail"]


def test_deep_json_is_400_not_500(admin, alice):
    for path in ("/v1/job-templates/import", "/v1/jobs/list"):
        body = ("[" * 100000 + "]" * 100000).encode()
        assert "nested too deeply" in admin.request("POST", path, body=body, content_type="application/json",
                                                    status=400).json["detail"]


def json_import(admin, value, status: int):
    return admin.request("POST", "/v1/job-templates/import", body=json.dumps(value).encode(),
                         content_type="application/json", status=status)


def test_a_json_import_has_the_limits_of_a_yaml_one(admin):
    """A JSON document 101 to 900 levels deep (Python's parser goes further) was stored, and its YAML export was
    then a RecursionError; a JSON import also held any number of values."""
    def nested(levels: int) -> dict:
        default = []
        parameter = {"types": ["JSON"], "help": "", "default": default}
        for _ in range(levels - 5):  # the document, specific, parameters, the parameter, the default
            default.append([])
            default = default[0]
        return document(PREDICT, name=f"deep-{levels}", specific__parameters={"value": parameter})
    pk = json_import(admin, nested(100), 201).json["pk"]
    admin.get(f"/v1/job-templates/{pk}/export?format=yaml")
    for levels in (101, 600):
        refused = json_import(admin, nested(levels), 400).json["detail"]
        assert refused == "Invalid JSON (body): nested more than 100 levels deep", refused
    values = {"types": ["JSON"], "help": "", "default": [0] * 200_000}
    refused = json_import(admin, document(PREDICT, specific__parameters={"value": values}), 400).json["detail"]
    assert refused == "Invalid JSON (body): more than 200000 values", refused


def test_integers_past_what_python_writes_as_text_are_400(admin):
    """Python reads and writes at most 4,300 digits of an int: more was a 500 (JSON's own message named
    sys.set_int_max_str_digits; in YAML a ValueError, or for a hexadecimal one a failure to store it)."""
    def with_default(default: str) -> str:
        return JSON_PARAMETER.replace("name: values", f"name: n{len(default)}").replace("DEFAULT", default)
    largest = "9" * 4300
    pk = yaml_import(admin, with_default(largest), 201).json["pk"]
    exported = admin.get(f"/v1/job-templates/{pk}/export?format=yaml").text
    assert yaml_import(admin, exported, 200).json["parameters"]["value"]["default"] == int(largest)
    for default in ("1" + "0" * 4300, "0x" + "f" * 4000, "1:" * 3000 + "1"):
        refused = yaml_import(admin, with_default(default), 400).json["detail"]
        assert "an integer of more than 4300 digits" in refused, refused
    body = json.dumps(yaml.safe_load(with_default("0"))).replace('"default": 0', '"default": 1' + "0" * 4300)
    refused = admin.request("POST", "/v1/job-templates/import", body=body.encode(), content_type="application/json",
                            status=400).json["detail"]
    assert refused == "Malformed JSON body: an integer of more than 4300 digits", refused


def test_a_changed_boolean_is_not_taken_for_the_same_document(admin):
    first = yaml_import(admin, JSON_PARAMETER.replace("DEFAULT", "1"), 201)
    yaml_import(admin, JSON_PARAMETER.replace("DEFAULT", "1"), 200)  # identical: a no-op
    yaml_import(admin, JSON_PARAMETER.replace("DEFAULT", "true"), 409)  # True == 1 in Python, not in JSON
    assert first.json["pk"]


def test_numbers_and_strings_past_what_export_can_give_back_are_400(admin):
    admin.post("/v1/job-templates/import", document(TRAIN, version=2**31), status=400)
    # 1,000 characters as sent, 1,001 in canonical form (', ' between arguments).
    long_type = f"Process<Framework<'{'a' * 969}','1'>,JSON>"
    assert len(long_type) == 1000
    refused = admin.post("/v1/job-templates/import", document(PREDICT, specific__job_type=long_type), status=400)
    assert "canonical form" in refused.json["detail"]
    # A default's type too: export wrote it, and the import of the export refused it (longer than a type may be).
    long_type = f"Array<Framework<'{'a' * 976}','1'>>"
    parameter = {"types": ["Array"], "help": "", "default": [], "default_type": long_type}
    refused = admin.post("/v1/job-templates/import", document(PREDICT, specific__parameters={"p": parameter}),
                         status=400).json["detail"]
    assert refused.startswith("specific.parameters.p.default_type: type Array<Framework<") and "canonical" in refused


def test_yaml_export_gives_back_every_line_break(admin):
    text = "one\u0085two\u2028three\rfour"
    pk = admin.post("/v1/job-templates/import", document(PREDICT, description=text), status=201).json["pk"]
    exported = admin.get(f"/v1/job-templates/{pk}/export?format=yaml").text
    assert yaml.safe_load(exported)["description"] == text


def all_values(client, type_text):
    return client.app.get(f"/v1/job-types/get-all-values/{type_text}", headers=client.headers()).json


def test_get_all_values_leaves_out_deleted_records(admin, alice):
    licence = admin.post("/v1/licences/create", {"name": "WTFPL", "url": "http://www.wtfpl.net/"}, status=201).json
    admin.delete(f"/v1/licences/{licence['pk']}")
    admin.delete("/v1/domains/2")
    assert [row["name"] for row in all_values(alice, "Domain")] == ["ic", "is", "sp", "tc"]
    assert all_values(alice, "Domain<'od'>") == []
    assert "WTFPL" not in [row["name"] for row in all_values(alice, "Licence")]


def test_get_all_values_of_a_framework_and_version(alice):
    assert [(row["name"], row["version"]) for row in all_values(alice, "Framework<'tensorflow', '2.15'>")] == [
        ("tensorflow", "2.15")]
    assert all_values(alice, "Framework<'tensorflow', '3.0'>") == []


def test_get_all_values_takes_a_type_whose_literal_holds_a_slash(admin, alice):
    """As upstream's get-all-values/(?P<type_string>.*), the type is the rest of the path: a framework may be named
    "tf/keras", and traversal split its type into two segments (a 400 asking for a type), encoded or not."""
    admin.post("/v1/frameworks/create", {"name": "tf/keras", "version": "2.1"}, status=201)
    for type_text in ("Framework<'tf/keras', '2.1'>", "Framework%3C'tf%2Fkeras'%3E", "Framework<'tf/keras'>/"):
        assert [(row["name"], row["version"]) for row in all_values(alice, type_text)] == [("tf/keras", "2.1")]
    assert all_values(alice, "Framework<'tf/keras', '2.2'>") == []


def test_get_all_values_are_in_pk_order_after_a_change(admin, alice):
    """PostgreSQL stores a changed row anew at the end of its table: the order is the query's, by pk."""
    admin.delete("/v1/domains/1")
    admin.delete("/v1/domains/1/reinstate")
    assert [row["name"] for row in all_values(alice, "Domain")] == ["ic", "od", "is", "sp", "tc"]


def test_a_job_type_named_any_does_not_break_the_type_system(admin, alice):
    """'Any' is every registry's own top type: a row naming it again is no second registration."""
    admin.post("/v1/job-types/create", {"name": "Any", "pkg": "ufdl_pyramid.types", "cls": "AnyType"}, status=201)
    admin.post("/v1/job-templates/import", TRAIN, status=201)
    assert [row["name"] for row in all_values(alice, "Domain<'ic'>")] == ["ic"]


def test_a_job_type_row_the_registry_would_skip_is_refused(admin, alice):
    """Any importable class was taken (201, 200), but the type registry skips a row whose class is no UFDL type
    of that name: the name, an output's type or a server-resident type like Domain, then was an unknown type."""
    types = {row["name"]: row for row in admin.post("/v1/job-types/list").json}
    for body, detail in (({"name": "Text", "pkg": "ufdl_core_types.values", "cls": "String"},
                          "'String' in package 'ufdl_core_types.values' is the UFDL type 'str', not 'Text'"),
                         ({"name": "Dict", "pkg": "collections", "cls": "OrderedDict"},
                          "'OrderedDict' in package 'collections' is not a UFDL type")):
        assert admin.post("/v1/job-types/create", body, status=400).json == {"detail": detail}
    for name, change, detail in (
            ("Domain", {"cls": "Framework"}, "'Framework' in package 'ufdl_core_types.records' is the UFDL type "
                                             "'Framework', not 'Domain'"),
            ("Model", {"name": "Model2"}, "'Model' in package 'ufdl_core_types.records' is the UFDL type 'Model', "
                                          "not 'Model2'")):
        refused = admin.patch(f"/v1/job-types/{types[name]['pk']}", change, status=400).json
        assert refused == {"detail": detail}
    assert admin.post("/v1/job-types/list").json == list(types.values())
    assert [row["name"] for row in all_values(alice, "Domain")] == ["ic", "od", "is", "sp", "tc"]
    admin.post("/v1/job-templates/import", TRAIN, status=201)  # it names Model, which still resolves


def test_a_job_type_whose_plugin_is_gone_leaves_the_other_types_working(engine, admin, alice, caplog):
    from ufdl_pyramid.models import JobType

    # What an uninstalled plugin leaves behind: a row whose module no longer imports.
    with engine.begin() as connection:
        connection.execute(JobType.__table__.insert().values(name="Gone", pkg="ufdl_uninstalled_plugin",
                                                             cls="Gone"))
    admin.post("/v1/job-templates/import", TRAIN, status=201)
    assert [row["name"] for row in all_values(alice, "Domain<'ic'>")] == ["ic"]
    assert "job type Gone cannot be loaded" in caplog.text


def test_a_type_whose_bound_names_a_deleted_type_is_unknown_not_a_500(admin, alice):
    """Domain, used by no template, may be deleted; Dataset, Model, Train and Predict are bounded by it, and any of
    them given arguments was a 500 (the bound did not resolve). Dataset deleted, Train's input did not resolve."""
    types = {row["name"]: row["pk"] for row in admin.post("/v1/job-types/list").json}
    admin.delete(f"/v1/job-types/{types['Dataset']}")
    refused = admin.post("/v1/job-templates/import", TRAIN, status=400).json["detail"]
    assert refused.startswith("specific.job_type: the inputs and outputs of 'Train<") and "'Dataset'" in refused
    admin.delete(f"/v1/job-types/{types['Domain']}")
    parameter = {"types": ["Array<Model<Any>>"], "help": ""}
    refused = admin.post("/v1/job-templates/import", document(PROCESS, specific__parameters={"p": parameter}),
                         status=400).json["detail"]
    assert refused == ("specific.parameters.p.types[0]: Invalid type 'Array<Model<Any>>': the bound 'Domain' of "
                       "parameter 'D' of Model names the unknown type 'Domain' at position 12")
    assert "unknown type 'Domain'" in alice.get("/v1/job-types/get-all-values/Model<Any>", status=400).json["detail"]
    admin.post("/v1/job-templates/import", PROCESS, status=201)  # the other types still work


def test_a_template_naming_a_type_whose_plugin_is_gone_is_a_clear_error_not_a_500(engine, admin, alice):
    """Its questions were 500s, and so was get-all-matching-templates for every contract (one such template among
    the candidates was enough), and the import of a graph of it or a create-job setting its parameter."""
    from ufdl_pyramid.models import JobType

    train = admin.post("/v1/job-templates/import", document(TRAIN, specific__parameters__epochs__types=[
        "int", "Framework"]), status=201).json
    predict = admin.post("/v1/job-templates/import", PREDICT, status=201).json
    process = admin.post("/v1/job-templates/import", PROCESS, status=201).json
    with engine.begin() as connection:  # the plugin providing Framework was uninstalled
        connection.execute(JobType.__table__.update().where(JobType.name == "Framework").values(pkg="ufdl_gone"))
    pk = train["pk"]
    for path in (f"/v1/job-templates/{pk}/get-all-parameters", f"/v1/job-templates/{pk}/get-types"):
        refused = alice.get(path, status=409).json["detail"]
        assert "type 'Framework' is no longer known to the server" in refused, path
    assert alice.get(f"/v1/job-templates/{pk}/get-outputs").json == train["outputs"]
    # The templates naming Framework cannot be run, so are not found; the others still are.
    assert alice.get("/v1/job-templates/get-all-matching-templates/Train").json == []
    assert [row["pk"] for row in alice.get("/v1/job-templates/get-all-matching-templates/Contract").json] == [
        process["pk"]]
    body = {"input_values": {"dataset": {"value": 7, "type": "PK<Dataset<Domain<'ic'>>>"}},
            "parameter_values": {"tag": {"value": "x", "type": "str"}, "epochs": {"value": 3, "type": "int"}}}
    assert "no longer known" in alice.post(f"/v1/job-templates/{pk}/create-job", body, status=409).json["detail"]
    assert "no longer known" in admin.post("/v1/job-templates/import", TRAIN_THEN_PREDICT, status=409).json["detail"]
    assert [row["pk"] for row in admin.post("/v1/job-templates/list").json] == [pk, predict["pk"], process["pk"]]
    assert alice.post("/v1/jobs/list").json == []


def test_a_type_is_known_by_its_own_row_only(engine, admin):
    """Another row naming the same class does not keep a deleted job type a type."""
    from ufdl_pyramid.models import JobType

    types = {row["name"]: row["pk"] for row in admin.post("/v1/job-types/list").json}
    with engine.begin() as connection:  # the API refuses such a row; one written before is skipped
        connection.execute(JobType.__table__.insert().values(name="Training", pkg="ufdl_core_types.contracts",
                                                             cls="Train"))
    admin.delete(f"/v1/job-types/{types['Train']}")
    refused = admin.post("/v1/job-templates/import", TRAIN, status=400)
    assert "unknown type 'Train'" in refused.json["detail"]


def test_a_licence_or_domain_a_template_uses_cannot_be_hard_deleted(admin, train):
    for path, named in ((f"/v1/licences/{train['licence']}", "Licence 'MIT'"), ("/v1/domains/1", "Domain 'ic'")):
        refused = admin.delete(f"{path}/hard", status=409)
        assert refused.json == {"detail": f"{named} is used by 1 job template(s): it cannot be deleted"}
        assert admin.get(path).json["deletion_time"] is None
