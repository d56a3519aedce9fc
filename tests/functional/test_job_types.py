"""The v1 job-types API (seed 000): every action, its permissions, filters, paging and bad input."""
import pytest

from ufdl_pyramid.models import JobType

STR = {"name": "str", "pkg": "ufdl_core_types.values", "cls": "String"}
# cls may be prefixed with pkg
INT = {"name": "int", "pkg": "ufdl_core_types.values", "cls": "ufdl_core_types.values.Integer"}


@pytest.fixture(autouse=True)
def without_plugin_job_types(engine):
    """These tests read the whole table: start from an empty one. The plugins' rows are tested in test_plugins.py
    and put back by the database cleaner after each test."""
    with engine.begin() as connection:
        connection.execute(JobType.__table__.delete())


@pytest.fixture
def job_type(admin):
    return admin.post("/v1/job-types/create", STR, status=201).json


def test_admin_creates_and_retrieves(admin, job_type):
    assert job_type == {"pk": job_type["pk"], **STR}
    assert admin.get(f"/v1/job-types/{job_type['pk']}").json == job_type


def test_create_answers_201_with_location(admin):
    response = admin.post("/v1/job-types/create", INT, status=201)
    assert response.headers["Location"].endswith(f"/v1/job-types/{response.json['pk']}")


def test_anonymous_is_401_everywhere(anonymous, job_type):
    pk = job_type["pk"]
    anonymous.post("/v1/job-types/list", status=401)
    anonymous.post("/v1/job-types/create", STR, status=401)
    anonymous.get(f"/v1/job-types/{pk}", status=401)
    anonymous.put(f"/v1/job-types/{pk}", STR, status=401)
    anonymous.patch(f"/v1/job-types/{pk}", {"name": "x"}, status=401)
    anonymous.delete(f"/v1/job-types/{pk}", status=401)
    anonymous.get("/v1/job-types/get-all-values/Domain", status=401)
    # Whether a record exists is not told without credentials either.
    for path in ("/v1/job-types/99999", "/v1/jobs/99999", "/v1/nodes/99999", "/v1/job-templates/99999",
                 "/v1/job-outputs/abc", "/v1/jobs/99999/outputs/x/BLOB"):
        refused = anonymous.get(path, status=401)
        assert refused.json == {"detail": "Authentication credentials were not provided."}
        assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.get("/v1/jobs/99999", headers={"Authorization": "Bearer nope"}, status=401).json == {
        "detail": "Token is invalid"}


def test_users_read_but_do_not_write(alice, job_type):
    pk = job_type["pk"]
    assert alice.post("/v1/job-types/list").json == [job_type]
    assert alice.get(f"/v1/job-types/{pk}").json == job_type
    for call in (lambda: alice.post("/v1/job-types/create", INT, status=403),
                 lambda: alice.put(f"/v1/job-types/{pk}", INT, status=403),
                 lambda: alice.patch(f"/v1/job-types/{pk}", {"name": "s"}, status=403),
                 lambda: alice.delete(f"/v1/job-types/{pk}", status=403)):
        assert call().json == {"detail": "You do not have permission to perform this action."}
    assert alice.get(f"/v1/job-types/{pk}").json == job_type


def test_update_and_partial_update(admin, job_type):
    pk = job_type["pk"]
    assert admin.put(f"/v1/job-types/{pk}", INT).json == {"pk": pk, **INT}
    assert admin.patch(f"/v1/job-types/{pk}", {"cls": "Integer"}).json == {"pk": pk, **INT, "cls": "Integer"}
    # PUT needs every field; PATCH takes any of them, none included (it then changes nothing).
    assert "pkg" in admin.put(f"/v1/job-types/{pk}", {"name": "x", "cls": "str"}, status=400).json["detail"]
    assert admin.patch(f"/v1/job-types/{pk}", {}).json == {"pk": pk, **INT, "cls": "Integer"}


def test_a_row_that_would_be_no_type_is_400(admin, alice, job_type):
    """Any importable class was taken, but the type registry skips a row whose class is no UFDL type of that
    name: the name then resolved to no type. The API refuses what the registry would skip."""
    pk = job_type["pk"]
    for body, detail in (
            ({"name": "Text", "pkg": "ufdl_core_types.values", "cls": "String"},
             "'String' in package 'ufdl_core_types.values' is the UFDL type 'str', not 'Text'"),
            ({"name": "Dict", "pkg": "collections", "cls": "OrderedDict"},
             "'OrderedDict' in package 'collections' is not a UFDL type"),
            ({"name": "UFDLType", "pkg": "ufdl_pyramid.types", "cls": "UFDLType"},  # the base: no name, no type
             "'UFDLType' in package 'ufdl_pyramid.types' is not a UFDL type")):
        assert admin.post("/v1/job-types/create", body, status=400).json == {"detail": detail}
        assert admin.put(f"/v1/job-types/{pk}", body, status=400).json == {"detail": detail}
    for change, detail in (({"cls": "Integer"}, "'Integer' in package 'ufdl_core_types.values' is the UFDL type "
                                               "'int', not 'str'"),
                           ({"name": "str2"}, "'String' in package 'ufdl_core_types.values' is the UFDL type 'str', "
                                              "not 'str2'"),
                           ({"pkg": "builtins", "cls": "str"}, "'str' in package 'builtins' is not a UFDL type")):
        assert admin.patch(f"/v1/job-types/{pk}", change, status=400).json == {"detail": detail}
    assert alice.post("/v1/job-types/list").json == [job_type]
    # Renamed and re-pointed together, the row names a type again.
    assert admin.patch(f"/v1/job-types/{pk}", INT).json == {"pk": pk, **INT}


def test_destroy(admin, job_type):
    pk = job_type["pk"]
    assert admin.delete(f"/v1/job-types/{pk}").json == job_type
    admin.get(f"/v1/job-types/{pk}", status=404)


def test_a_class_that_cannot_be_imported_is_400_naming_it(admin, job_type):
    detail = admin.post("/v1/job-types/create", {**STR, "name": "x", "pkg": "no_such_package"}, status=400)
    assert "Cannot import package 'no_such_package'" in detail.json["detail"]
    detail = admin.post("/v1/job-types/create", {**STR, "name": "x", "cls": "NoSuchClass"}, status=400)
    assert "has no attribute 'NoSuchClass'" in detail.json["detail"]
    detail = admin.post("/v1/job-types/create", {"name": "x", "pkg": "os", "cls": "sep"}, status=400)
    assert "is not a class" in detail.json["detail"]
    detail = admin.patch(f"/v1/job-types/{job_type['pk']}", {"cls": "../../etc"}, status=400)
    assert "not a dotted Python name" in detail.json["detail"]


def test_bad_bodies_are_400(admin):
    for body, needle in (({"name": "x"}, "pkg"), ({**STR, "extra": 1}, "extra"), ({**STR, "name": 5}, "name"),
                         ([STR], "object"), ({**STR, "name": "has space"}, "name"),
                         ({**STR, "name": "newline\n"}, "name")):  # "$" matched before a final newline
        assert needle in admin.post("/v1/job-types/create", body, status=400).json["detail"]


def test_malformed_json_is_400(admin):
    response = admin.request("POST", "/v1/job-types/create", body=b"{not json", content_type="application/json",
                             status=400)
    assert response.json["detail"].startswith("Malformed JSON body")


def test_a_json_key_given_twice_is_400_naming_it_at_any_depth(admin):
    """Python's parser kept the last value without a word; YAML bodies already refused a repeated key."""
    for path, body, key in (
            ("/v1/job-types/create", b'{"name": "first", "pkg": "p", "cls": "p.C", "name": "second"}', "name"),
            ("/v1/job-types/list", b'{"expressions": [{"type": "exact", "field": "name", "value": "a", '
                                   b'"value": "b"}]}', "value")):
        response = admin.request("POST", path, body=body, content_type="application/json", status=400)
        assert response.json["detail"] == f"Malformed JSON body: the key '{key}' is given twice in one object"
    assert admin.post("/v1/job-types/list", {"expressions": [{"type": "exact", "field": "name", "value": "a"}]}
                      ).json == []


def test_duplicate_name_is_409(admin, job_type):
    response = admin.post("/v1/job-types/create", STR, status=409)
    assert response.json == {"detail": "A job type with name 'str' already exists"}
    other = admin.post("/v1/job-types/create", INT, status=201).json
    admin.patch(f"/v1/job-types/{other['pk']}", STR, status=409)


def test_unknown_and_malformed_pks_are_404(admin):
    for path in ("/v1/job-types/999", "/v1/job-types/abc", "/v1/job-types/-1", "/v1/job-types/0",
                 "/v1/job-types/99999999999999999999999", "/v1/job-types/2147483648",
                 "/v1/job-types/9223372036854775807"):  # past PostgreSQL's INTEGER ids: no row, and no SQL error
        assert admin.get(path, status=404).json == {"detail": "Not found."}


def test_wrong_method_is_405(admin, job_type):
    admin.get("/v1/job-types/list", status=405)
    admin.delete("/v1/job-types/create", status=405)
    refused = admin.post(f"/v1/job-types/{job_type['pk']}", status=405)
    assert refused.json == {"detail": 'Method "POST" not allowed.'}
    # The methods the path does answer (RFC 9110 requires the header).
    assert refused.headers["Allow"] == "DELETE, GET, HEAD, PATCH, PUT"
    assert admin.get("/v1/job-types/list", status=405).headers["Allow"] == "POST"


def test_body_too_large_is_413(admin):
    huge = {"name": "x" * (2 << 20), "pkg": "builtins", "cls": "str"}
    response = admin.post("/v1/job-types/create", huge, status=413)
    assert "larger than the limit" in response.json["detail"]


def test_get_all_values_is_400_until_the_type_system_exists(alice):
    response = alice.get("/v1/job-types/get-all-values/Domain", status=400)
    assert "Domain" in response.json["detail"]


@pytest.fixture
def many(engine):
    """The primary keys of five job types, by name: rows written as they are (the API takes UFDL types only), to
    list them."""
    rows = (("a_str", "builtins", "str"), ("b_int", "builtins", "int"), ("c_dict", "collections", "OrderedDict"),
            ("d_counter", "collections", "Counter"), ("E_deque", "collections", "deque"))
    with engine.begin() as connection:
        return {name: connection.execute(JobType.__table__.insert().values(name=name, pkg=pkg, cls=cls)
                                         .returning(JobType.id)).scalar_one()
                for name, pkg, cls in rows}


def names(response):
    return [row["name"] for row in response.json]


def test_list_filters(alice, many):
    def listed(*expressions, **extra):
        return names(alice.post("/v1/job-types/list", {"expressions": list(expressions), **extra}))

    assert listed({"type": "exact", "field": "pkg", "value": "builtins"}) == ["a_str", "b_int"]
    assert listed({"type": "exact", "field": "pkg", "value": "builtins", "invert": True}) == [
        "c_dict", "d_counter", "E_deque"]
    assert listed({"type": "exact", "field": "name", "value": "e_DEQUE", "case_insensitive": True}) == ["E_deque"]
    assert listed({"type": "contains", "field": "name", "sub_string": "_d"}) == ["c_dict", "E_deque"]
    # Case-sensitive unless asked otherwise, on SQLite as on PostgreSQL.
    assert listed({"type": "contains", "field": "name", "sub_string": "E"}) == ["E_deque"]
    assert listed({"type": "contains", "field": "name", "sub_string": "E", "case_insensitive": True}) == [
        "d_counter", "E_deque"]
    assert listed({"type": "contains", "field": "name", "sub_string": "%"}) == []
    assert listed({"type": "isnull", "field": "cls"}) == []
    assert listed({"type": "compare", "field": "name", "operator": ">=", "value": "c"}) == ["c_dict", "d_counter"]
    assert listed({"type": "or", "sub_expressions": [{"type": "exact", "field": "cls", "value": "int"},
                                                     {"type": "exact", "field": "cls", "value": "deque"}]}) == [
        "b_int", "E_deque"]
    assert listed({"type": "and", "sub_expressions": [{"type": "exact", "field": "pkg", "value": "collections"},
                                                      {"type": "contains", "field": "cls", "sub_string": "ou"}]},
                  {"type": "compare", "field": "pk", "operator": "<", "value": many["E_deque"]}) == ["d_counter"]


def test_list_order_by(alice, many):
    body = {"order_by": [{"field": "pkg", "ascending": False}, {"field": "name"}]}
    assert names(alice.post("/v1/job-types/list", body)) == ["E_deque", "c_dict", "d_counter", "a_str", "b_int"]


def test_list_paging_in_body_and_query(alice, many):
    first = alice.post("/v1/job-types/list", {"page": 1, "page_size": 2})
    assert names(first) == ["a_str", "b_int"]
    assert first.headers["X-Total-Count"] == "5"
    assert 'page=2&page_size=2>; rel="next"' in first.headers["Link"]
    assert 'page=3&page_size=2>; rel="last"' in first.headers["Link"]
    third = alice.post("/v1/job-types/list?page=3&page_size=2")
    assert names(third) == ["E_deque"] and "rel=\"next\"" not in third.headers["Link"]
    assert alice.post("/v1/job-types/list", {"page": 4, "page_size": 2}, status=404).json == {
        "detail": "Invalid page."}
    unpaged = alice.post("/v1/job-types/list")
    assert len(unpaged.json) == 5 and unpaged.headers["X-Total-Count"] == "5" and "Link" not in unpaged.headers
    # A page without a size has pages of 100; a size is at most ufdl.max_page_size (1000 by default).
    default = alice.post("/v1/job-types/list", {"page": 1})
    assert len(default.json) == 5 and 'page=1&page_size=100>; rel="last"' in default.headers["Link"]
    assert len(alice.post("/v1/job-types/list", {"page": 1, "page_size": 1000}).json) == 5
    refused = alice.post("/v1/job-types/list", {"page": 1, "page_size": 1001}, status=400).json
    assert refused == {"detail": "page_size must be at most 1000"}


def test_list_bad_filters_are_400(alice, many):
    bad = [
        {"expressions": [{"type": "exact", "field": "nope", "value": 1}]},
        {"expressions": [{"type": "exact", "field": "pk", "value": "one"}]},
        {"expressions": [{"type": "exact", "field": "pk", "value": True}]},
        {"expressions": [{"type": "contains", "field": "pk", "sub_string": "1"}]},
        {"expressions": [{"type": "compare", "field": "name", "operator": "!=", "value": "a"}]},
        {"expressions": [{"type": "regex", "field": "name"}]},
        {"expressions": [{"type": "exact", "field": "name", "value": "a", "bogus": 1}]},
        {"expressions": [{"type": "and", "sub_expressions": "x"}]},
        {"order_by": [{"field": "nope"}]},
        {"unknown": 1},
        {"page": 0},
        {"page_size": 5000},
        {"expressions": [{"type": "exact", "field": "owner.name", "value": 1}]},
        # Numbers past what the column holds (a 32-bit id on PostgreSQL) would be a database error.
        {"expressions": [{"type": "exact", "field": "pk", "value": 2**31}]},
        {"expressions": [{"type": "compare", "field": "pk", "operator": ">", "value": 10**30}]},
        {"expressions": [{"type": "exact", "field": "pk", "value": 1e300}]},
        [],
    ]
    for body in bad:
        response = alice.post("/v1/job-types/list", body, status=400)
        assert response.json["detail"], body
    for query in ("page=x", "page=%C2%B2", "page=1&page_size=%C2%B9", "page=-1"):  # '²' is a digit to str.isdigit
        alice.post(f"/v1/job-types/list?{query}", status=400)


def test_a_page_past_any_end_is_404(alice, many):
    for body in ({"page": 10**20, "page_size": 2}, {"page": 2**62, "page_size": 1000}):
        assert alice.post("/v1/job-types/list", body, status=404).json == {"detail": "Invalid page."}
    for query in ("page=99999999999999999999999&page_size=1", "page=" + "9" * 5000):
        assert alice.post(f"/v1/job-types/list?{query}", status=404).json == {"detail": "Invalid page."}
    # An empty list has page 1 only (as upstream's paginator): page 2 is past its end too.
    body = {"expressions": [{"type": "exact", "field": "name", "value": "nothing"}], "page_size": 2}
    assert alice.post("/v1/job-types/list", {**body, "page": 1}).json == []
    assert alice.post("/v1/job-types/list", {**body, "page": 2}, status=404).json == {"detail": "Invalid page."}


def test_a_json_body_nested_past_100_levels_is_400_not_500(alice):
    """The README holds every JSON body to 100 levels of lists and objects, as an import: a filter of 200 nested
    'and's parsed, then the schema check recursed past Python's limit and answered 500."""
    def nested_ands(ands: int) -> dict:  # the body, its list of expressions, then two levels for each 'and'
        expression = {"type": "exact", "field": "name", "value": "str"}
        for _ in range(ands):
            expression = {"type": "and", "sub_expressions": [expression]}
        return {"expressions": [expression]}
    assert alice.post("/v1/job-types/list", nested_ands(48)).json == []  # 99 levels
    for ands in (49, 200):
        refused = alice.post("/v1/job-types/list", nested_ands(ands), status=400).json["detail"]
        assert refused == "Invalid JSON (body): nested more than 100 levels deep", refused


def test_a_path_that_is_not_utf8_is_400(admin):
    for method in ("GET", "POST"):
        response = admin.request(method, "/v1/jobs/%FF/outputs/x/BLOB", status=400)
        assert "not valid UTF-8" in response.json["detail"]


def test_numbers_json_cannot_hold_are_400(admin, many):
    for number in (b"1e400", b"-1e400", b"NaN", b"Infinity"):
        body = b'{"expressions": [{"type": "exact", "field": "pk", "value": ' + number + b"}]}"
        response = admin.request("POST", "/v1/job-types/list", body=body, content_type="application/json",
                                 status=400)
        assert response.json["detail"].startswith("Malformed JSON body")


def test_the_total_counts_what_the_filter_matches(alice, many):
    body = {"expressions": [{"type": "exact", "field": "pkg", "value": "collections"}], "page": 1, "page_size": 2}
    response = alice.post("/v1/job-types/list", body)
    assert names(response) == ["c_dict", "d_counter"]
    assert response.headers["X-Total-Count"] == "3"
    assert 'page=2&page_size=2>; rel="last"' in response.headers["Link"]


def test_an_empty_page_links_to_page_one_as_the_last(alice, many):
    body = {"expressions": [{"type": "exact", "field": "name", "value": "nothing"}], "page": 1, "page_size": 2}
    response = alice.post("/v1/job-types/list", body)
    assert response.json == [] and response.headers["X-Total-Count"] == "0"
    assert 'page=1&page_size=2>; rel="last"' in response.headers["Link"]
    assert 'rel="next"' not in response.headers["Link"]


def test_a_value_of_the_wrong_kind_for_its_field_is_400(alice, many):
    """A fraction is no primary key (it matched the one it rounds to), and a number is no name (PostgreSQL
    refuses to compare a text column with a number)."""
    for field, value, detail in (("pk", many["b_int"] + 0.5, f"Field 'pk' is an integer: {many['b_int'] + 0.5!r} "
                                                             "is not one"),
                                 ("name", 5, "Field 'name' is a string: 5 is not one")):
        body = {"expressions": [{"type": "exact", "field": field, "value": value}]}
        assert alice.post("/v1/job-types/list", body, status=400).json == {"detail": detail}
    body = {"expressions": [{"type": "compare", "field": "name", "operator": "<", "value": 5}]}
    alice.post("/v1/job-types/list", body, status=400)


def test_rows_are_listed_by_pk_after_one_changed(engine, alice, many):
    """PostgreSQL stores a changed row anew at the end of its table: only the final order by pk keeps the list
    (and its pages) in pk order."""
    with engine.begin() as connection:
        connection.execute(JobType.__table__.update().where(JobType.id == many["a_str"]).values(cls="bytes"))
    assert [row["pk"] for row in alice.post("/v1/job-types/list").json] == sorted(many.values())
    body = {"order_by": [{"field": "pkg"}]}
    assert names(alice.post("/v1/job-types/list", body)) == ["a_str", "b_int", "c_dict", "d_counter", "E_deque"]


def test_every_problem_of_a_body_is_named(admin):
    detail = admin.post("/v1/job-types/create", {"name": 5, "pkg": 6, "cls": "str"}, status=400).json["detail"]
    assert detail == "name: 5 is not of type 'string'; pkg: 6 is not of type 'string'"


def test_get_all_values_takes_one_type(alice):
    for path in ("/v1/job-types/get-all-values", "/v1/job-types/get-all-values/"):
        assert alice.get(path, status=400).json == {"detail": "Give the type: /v1/job-types/get-all-values/{TYPE}"}
    # The rest of the path is the type (its literals may hold a '/'): two types are no type.
    assert "Invalid type 'Domain/Licence'" in alice.get("/v1/job-types/get-all-values/Domain/Licence",
                                                         status=400).json["detail"]


def test_case_insensitive_applies_to_text_only(alice, many):
    body = {"expressions": [{"type": "exact", "field": "pk", "value": many["b_int"], "case_insensitive": True}]}
    assert names(alice.post("/v1/job-types/list", body)) == ["b_int"]


def test_a_page_size_alone_asks_for_the_first_page(alice, many):
    response = alice.post("/v1/job-types/list", {"page_size": 2})
    assert names(response) == ["a_str", "b_int"]
    assert 'page=2&page_size=2>; rel="next"' in response.headers["Link"]
    assert names(alice.post("/v1/job-types/list?page_size=4")) == ["a_str", "b_int", "c_dict", "d_counter"]


def test_a_dotted_name_followed_by_anything_else_is_not_one(admin):
    for body, label, value in ((INT | {"cls": "Integer; x"}, "cls", "Integer; x"),
                               (INT | {"pkg": "ufdl_core_types\n"}, "pkg", "ufdl_core_types\n")):
        refused = admin.post("/v1/job-types/create", body, status=400).json
        assert refused == {"detail": f"{label} {value!r} is not a dotted Python name"}
