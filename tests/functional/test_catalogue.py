"""Licences and domains: seeded, read by users, managed by admins, soft-deleted and reinstated."""
import json

from job_helpers import ECHO


def test_seeded_domains_and_licences(alice):
    domains = {row["name"]: row["description"] for row in alice.post("/v1/domains/list").json}
    assert domains == {"ic": "Image Classification", "od": "Object Detection", "is": "Image Segmentation",
                       "sp": "Speech", "tc": "Text Classification"}
    licences = [row["name"] for row in alice.post("/v1/licences/list").json]
    assert "Apache-2.0" in licences and "MIT" in licences


def test_users_cannot_change_the_catalogue(alice):
    alice.post("/v1/licences/create", {"name": "WTFPL", "url": ""}, status=403)
    alice.delete("/v1/domains/1", status=403)
    alice.delete("/v1/domains/1/hard", status=403)
    alice.delete("/v1/domains/1/reinstate", status=403)


def test_soft_delete_hides_from_lists_until_reinstated(admin, alice):
    licence = admin.post("/v1/licences/create", {"name": "WTFPL", "url": "http://www.wtfpl.net/"}, status=201).json
    assert licence["creator"] == admin.user_id and licence["deletion_time"] is None
    pk = licence["pk"]
    deleted = admin.delete(f"/v1/licences/{pk}").json
    assert deleted["deletion_time"] is not None

    def listed(**body):
        return [row["name"] for row in alice.post("/v1/licences/list", body).json]

    assert "WTFPL" not in listed()
    assert "WTFPL" in listed(include_inactive=True)
    # Still retrievable by pk, showing when it was deleted (so that it can be reinstated).
    assert alice.get(f"/v1/licences/{pk}").json["deletion_time"] == deleted["deletion_time"]
    assert admin.delete(f"/v1/licences/{pk}/reinstate").json["deletion_time"] is None
    assert "WTFPL" in listed()


def test_filter_on_deletion_time(admin, alice):
    admin.delete("/v1/domains/2")
    body = {"include_inactive": True, "expressions": [{"type": "isnull", "field": "deletion_time", "invert": True}]}
    assert [row["name"] for row in alice.post("/v1/domains/list", body).json] == ["od"]
    body = {"include_inactive": True, "expressions": [
        {"type": "compare", "field": "deletion_time", "operator": ">", "value": "2000-01-01T00:00:00Z"}]}
    assert [row["name"] for row in alice.post("/v1/domains/list", body).json] == ["od"]
    body["expressions"][0]["value"] = "yesterday"
    alice.post("/v1/domains/list", body, status=400)


def test_hard_delete(admin):
    domain = admin.post("/v1/domains/create", {"name": "xx", "description": "Example"}, status=201).json
    assert admin.delete(f"/v1/domains/{domain['pk']}/hard").json["name"] == "xx"
    admin.get(f"/v1/domains/{domain['pk']}", status=404)


def test_job_types_have_no_soft_delete_actions(admin):
    any_type = {"name": "Any", "pkg": "ufdl_pyramid.types", "cls": "AnyType"}
    pk = admin.post("/v1/job-types/create", any_type, status=201).json["pk"]
    admin.delete(f"/v1/job-types/{pk}/reinstate", status=404)
    admin.delete(f"/v1/job-types/{pk}/hard", status=404)


def test_duplicate_domain_is_409_and_bad_code_is_400(admin):
    admin.post("/v1/domains/create", {"name": "ic", "description": "again"}, status=409)
    refused = admin.post("/v1/domains/create", {"name": "Image", "description": "too long"}, status=400).json
    assert refused == {"detail": "name: 'Image' must be two lower-case letters"}


def test_a_timestamp_without_a_time_zone_is_400(alice):
    body = {"include_inactive": True, "expressions": [
        {"type": "compare", "field": "deletion_time", "operator": ">", "value": "2000-01-01T00:00:00"}]}
    response = alice.post("/v1/domains/list", body, status=400)
    assert response.json == {"detail": "Field 'deletion_time' is a timestamp: give '2000-01-01T00:00:00' a time "
                                       "zone (e.g. Z)"}


def test_a_contains_filter_longer_than_a_like_pattern_may_be_is_400(alice):
    """SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too complex"): a 500 on SQLite alone."""
    def contains(text):
        return {"expressions": [{"type": "contains", "field": "description", "sub_string": text,
                                 "case_insensitive": True}]}

    refused = alice.post("/v1/domains/list", contains("x" * 10_001), status=400).json["detail"]
    assert refused.startswith("expressions[0].sub_string: 'xxx") and "is too long" in refused
    # At the limit, in characters of four UTF-8 bytes each, it is a filter like any other.
    assert alice.post("/v1/domains/list", contains("\U0001F600" * 10_000)).json == []


def test_case_insensitive_filters_fold_every_letter_on_sqlite_as_on_postgresql(admin, alice):
    """SQLite's own lower() folds ASCII letters only: "Élan" did not match "élan"."""
    pk = admin.post("/v1/domains/create", {"name": "el", "description": "Élan ÜBER Straße"}, status=201).json["pk"]

    def listed(expression):
        return [row["pk"] for row in alice.post("/v1/domains/list", {"expressions": [
            {**expression, "field": "description", "case_insensitive": True}]}).json]

    for text in ("élan", "über", "ÉLAN ü", "straße"):
        assert listed({"type": "contains", "sub_string": text}) == [pk], text
    assert listed({"type": "exact", "value": "élan über straße"}) == [pk]
    assert listed({"type": "contains", "sub_string": "elan"}) == []  # folded, not stripped of accents


def test_order_by_puts_nulls_first_or_last_as_asked(admin, alice):
    admin.delete("/v1/domains/2")

    def ordered(nulls_first):
        body = {"include_inactive": True, "order_by": [{"field": "deletion_time", "nulls_first": nulls_first}]}
        return [row["name"] for row in alice.post("/v1/domains/list", body).json]

    assert ordered(True) == ["ic", "is", "sp", "tc", "od"]
    assert ordered(False) == ["od", "ic", "is", "sp", "tc"]


def test_order_by_sorts_nulls_above_every_value_unless_asked(admin, alice):
    """As PostgreSQL (upstream's database) does, on SQLite too, which sorted them below: one order everywhere."""
    admin.delete("/v1/domains/2")

    def ordered(ascending):
        body = {"include_inactive": True, "order_by": [{"field": "deletion_time", "ascending": ascending}]}
        return [row["name"] for row in alice.post("/v1/domains/list", body).json]

    assert ordered(True) == ["od", "ic", "is", "sp", "tc"]
    assert ordered(False) == ["ic", "is", "sp", "tc", "od"]


def test_a_domain_name_is_exactly_two_letters(admin):
    for name in ("icx", "i", "i1", "ic\n"):  # "$" matched before a final newline
        assert "name" in admin.post("/v1/domains/create", {"name": name, "description": "x"}, status=400).json[
            "detail"]


def test_fields_past_their_limits_are_400(admin):
    """Empty names, and texts longer than their columns hold (PostgreSQL would refuse them)."""
    admin.post("/v1/licences/create", {"name": "", "url": ""}, status=400)
    admin.post("/v1/licences/create", {"name": "Long", "url": "http://x/" + "u" * 192}, status=400)
    admin.post("/v1/domains/create", {"name": "xx", "description": "d" * 101}, status=400)
    # At the limits, they are taken.
    admin.post("/v1/licences/create", {"name": "Long", "url": "http://x/" + "u" * 191}, status=201)
    admin.post("/v1/domains/create", {"name": "xx", "description": "d" * 100}, status=201)


def test_a_licence_url_must_be_an_absolute_http_or_https_url(admin):
    """Anything was stored before, an empty url too (upstream's URLField refuses blank)."""
    licence = admin.post("/v1/licences/create", {"name": "WTFPL", "url": "HTTPS://www.wtfpl.net/about"},
                         status=201).json
    for url in ("", "www.wtfpl.net", "ftp://www.wtfpl.net/", "javascript:alert(1)", "http://", "http:///about",
                "http://www.wtfpl.net:http/", "http://www.wtf pl.net/", "/about", "http://[::1"):
        refused = admin.post("/v1/licences/create", {"name": "Other", "url": url}, status=400).json
        assert refused == {"detail": f"url must be an absolute http or https URL, not {url!r}"}
        admin.patch(f"/v1/licences/{licence['pk']}", {"url": url}, status=400)
        admin.put(f"/v1/licences/{licence['pk']}", {"name": "WTFPL", "url": url}, status=400)
    assert admin.get(f"/v1/licences/{licence['pk']}").json["url"] == "HTTPS://www.wtfpl.net/about"
    assert admin.patch(f"/v1/licences/{licence['pk']}", {"url": "http://[::1]:8080/wtfpl"}).json["url"] == \
        "http://[::1]:8080/wtfpl"
    assert admin.patch(f"/v1/licences/{licence['pk']}", {"name": "WTFPL-2"}).json["name"] == "WTFPL-2"


def test_frameworks_are_unique_by_name_and_version(admin):
    frameworks = {(row["name"], row["version"]): row["pk"] for row in admin.post("/v1/frameworks/list").json}
    assert admin.post("/v1/frameworks/create", {"name": "tensorflow", "version": "2.16"}, status=201)
    refused = admin.post("/v1/frameworks/create", {"name": "tensorflow", "version": "2.15"}, status=409).json
    assert refused == {"detail": "A framework with name 'tensorflow' and version '2.15' already exists"}
    # A PATCH of one of the two is checked together with the other as stored.
    pytorch = frameworks[("pytorch", "2.1")]
    assert admin.patch(f"/v1/frameworks/{pytorch}", {"version": "1.14"}).json["version"] == "1.14"
    refused = admin.patch(f"/v1/frameworks/{frameworks[('tensorflow', '1.14')]}", {"version": "2.15"}, status=409)
    assert refused.json == {"detail": "A framework with name 'tensorflow' and version '2.15' already exists"}


def test_every_field_is_required_and_not_empty(admin):
    """PUT takes every field of a record: a licence without its url is 400, like a domain without a description;
    and no required text may be empty."""
    licence = admin.post("/v1/licences/create", {"name": "WTFPL", "url": "http://www.wtfpl.net/"}, status=201).json
    assert "url" in admin.put(f"/v1/licences/{licence['pk']}", {"name": "WTFPL"}, status=400).json["detail"]
    assert "url" in admin.post("/v1/licences/create", {"name": "Other"}, status=400).json["detail"]
    assert "description" in admin.post("/v1/domains/create", {"name": "xx", "description": ""},
                                       status=400).json["detail"]
    assert "version" in admin.post("/v1/frameworks/create", {"name": "jax", "version": ""}, status=400).json[
        "detail"]


# Templates name their licence and domain (design notes §3: immutable once they have jobs; export gives what
# import takes): renaming or deleting them changed every template naming them.

def echo_with_a_job(admin, alice) -> tuple[dict, str]:
    template = admin.post("/v1/job-templates/import", {**ECHO, "domain": "ic"}, status=201).json
    alice.post(f"/v1/job-templates/{template['pk']}/create-job",
               {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201)
    return template, admin.get(f"/v1/job-templates/{template['pk']}/export").text


def test_a_licence_or_domain_that_templates_use_cannot_be_renamed_or_deleted(admin, alice):
    """Renaming MIT answered 200 and the template then exported a licence that import refused (400); renaming or
    soft-deleting its domain changed the template's domain likewise."""
    template, exported = echo_with_a_job(admin, alice)
    licence, domain = f"/v1/licences/{template['licence']}", "/v1/domains/1"  # its domain: ic
    for path, named, body in ((licence, "Licence 'MIT'", {"name": "MIT-renamed"}),
                              (domain, "Domain 'ic'", {"name": "zz"})):
        before = admin.get(path).json
        refused = admin.patch(path, body, status=409).json
        assert refused == {"detail": f"{named} is used by 1 job template(s): it cannot be renamed"}
        admin.put(path, {**{key: before[key] for key in ("name", "url", "description") if key in before},
                         **body}, status=409)
        for deletion in (path, f"{path}/hard"):
            refused = admin.delete(deletion, status=409).json
            assert refused == {"detail": f"{named} is used by 1 job template(s): it cannot be deleted"}
        assert admin.get(path).json == before
    # The other fields stay editable, and the name may be given unchanged.
    assert admin.patch(licence, {"name": "MIT", "url": "https://mit-license.org/"}).json["url"] == (
        "https://mit-license.org/")
    assert admin.patch(domain, {"description": "Pictures"}).json["description"] == "Pictures"
    assert admin.get(f"/v1/job-templates/{template['pk']}/export").text == exported
    again = admin.post("/v1/job-templates/import", json.loads(exported), status=200).json
    assert again["pk"] == template["pk"]  # identical: no new version


def test_a_licence_that_only_deleted_templates_use_may_be_deleted_not_renamed(admin, alice):
    """A deleted template may be reinstated: renamed, its licence would change it too. Deleted, the licence must
    be reinstated before the template is."""
    template, exported = echo_with_a_job(admin, alice)
    licence, domain = f"/v1/licences/{template['licence']}", "/v1/domains/1"  # its domain: ic
    admin.delete(f"/v1/job-templates/{template['pk']}")
    refused = admin.patch(licence, {"name": "MIT-renamed"}, status=409).json
    assert refused == {"detail": "Licence 'MIT' is used by 1 job template(s) (1 of them deleted, which may be "
                                 "reinstated): it cannot be renamed"}
    admin.delete(f"{domain}/hard", status=409)  # the template's foreign key needs it
    admin.delete(licence, status=200)
    admin.delete(domain, status=200)
    refused = admin.delete(f"/v1/job-templates/{template['pk']}/reinstate", status=409).json
    assert refused == {"detail": f"Template {template['pk']}'s licence 'MIT' is deleted: reinstate the licence "
                                 "first"}
    admin.delete(f"{licence}/reinstate")
    refused = admin.delete(f"/v1/job-templates/{template['pk']}/reinstate", status=409).json
    assert refused == {"detail": f"Template {template['pk']}'s domain 'ic' is deleted: reinstate the domain first"}
    admin.delete(f"{domain}/reinstate")
    assert admin.delete(f"/v1/job-templates/{template['pk']}/reinstate").json["deletion_time"] is None
    assert admin.get(f"/v1/job-templates/{template['pk']}/export").text == exported


def test_a_licence_or_domain_no_template_uses_may_be_renamed_and_deleted(admin):
    licence = admin.post("/v1/licences/create", {"name": "WTFPL", "url": "http://www.wtfpl.net/"}, status=201).json
    assert admin.patch(f"/v1/licences/{licence['pk']}", {"name": "WTFPL-2"}).json["name"] == "WTFPL-2"
    assert admin.patch("/v1/domains/2", {"name": "ob"}).json["name"] == "ob"
    admin.delete("/v1/domains/2")
    assert admin.delete(f"/v1/licences/{licence['pk']}/hard").json["name"] == "WTFPL-2"
