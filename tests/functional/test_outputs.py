"""Job outputs (seeds 003 and 004): a node adds bytes to the job it runs; everyone signed in reads them."""
import contextlib
import json
import logging
import os
from urllib.parse import quote

import pytest
import webtest
from sqlalchemy import text

from ufdl_pyramid.models import JobType
from ufdl_pyramid.testing import ApiClient, make_test_app
from job_helpers import ECHO, full_stack, register

MODEL = "Model<Domain<'ic'>, Framework<'numpy', '1.26'>>"
DATA = b"\x00model bytes\xff" * 100


def segment(type_text: str) -> str:
    # The UFDL client percent-encodes '<', '>' and ' ' but not quotes and commas.
    return quote(type_text, safe="',")


def out(job, name="model", type_text=MODEL, action=""):
    return f"/v1/jobs/{job['pk']}/outputs/{name}/{segment(type_text)}" + (f"/{action}" if action else "")


@pytest.fixture
def storage(wsgi_app):
    return wsgi_app.registry["ufdl.storage"]


def upload(client, job, data=DATA, name="model", type_text=MODEL, status=201, content_type="application/data"):
    return client.request("POST", out(job, name, type_text), body=data, content_type=content_type, status=status,
                          headers={"Content-Disposition": f"attachment; filename={name}"})


def test_round_trip(worker, bob, running, storage):
    response = upload(worker, running)
    output = response.json
    assert output["job"] == running["pk"] and output["name"] == "model" and output["type"] == MODEL
    assert output["content_type"] == "application/data" and output["size"] == len(DATA)
    assert output["creator"] == worker.user_id and output["deletion_time"] is None
    assert response.headers["Location"].endswith(out(running, action="info"))
    download = bob.get(out(running))
    assert download.body == DATA
    assert download.headers["Content-Type"] == "application/data"
    assert download.headers["Content-Disposition"] == 'attachment; filename="model"'
    assert download.headers["Content-Length"] == str(len(DATA))
    assert download.headers["Accept-Ranges"] == "bytes"
    assert bob.get(out(running, action="info")).json == output
    assert bob.get(f"/v1/jobs/{running['pk']}").json["outputs"] == [
        {"pk": output["pk"], "name": "model", "type": MODEL}]
    # Type strings are compared in their canonical form: the spacing of the URL does not matter.
    assert bob.get(out(running, type_text="Model<Domain<'ic'>,Framework<'numpy','1.26'>>", action="info")).json \
        == output


def test_the_upload_is_recorded_as_an_event(worker, running, engine):
    pk = upload(worker, running).json["pk"]
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT transition, transition_data FROM job_events WHERE job_id = :job "
                                       "AND transition = 'add_output'"), {"job": running["pk"]}).all()
    assert len(rows) == 1
    data = rows[0][1] if isinstance(rows[0][1], dict) else __import__("json").loads(rows[0][1])
    assert data == {"name": "model", "type": MODEL, "pk": pk}


def test_only_the_holding_node_adds_outputs(alice, bob, other_worker, running):
    assert "does not hold" in upload(other_worker, running, status=403).json["detail"]
    assert "Node-Id" in upload(alice, running, status=403).json["detail"]
    assert upload(bob, running, status=403)
    assert bob.post("/v1/job-outputs/list").json == []


def test_not_started_is_417_and_finished_is_406(make_job, worker):
    job = make_job()
    worker.get(f"/v1/jobs/{job['pk']}/acquire")
    assert "not started" in upload(worker, job, status=417).json["detail"]
    worker.post(f"/v1/jobs/{job['pk']}/start", {})
    upload(worker, job)
    worker.post(f"/v1/jobs/{job['pk']}/finish", {})
    assert "COMPLETED" in upload(worker, job, name="other", status=406).json["detail"]


def test_a_duplicate_is_409_but_another_name_or_type_is_fine(worker, running):
    upload(worker, running)
    assert "already has an output" in upload(worker, running, status=409).json["detail"]
    upload(worker, running, name="model.2")
    upload(worker, running, type_text="BLOB")


@pytest.mark.parametrize("name", ["...", "a b", "x" * 201, "%C3%A9t%C3%A9", "a;b", "%00"])
def test_bad_names_are_400(worker, running, name):
    response = worker.request("POST", f"/v1/jobs/{running['pk']}/outputs/{name}/BLOB", body=b"x", status=400)
    assert "output name" in response.json["detail"]
    # Looked up, too: a name no output can have is a bad request, not an unknown output.
    for path in (f"/v1/jobs/{running['pk']}/outputs/{name}/BLOB", f"/v1/jobs/{running['pk']}/outputs/{name}/BLOB/info"):
        assert "output name" in worker.get(path, status=400).json["detail"]


@pytest.mark.parametrize("name", ["..", ".", "a%2Fb", "a%2F..%2F..%2Fb"])
def test_path_tricks_never_reach_the_view(worker, running, name):
    # Traversal resolves '.' and '..' and decodes '%2F' into a separator: such names are no output slot.
    worker.request("POST", f"/v1/jobs/{running['pk']}/outputs/{name}/BLOB", body=b"x", status=404)
    assert worker.post("/v1/job-outputs/list").json == []


@pytest.mark.parametrize("type_text", ["Model<", "Nope", "Model<Domain<'ic'>", "x" * 1001,
                                       # 1,000 characters sent, 1,001 in the canonical form (', ' for ','):
                                       f"Framework<'{'a' * 983}','1'>"])
def test_bad_types_are_400(worker, running, type_text):
    assert "output type" in upload(worker, running, type_text=type_text, status=400).json["detail"]


def test_a_type_holding_a_nul_is_400(worker, bob, running):
    """A NUL in a literal of the TYPE segment was stored on SQLite, and a 500 on PostgreSQL (upload and lookup)."""
    refused = {"detail": "output type: a string holds a character that cannot be stored (NUL, or half of a "
                         "surrogate pair)"}
    assert upload(worker, running, type_text="Domain<'\x00'>", status=400).json == refused
    assert bob.get(out(running, type_text="Domain<'\x00'>"), status=400).json == refused
    assert bob.get("/v1/job-types/get-all-values/Domain%3C'%00'%3E", status=400).json["detail"].startswith("TYPE: ")
    assert bob.post("/v1/job-outputs/list").json == []


def test_no_output_for_a_deleted_job(admin, worker, running):
    admin.delete(f"/v1/jobs/{running['pk']}")  # aborted: the node holds it no more
    assert upload(worker, running, status=403).json["detail"].endswith(f"does not hold job {running['pk']}")


def test_an_overlong_name_is_400(worker, running):
    response = worker.request("POST", f"/v1/jobs/{running['pk']}/outputs/{'x' * 1001}/BLOB", body=b"x", status=400)
    assert "output name" in response.json["detail"]


def test_an_output_path_with_segments_past_it_is_404_and_changes_nothing(worker, bob, admin, running):
    pk = upload(worker, running).json["pk"]
    bob.get(out(running, action="info/x"), status=404)  # was the info
    admin.delete(f"/v1/job-outputs/{pk}/hard/x", status=404)  # deleted it for good
    assert bob.get(f"/v1/job-outputs/{pk}").json["deletion_time"] is None


def test_unknown_outputs_are_404(bob, running):
    assert bob.get(out(running), status=404)
    assert bob.get(out(running, action="info"), status=404)
    assert bob.get("/v1/jobs/9999/outputs/model/BLOB", status=404)


def test_ranges(worker, bob, running):
    upload(worker, running, data=b"0123456789")
    partial = bob.get(out(running), headers={"Range": "bytes=2-5"}, status=206)
    assert partial.body == b"2345" and partial.headers["Content-Range"] == "bytes 2-5/10"
    assert partial.headers["Content-Length"] == "4"
    assert bob.get(out(running), headers={"Range": "bytes=-3"}, status=206).body == b"789"
    assert bob.get(out(running), headers={"Range": "bytes=8-"}, status=206).body == b"89"
    refused = bob.get(out(running), headers={"Range": "bytes=10-"}, status=416)
    assert refused.headers["Content-Range"] == "bytes */10"
    # Several ranges, or a malformed header: the whole body.
    assert bob.get(out(running), headers={"Range": "bytes=0-1,3-4"}, status=200).body == b"0123456789"


def test_range_positions_of_thousands_of_digits(worker, bob, running):
    """int() refuses over 4,300 digits: such a position in a Range header was a 500."""
    upload(worker, running, data=b"0123456789")
    huge = "9" * 5000
    assert bob.get(out(running), headers={"Range": f"bytes={huge}-"}, status=416).headers["Content-Range"] \
        == "bytes */10"
    assert bob.get(out(running), headers={"Range": f"bytes=8-{huge}"}, status=206).body == b"89"
    assert bob.get(out(running), headers={"Range": f"bytes=-{huge}"}, status=206).body == b"0123456789"
    assert bob.get(out(running), headers={"Range": f"bytes={'0' * 5000}2-3"}, status=206).body == b"23"
    # First past last is no range at all, however long the two: the whole body.
    assert bob.get(out(running), headers={"Range": f"bytes={huge}9-{huge}"}, status=200).body == b"0123456789"


def test_validators_and_ranges_only_on_get(worker, bob, running):
    output = upload(worker, running, data=b"0123456789").json
    whole = bob.get(out(running))
    etag = whole.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 66  # the content's SHA-256
    # If-Range: the range only while the client's copy is the same bytes; else (or with a date) all of them.
    assert bob.get(out(running), headers={"Range": "bytes=2-5", "If-Range": etag}, status=206).body == b"2345"
    for validator in ('"stale"', "Wed, 21 Oct 2026 07:28:00 GMT", "W/" + etag):
        assert bob.get(out(running), headers={"Range": "bytes=2-5", "If-Range": validator}, status=200).body \
            == b"0123456789"
    # If-None-Match: nothing to send again.
    for header in (etag, "W/" + etag, f'"other", {etag}', "*"):
        unchanged = bob.get(out(running), headers={"If-None-Match": header}, status=304)
        assert unchanged.body == b"" and unchanged.headers["ETag"] == etag
    assert bob.get(out(running), headers={"If-None-Match": '"other"'}, status=200).body == b"0123456789"
    # Range is defined for GET alone: the client's POST download ignores it (RFC 9110 14.2).
    download = f"/v1/job-outputs/{output['pk']}/download"
    for header in ("bytes=0-1", "bytes=50-"):
        assert bob.post(download, {"params": {}}, headers={"Range": header}, status=200).body == b"0123456789"
    assert bob.get(download, headers={"Range": "bytes=0-1"}, status=206).body == b"01"


def test_the_content_type_is_kept_whole(worker, bob, running):
    for name, content_type in (("a", "text/plain; charset=utf-8"), ("b", "text/csv; header=present")):
        stored = upload(worker, running, data=b"text", name=name, content_type=content_type).json
        assert stored["content_type"] == content_type
        assert bob.get(out(running, name=name)).headers["Content-Type"] == content_type


@pytest.mark.parametrize("sent, kept", [
    ("text/plain\x01x", "application/octet-stream"),  # a control character: it would reach a header
    ("text/plain\x7f", "application/octet-stream"),
    ("text/pl\u00e4in", "application/octet-stream"),
    ("  text/plain  ", "text/plain"),
    ("a/" + "b" * 198, "a/" + "b" * 198),  # 200 characters: the most kept
    ("a/" + "b" * 199, "application/octet-stream"),
])
def test_a_content_type_is_kept_only_as_printable_ascii(worker, bob, running, sent, kept):
    """What is stored is answered as the Content-Type of every download: anything else is the generic type."""
    assert upload(worker, running, data=b"text", content_type=sent).json["content_type"] == kept
    assert bob.get(out(running)).headers["Content-Type"] == kept


def test_a_type_whose_canonical_form_is_just_the_limit_is_accepted(worker, bob, running):
    type_text = f"Framework<'{'a' * 982}', '1'>"  # 1,000 characters, canonical as sent
    assert upload(worker, running, type_text=type_text).json["type"] == type_text
    assert bob.get(out(running, type_text=type_text)).body == DATA


def test_an_output_is_found_by_name_in_its_own_job_only(worker, other_worker, bob, running, make_job):
    other, idle = make_job(), make_job()
    other_worker.get(f"/v1/jobs/{other['pk']}/acquire")
    other_worker.post(f"/v1/jobs/{other['pk']}/start", {})
    mine = upload(worker, running, data=b"mine").json
    theirs = upload(other_worker, other, data=b"theirs").json
    assert bob.get(out(running)).body == b"mine" and bob.get(out(other)).body == b"theirs"
    assert bob.get(out(running, action="info")).json == mine and bob.get(out(other, action="info")).json == theirs
    assert bob.get(out(idle), status=404) and bob.get(out(idle, action="info"), status=404)


def test_a_deleted_output_is_no_longer_found_by_its_name(worker, bob, running):
    """Found by name and type, a deleted output would shadow the one uploaded again under its name."""
    upload(worker, running)
    worker.delete(out(running))
    assert bob.get(out(running, action="info"), status=404)
    again = upload(worker, running, data=b"uploaded again").json
    assert bob.get(out(running, action="info")).json == again
    assert bob.get(out(running)).body == b"uploaded again"


def test_an_output_for_a_deleted_job_its_node_holds_is_refused_as_deleted(admin, worker, running):
    worker.post(f"/v1/jobs/{running['pk']}/finish", {"error": "boom"})
    admin.delete(f"/v1/jobs/{running['pk']}")  # failed: the node still holds it
    refused = upload(worker, running, status=406).json
    assert refused == {"detail": f"Cannot add an output to job {running['pk']}: it is deleted"}


def test_an_empty_output(worker, bob, running):
    assert upload(worker, running, data=b"").json["size"] == 0
    response = bob.get(out(running))
    assert response.body == b"" and response.headers["Content-Length"] == "0"


def test_delete_by_name(worker, other_worker, bob, admin, running, make_job):
    upload(worker, running)
    assert other_worker.delete(out(running), status=403)
    assert bob.delete(out(running), status=403)
    deleted = worker.delete(out(running)).json
    assert deleted["deletion_time"] is not None
    assert bob.get(out(running), status=404)
    assert bob.get(f"/v1/jobs/{running['pk']}").json["outputs"] == []
    # The name is free again; an admin may delete whatever the state.
    upload(worker, running)
    worker.post(f"/v1/jobs/{running['pk']}/finish", {})
    assert worker.delete(out(running), status=406)
    assert admin.delete(out(running)).json["deletion_time"] is not None


def test_job_outputs_collection(worker, bob, admin, running, storage):
    output = upload(worker, running).json
    assert bob.post("/v1/job-outputs/list").json == [output]
    assert bob.get(f"/v1/job-outputs/{output['pk']}").json == output
    download = bob.request("POST", f"/v1/job-outputs/{output['pk']}/download", body=b'{"params": {}}',
                           content_type="application/json")
    assert download.body == DATA and download.headers["Content-Disposition"] == 'attachment; filename="model"'
    zipped = bob.post(f"/v1/job-outputs/{output['pk']}/download", {"filetype": "zip"})
    assert zipped.headers["Content-Disposition"] == 'attachment; filename="model.zip"'
    assert bob.post(f"/v1/job-outputs/{output['pk']}/download").body == DATA
    assert bob.get(f"/v1/job-outputs/{output['pk']}/download?filetype=tar.gz").headers[
        "Content-Disposition"] == 'attachment; filename="model.tar.gz"'
    assert bob.post(f"/v1/job-outputs/{output['pk']}/download", {"filetype": "../x"}, status=400)

    deleted = admin.delete(f"/v1/job-outputs/{output['pk']}").json
    assert deleted["deletion_time"] is not None
    # Deleted, its record is still there to be reinstated, but its bytes are withdrawn (they were still served).
    assert bob.get(f"/v1/job-outputs/{output['pk']}").json == deleted
    for client in (bob, admin):
        refused = client.post(f"/v1/job-outputs/{output['pk']}/download", {"params": {}}, status=404).json
        assert refused == {"detail": f"Output {output['pk']} is deleted"}
    assert admin.delete(f"/v1/job-outputs/{output['pk']}/reinstate").json["deletion_time"] is None
    assert bob.post(f"/v1/job-outputs/{output['pk']}/download").body == DATA
    assert storage.exists(output_key(storage, DATA))
    assert admin.delete(f"/v1/job-outputs/{output['pk']}/hard").json["pk"] == output["pk"]
    assert not storage.exists(output_key(storage, DATA))
    assert bob.get(f"/v1/job-outputs/{output['pk']}", status=404)


@pytest.mark.parametrize("name, body, query, filename", [
    ("model", {"filetype": "zip"}, "", "model.zip"),
    ("model", {"params": {"filetype": "zip"}}, "", "model.zip"),  # as the UFDL client sends it
    ("model.bin", {"filetype": "zip"}, "", "model.zip"),  # the extension is replaced, not added to
    ("model.bin", {"filetype": ".zip"}, "", "model.zip"),
    ("a.b.c", {"params": {}}, "?filetype=gz", "a.b.gz"),
    (".hidden", {"filetype": "zip"}, "", ".hidden.zip"),  # a leading dot starts no extension
    ("model.bin", {"params": {}}, "", "model.bin"),
    ("model.bin", {"params": {}}, "?filetype=", "model.bin"),  # an empty one is none
])
def test_the_downloaded_filename_takes_the_filetype_asked_for(worker, bob, running, name, body, query, filename):
    output = upload(worker, running, name=name).json
    download = bob.post(f"/v1/job-outputs/{output['pk']}/download{query}", body)
    assert download.headers["Content-Disposition"] == f'attachment; filename="{filename}"'


def test_an_output_stored_with_a_name_no_header_can_hold_is_still_downloaded(worker, bob, running, engine):
    # Imports took a graph node named "first\n" before their patterns were anchored, and its meta-job's outputs
    # ("first\n:output") put the newline in Content-Disposition: their downloads failed. Such rows may remain.
    output = upload(worker, running).json
    with engine.begin() as connection:
        connection.execute(text("UPDATE job_outputs SET name = :name WHERE id = :pk"),
                           {"name": 'first\n:"out"\\é', "pk": output["pk"]})
    download = bob.post(f"/v1/job-outputs/{output['pk']}/download", {"params": {}})
    assert download.body == DATA
    assert download.headers["Content-Disposition"] == 'attachment; filename="first_:_out___"'


@pytest.mark.parametrize("body", [{"filetype": 5}, {"params": {"filetype": ["zip"]}}, [1], "zip", 5, None,
                                  # falsy ones were taken as no filetype: the original filename, without a word
                                  {"filetype": 0}, {"filetype": False}, {"filetype": []},
                                  {"params": {"filetype": {}}}, {"filetype": "zip", "params": {"filetype": 0}}])
def test_a_download_body_of_the_wrong_shape_is_400(worker, bob, running, body):
    output = upload(worker, running).json
    bob.request("POST", f"/v1/job-outputs/{output['pk']}/download", body=json.dumps(body).encode(),  # null too
                content_type="application/json", status=400)


@pytest.mark.parametrize("params", ["zip", ["zip"], 5, None, True])
def test_download_params_that_are_no_json_object_are_400(worker, bob, running, params):
    """They were taken as no params at all (null too), so a client's mistake went unseen: a download with the
    original filename instead of the one it asked for."""
    output = upload(worker, running).json
    download = f"/v1/job-outputs/{output['pk']}/download"
    refused = bob.post(download, {"params": params, "filetype": "zip"}, status=400).json
    assert refused == {"detail": 'params must be a JSON object, such as {} or {"filetype": "zip"}'}
    # No params, or no body at all, are fine as before.
    assert bob.post(download, {"filetype": "zip"}).headers["Content-Disposition"].endswith('.zip"')
    assert bob.request("POST", download).body == DATA


def test_if_match_naming_other_bytes_is_412(worker, bob, running):
    """If-Match (RFC 9110 13.1.1) was ignored: a client resuming a download with 'Range' and 'If-Match' of the bytes
    it began got a range of other bytes (an output deleted and uploaded again under its name) to splice on."""
    upload(worker, running, data=b"0123456789")
    etag = bob.get(out(running)).headers["ETag"]
    for header in ('"other"', "W/" + etag, f'"other", W/{etag}'):  # the comparison is strong
        refused = bob.get(out(running), headers={"Range": "bytes=2-5", "If-Match": header}, status=412)
        assert refused.json == {"detail": "The output's bytes are not the ones If-Match names"}
        bob.request("HEAD", out(running), headers={"If-Match": header}, status=412)
    for header in (etag, f'"other", {etag}', "*"):
        assert bob.get(out(running), headers={"Range": "bytes=2-5", "If-Match": header}, status=206).body == b"2345"
        bob.request("HEAD", out(running), headers={"If-Match": header}, status=200)


def test_conditional_requests_on_head_and_post(worker, bob, running):
    """If-None-Match spares a GET or HEAD the body (304); the client's POST download always gets the bytes."""
    output = upload(worker, running, data=b"0123456789").json
    etag = bob.get(out(running)).headers["ETag"]
    bob.request("HEAD", out(running), headers={"If-None-Match": etag}, status=304)
    assert bob.request("HEAD", out(running), headers={"If-None-Match": '"other"'}, status=200).headers[
        "Content-Length"] == "10"
    # Range is for GET alone: HEAD describes the whole body.
    assert bob.request("HEAD", out(running), headers={"Range": "bytes=0-1"}, status=200).headers[
        "Content-Length"] == "10"
    download = bob.post(f"/v1/job-outputs/{output['pk']}/download", {"params": {}}, headers={"If-None-Match": etag})
    assert download.status_int == 200 and download.body == b"0123456789"


def test_anyone_signed_in_reads_an_output(worker, alice, running):
    """Neither the job's creator (bob) nor an admin: alice, without her node, still reads and lists it."""
    output = upload(worker, running).json
    assert alice.get(out(running)).body == DATA
    assert alice.get(out(running, action="info")).json == output
    assert alice.post(f"/v1/job-outputs/{output['pk']}/download").body == DATA


def test_only_an_admin_deletes_reinstates_or_deletes_for_good_a_job_output(worker, alice, bob, admin, running):
    """Neither the job's creator, nor the user whose node added it, nor that node: /v1/job-outputs is read-only
    for them (the node deletes an output by name while it runs the job)."""
    output = upload(worker, running).json
    item = f"/v1/job-outputs/{output['pk']}"
    for client in (bob, alice, worker):
        client.delete(item, status=403)
        client.delete(f"{item}/hard", status=403)
    assert admin.delete(item).json["deletion_time"] is not None
    for client in (bob, alice, worker):
        client.delete(f"{item}/reinstate", status=403)
    assert bob.get(item).json["deletion_time"] is not None


def test_reinstating_an_output_whose_name_and_type_are_taken_again_is_409_naming_the_holder(worker, admin,
                                                                                              running):
    """A deleted output's (job, name, type) may be taken by a new upload: reinstating the old one then says which
    output holds them (it answered a bare 'it conflicts with an existing record')."""
    old = upload(worker, running).json
    admin.delete(f"/v1/job-outputs/{old['pk']}")
    new = upload(worker, running, data=b"new bytes").json
    refused = admin.delete(f"/v1/job-outputs/{old['pk']}/reinstate", status=409).json
    assert refused == {"detail": f"Job {running['pk']} already has an output 'model' of type {MODEL}: output "
                                 f"{new['pk']}; delete that one first"}
    assert admin.get(f"/v1/job-outputs/{old['pk']}").json["deletion_time"] is not None
    admin.delete(f"/v1/job-outputs/{new['pk']}")
    assert admin.delete(f"/v1/job-outputs/{old['pk']}/reinstate").json["deletion_time"] is None
    # Reinstating an active output changes nothing: it is no conflict with itself.
    assert admin.delete(f"/v1/job-outputs/{old['pk']}/reinstate").json["deletion_time"] is None


def output_key(storage, data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def test_hard_delete_keeps_a_blob_another_output_refers_to(worker, admin, running, storage):
    first = upload(worker, running).json
    second = upload(worker, running, name="copy").json
    worker.delete(out(running, "copy"))  # soft-deleted rows still need their blob
    admin.delete(f"/v1/job-outputs/{first['pk']}/hard")
    assert storage.exists(output_key(storage, DATA))
    admin.delete(f"/v1/job-outputs/{second['pk']}/hard")
    assert not storage.exists(output_key(storage, DATA))


def test_the_pk_of_an_output_deleted_for_good_is_never_given_again(worker, admin, bob, running):
    """SQLite handed out max(id) + 1: the pk of the newest output, deleted for good, went to the next upload,
    and a client holding it downloaded other bytes."""
    gone = upload(worker, running).json
    admin.delete(f"/v1/job-outputs/{gone['pk']}/hard")
    again = upload(worker, running, data=b"other bytes").json
    assert again["pk"] > gone["pk"]
    bob.get(f"/v1/job-outputs/{gone['pk']}", status=404)


def test_a_blob_that_cannot_be_deleted_fails_no_request(worker, admin, running, storage, monkeypatch, caplog):
    """The deletion for good has committed when its blob goes: a storage error then is logged and the blob left
    behind (for ``ufdl outputs sweep``), and the request still succeeds."""
    pk = upload(worker, running, data=b"undeletable").json["pk"]

    def broken(key):
        raise OSError("read-only file system")

    monkeypatch.setattr(storage, "delete", broken)
    assert admin.delete(f"/v1/job-outputs/{pk}/hard").json["pk"] == pk
    admin.get(f"/v1/job-outputs/{pk}", status=404)
    assert storage.exists(output_key(storage, b"undeletable"))
    assert "could not delete unreferenced output blobs" in caplog.text


def test_hard_deleting_a_job_deletes_its_blobs(worker, admin, bob, running, storage):
    upload(worker, running)
    upload(worker, running, data=b"other", name="log", type_text="BLOB")
    worker.post(f"/v1/jobs/{running['pk']}/finish", {})
    admin.delete(f"/v1/jobs/{running['pk']}/hard")
    assert not storage.exists(output_key(storage, DATA))
    assert not storage.exists(output_key(storage, b"other"))
    assert bob.post("/v1/job-outputs/list", {"include_inactive": True}).json == []


def test_a_failed_request_deletes_nothing_and_keeps_no_new_blob(worker, running, storage):
    output = upload(worker, running).json
    # A conflicting upload of other bytes: the transaction rolls back and its blob goes too.
    upload(worker, running, data=b"second version", status=409)
    assert not storage.exists(output_key(storage, b"second version"))
    assert storage.exists(output_key(storage, DATA)) and output["size"] == len(DATA)


def test_an_upload_losing_the_race_for_its_name_is_409(worker, running, storage, monkeypatch):
    """Two uploads of one (job, name, type) at once: both pass the duplicate check, the first commits, and the
    second's row is refused by the unique index. That one must be told 409, as when the check catches it, and
    its bytes must go. (Simulated: the second's check passes as if the first had not committed yet.)"""
    from ufdl_pyramid.services.outputs import JobOutputService

    upload(worker, running)
    monkeypatch.setattr(JobOutputService, "_check_unique", lambda self, job, name, canonical: None)
    refused = upload(worker, running, data=b"the loser's bytes", status=409).json
    assert refused == {"detail": f"Job {running['pk']} already has an output 'model' of type {MODEL}"}
    assert not storage.exists(output_key(storage, b"the loser's bytes"))


def test_over_the_limit_is_413(engine, users, tmp_path):
    app = webtest.TestApp(make_test_app(engine, **{"ufdl.max_output_size": "1K",
                                                   "ufdl.storage.path": str(tmp_path / "outputs")}))
    admin = ApiClient(app, *_tokens(users, app, "admin2", admin=True))
    bob = ApiClient(app, *_tokens(users, app, "bob2"))
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json
    job = bob.post(f"/v1/job-templates/{template['pk']}/create-job",
                   {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json
    node = register(bob)
    node.get(f"/v1/jobs/{job['pk']}/acquire")
    node.post(f"/v1/jobs/{job['pk']}/start", {})
    upload(node, job, data=b"x" * 1024)
    assert "1024 bytes" in upload(node, job, data=b"x" * 1025, name="big", status=413).json["detail"]
    blobs = [name for _, _, names in os.walk(tmp_path / "outputs") for name in names]
    assert len(blobs) == 1  # the accepted one; nothing left of the refused upload
    # A Content-Length past the limit is refused before a byte is read (here the body is short of it).
    refused = node.request("POST", out(job, "declared", "BLOB"), body=b"x" * 10, content_type="application/data",
                           headers={"Content-Length": "5000"}, status=413)
    assert "1024 bytes" in refused.json["detail"]


def test_a_body_shorter_than_its_content_length_is_400_and_nothing_is_kept(worker, bob, running, storage):
    """WebOb reports the missing bytes with an OSError: that was a 500, and is the sender's doing, not the
    storage's."""
    refused = worker.request("POST", out(running), body=b"x" * 10, content_type="application/data",
                             headers={"Content-Length": "20"}, status=400).json
    assert refused == {"detail": "the output's bytes could not be read to their end: The client disconnected "
                                 "while sending the body (10 more bytes were expected)"}
    assert os.listdir(storage.temporary_directory) == []
    assert bob.post("/v1/job-outputs/list").json == []


UNAVAILABLE = {"detail": "The output storage cannot be used; try again shortly."}


@contextlib.contextmanager
def file_in_place_of(path: str):
    """A file where the storage needs a directory (an operator's slip, a restore gone wrong): a real OS error,
    which chmod cannot give as the tests run as root. The directory is put back afterwards."""
    os.makedirs(path, exist_ok=True)
    os.rename(path, path + ".aside")
    with open(path, "w") as file:
        file.write("not a directory")
    try:
        yield
    finally:
        os.remove(path)
        os.rename(path + ".aside", path)


def storage_log(caplog) -> list[tuple]:
    return [(record.levelno, record.getMessage(), record.exc_info) for record in caplog.records
            if record.name == "ufdl_pyramid.storage"]


@pytest.mark.parametrize("directory", ["tmp", "the blob's"])
def test_a_storage_that_cannot_be_written_answers_503_and_keeps_nothing(worker, bob, running, storage, engine,
                                                                       caplog, directory):
    """An OS error of the storage other than a full disk was a 500 with a traceback: it is a 503 that the worker
    waits out, and one line in the log for the operator. It fails before the bytes are written (tmp/) or after
    (the blob's directory): either way no file, row or event is left."""
    data = f"bytes the storage cannot take ({directory} directory)".encode()
    key = output_key(storage, data)
    path = storage.temporary_directory if directory == "tmp" else os.path.join(storage.root, key[:2], key[2:4])
    with file_in_place_of(path):
        refused = upload(worker, running, data=data, status=503)
    assert refused.json == UNAVAILABLE and refused.headers["Retry-After"] == "5"
    assert storage_log(caplog) == [
        (logging.ERROR, f"output storage {storage.root}: storing a blob failed: [Errno 17] File exists: '{path}'",
         None)]
    assert os.listdir(storage.temporary_directory) == [] and not storage.exists(key)
    assert bob.post("/v1/job-outputs/list").json == []
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM job_events WHERE transition = 'add_output'")) == 0
    upload(worker, running, data=data)  # the directory is back: the same upload goes through


def test_a_blob_the_storage_cannot_read_answers_503_before_the_answer_starts(worker, bob, running, storage,
                                                                             caplog):
    """The blob's directory turned into a file (ENOTDIR): by name, in a range, or as a download, a 503 logged in
    one line each time; it was a 500 with a traceback."""
    output = upload(worker, running).json
    key = output_key(storage, DATA)
    directory = os.path.join(storage.root, key[:2], key[2:4])
    with file_in_place_of(directory):
        for refused in (bob.get(out(running), status=503),
                        bob.get(out(running), headers={"Range": "bytes=2-5"}, status=503),
                        bob.post(f"/v1/job-outputs/{output['pk']}/download", {"params": {}}, status=503)):
            assert refused.json == UNAVAILABLE and refused.headers["Retry-After"] == "5"
    message = (f"output storage {storage.root}: reading a blob's size failed: [Errno 20] Not a directory: "
               f"'{os.path.join(directory, key)}'")
    assert storage_log(caplog) == [(logging.ERROR, message, None)] * 3
    assert bob.get(out(running)).body == DATA


def test_a_blob_cut_short_behind_the_servers_back_answers_a_json_500_logged_in_one_line(worker, bob, running,
                                                                                        storage, caplog):
    """A blob file shorter than the size recorded for its output (a restore gone wrong): what it still holds is
    served, anything beyond answers 500 as JSON before the answer starts; it was a 500 with a traceback."""
    output = upload(worker, running).json
    key = output_key(storage, DATA)
    with open(os.path.join(storage.root, key[:2], key[2:4], key), "r+b") as blob:
        blob.truncate(10)
    for refused in (bob.get(out(running), status=500),
                    bob.get(out(running), headers={"Range": "bytes=5-10"}, status=500),
                    bob.post(f"/v1/job-outputs/{output['pk']}/download", {"params": {}}, status=500)):
        assert refused.json == {"detail": "The stored bytes of this output are damaged; the server's log says which."}
        assert "Retry-After" not in refused.headers
    assert storage_log(caplog) == [
        (logging.ERROR, f"output storage: blob {key} holds 10 bytes, the request asked for bytes {start}-{end}: "
                        f"it is damaged", None)
        for start, end in ((0, len(DATA) - 1), (5, 10), (0, len(DATA) - 1))]
    assert bob.get(out(running), headers={"Range": "bytes=2-9"}, status=206).body == DATA[2:10]


def test_head_answers_the_get_headers_and_leaves_no_blob_open(worker, bob, running, storage, monkeypatch):
    """WebOb never reads a HEAD's body: the blob the GET handler opened for it stayed open (a ResourceWarning
    when the garbage collector found it). Every file opened must be closed once the answer is out."""
    output = upload(worker, running).json
    opened = []

    def recording_open(key, _open=storage.open):
        blob = _open(key)
        opened.append(blob)
        return blob

    monkeypatch.setattr(storage, "open", recording_open)
    for path in (out(running), f"/v1/job-outputs/{output['pk']}/download"):
        got = bob.get(path)
        head = bob.request("HEAD", path, status=200)
        assert head.body == b""
        for name in ("Content-Length", "Content-Type", "Content-Disposition", "ETag", "Accept-Ranges"):
            assert head.headers[name] == got.headers[name]
    assert opened and all(blob.closed for blob in opened)


def test_a_blob_gone_from_under_its_row_is_damaged_too_not_a_404(worker, bob, running, storage, caplog):
    """The blob file of a live output removed behind the server's back (a restore without it, a hand clean-up):
    the bytes answered 404 "no stored output under this key" while the output's info answered 200, and the
    operator learnt nothing. It is the damage a blob cut short is: a JSON 500, and the log names the blob."""
    output = upload(worker, running).json
    key = output_key(storage, DATA)
    os.remove(os.path.join(storage.root, key[:2], key[2:4], key))
    for refused in (bob.get(out(running), status=500),
                    bob.get(out(running), headers={"Range": "bytes=5-10"}, status=500),
                    bob.request("HEAD", out(running), status=500),
                    bob.post(f"/v1/job-outputs/{output['pk']}/download", {"params": {}}, status=500)):
        if refused.body:
            assert refused.json == {"detail": "The stored bytes of this output are damaged; the server's log says "
                                              "which."}
    assert [(record.levelno, record.getMessage()) for record in caplog.records
            if record.name == "ufdl_pyramid.views.outputs"] == [
        (logging.ERROR, f"output {output['pk']}: its blob {key} is missing from the output storage")] * 4
    bob.get(out(running, action="info"))


def test_a_blob_failing_mid_stream_is_logged_in_one_line_and_the_connection_closed(wsgi_app, worker, bob, running,
                                                                                   storage, monkeypatch, caplog):
    """Once the headers are sent the status cannot change: the body stops short of its Content-Length, so the
    server closes the connection (the client sees it cut), and the log says why in one line (waitress logged a
    traceback)."""
    import errno
    import http.client
    import io

    from webtest.http import StopableWSGIServer

    class FailingDisk(io.BytesIO):
        """Its first read answers 100 bytes; the next one fails, as a dying disk would (EIO)."""

        def read(self, size=-1):
            if self.tell():
                raise OSError(errno.EIO, "Input/output error")
            return super().read(100)

    output = upload(worker, running).json
    monkeypatch.setattr(storage, "open", lambda key: FailingDisk(DATA))
    server = StopableWSGIServer.create(wsgi_app)
    try:
        assert server.wait()
        connection = http.client.HTTPConnection(server.adj.host, server.adj.port, timeout=10)
        connection.request("GET", out(running), headers=bob.headers())
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Length") == str(len(DATA))
        with pytest.raises(http.client.IncompleteRead) as cut:  # not a timeout: the server closed it
            response.read()
        assert cut.value.partial == DATA[:100]
        connection.close()
    finally:
        server.shutdown(debug=True)
    assert not [record.getMessage() for record in caplog.records if record.exc_info]
    assert [(record.levelno, record.getMessage()) for record in caplog.records
            if record.name.startswith("ufdl_pyramid")] == [
        (logging.ERROR, f"output {output['pk']}: reading its blob failed after the answer started (the connection "
                        f"is closed): [Errno 5] Input/output error")]


def _tokens(users, app, username, admin=False):
    user_id = users.create(username, admin=admin)
    tokens = app.post_json("/v1/auth/obtain", {"username": username, "password": "password123"}).json
    return tokens["access"], tokens["refresh"], None, user_id


def _memory_kib(pid: int) -> dict:
    """Current and peak resident memory of a process, KiB (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {"rss": int(fields["VmRSS"].split()[0]), "peak": int(fields["VmHWM"].split()[0])}


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc to measure the server")
def test_200_mib_up_and_down_with_flat_server_memory(engine, worker, bob, running, tmp_path):
    """A real waitress server in its own process: upload 200 MiB streamed from a generator, download it
    streamed, and the server's peak RSS grows by less than 50 MiB."""
    import hashlib
    import http.client

    from serve_outputs import served

    size, chunk = 200 << 20, 1 << 20
    block = os.urandom(chunk)
    with served(engine, tmp_path) as (port, server):
        def call(client, method, path, body=None, headers=None):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request(method, path, body=body, headers={**client.headers(), **(headers or {})})
            return connection, connection.getresponse()

        # Warm up (imports, first queries, pools), then take the baseline.
        connection, response = call(bob, "GET", f"/v1/jobs/{running['pk']}")
        assert response.status == 200, response.read()
        connection.close()
        before = _memory_kib(server.pid)

        def body():
            for _ in range(size // chunk):
                yield block

        connection, response = call(worker, "POST", out(running, "big", "BLOB"), body(), {
            "Content-Type": "application/data", "Content-Length": str(size),
            "Content-Disposition": "attachment; filename=big"})
        assert response.status == 201, response.read()
        assert b'"size": 209715200' in response.read()
        connection.close()
        after_upload = _memory_kib(server.pid)

        connection, response = call(bob, "GET", out(running, "big", "BLOB"))
        assert response.status == 200 and response.getheader("Content-Length") == str(size)
        digest, received = hashlib.sha256(), 0
        while piece := response.read(chunk):
            digest.update(piece)
            received += len(piece)
        connection.close()
        after_download = _memory_kib(server.pid)
    expected = hashlib.sha256()
    for _ in range(size // chunk):
        expected.update(block)
    assert received == size and digest.hexdigest() == expected.hexdigest()
    growth_mib = (after_download["peak"] - before["peak"]) / 1024
    print(f"server memory KiB: before {before}, after upload {after_upload}, after download {after_download}; "
          f"peak growth {growth_mib:.1f} MiB")
    assert growth_mib < 50


def test_uploads_run_once_so_their_body_is_not_copied_first(wsgi_app):
    """pyramid_retry would copy the whole body before a retryable request; uploads stream instead."""
    from pyramid.request import Request

    hook = wsgi_app.registry.settings["retry.activate_hook"]
    assert hook(Request.blank("/v1/jobs/3/outputs/model/BLOB", method="POST")) == 1
    assert hook(Request.blank("/v1/jobs/3/outputs/model/BLOB", method="GET")) is None
    assert hook(Request.blank("/v1/jobs/3/start", method="POST")) is None
    assert hook(Request.blank("/v1/jobs/%FF/outputs/x/BLOB", method="POST")) == 1  # no decoding, no crash


def test_an_upload_spelt_with_empty_or_dot_segments_is_an_upload_too(wsgi_app):
    """Traversal reads '/v1//jobs/3/outputs/model/BLOB' (or '/v1/jobs/3/./outputs/...') as an upload, but the raw
    path's pattern did not: such an upload had its whole body copied for a retry first, and held its node's row
    (and on SQLite the write lock) while its bytes came in."""
    from pyramid.request import Request

    hook = wsgi_app.registry.settings["retry.activate_hook"]
    for path in ("/v1//jobs/3/outputs/model/BLOB", "//v1/jobs/3//outputs/model/BLOB/", "/v1/jobs/3/./outputs/model/BLOB",
                 "/v1/jobs/9/../3/outputs/model/BLOB"):
        assert hook(Request.blank(path, method="POST")) == 1, path
    for path in ("/v1//jobs/3/outputs/model", "/v1/jobs/3/outputs/model/BLOB/../x/y", "/v1/jobs/3/outputs/m/BLOB/info"):
        assert hook(Request.blank(path, method="POST")) is None, path


def test_an_upload_being_stored_holds_up_no_other_write(wsgi_app, make_job, worker, other_worker, running,
                                                          storage, monkeypatch):
    """While its bytes come in, an upload holds no lock: on SQLite it begins as a reader and takes the write
    lock once they are stored. Before, it held SQLite's one write lock from its start: every other writer
    waited, and answered 503 after the 30 s busy timeout."""
    import threading

    other = make_job()
    other_worker.get(f"/v1/jobs/{other['pk']}/acquire")
    storing, go = threading.Event(), threading.Event()
    stage = storage.stage

    def held_up(*args, **kwargs):
        storing.set()
        assert go.wait(120)
        return stage(*args, **kwargs)

    monkeypatch.setattr(storage, "stage", held_up)
    answers = {}
    uploading = threading.Thread(target=lambda: answers.setdefault("upload", upload(worker, running, status="*")))
    uploading.start()
    try:
        assert storing.wait(60)
        # Writes of other requests, among them the uploading node's own heartbeat (it marks the node seen).
        answers["start"] = other_worker.post(f"/v1/jobs/{other['pk']}/start", {}, status="*").status_int
        answers["heartbeat"] = worker.get(f"/v1/jobs/{running['pk']}", status="*").status_int
        answers["progress"] = worker.post(f"/v1/jobs/{running['pk']}/progress/0.5", {}, status="*").status_int
    finally:
        go.set()
        uploading.join(60)
    assert {name: answers[name] for name in ("start", "heartbeat", "progress")} == {
        "start": 200, "heartbeat": 200, "progress": 200}
    # The upload, stored after those writes committed, is recorded against the job as it is now.
    assert answers["upload"].status_int == 201
    assert worker.get(out(running)).body == DATA


@pytest.mark.allow_500
def test_a_blob_stored_by_a_request_that_fails_later_is_removed(engine, worker, running, storage, monkeypatch):
    # Any error after the bytes were stored, not only one of the flush (pyramid_tm then closes the session).
    from ufdl_pyramid.services import outputs

    def broken(*args, **kwargs):
        raise RuntimeError("the event could not be written")

    monkeypatch.setattr(outputs, "record_event", broken)
    upload(full_stack(engine, worker), running, data=b"never committed", status=500)
    assert not storage.exists(output_key(storage, b"never committed"))


@pytest.mark.parametrize("pause", ["before the lock", "after the lock"])
def test_a_hard_delete_racing_an_upload_of_the_same_bytes(on_postgresql, engine, admin, alice, make_job, storage,
                                                          monkeypatch, pause):
    """Output a of job A holds bytes X; while job B's upload of X is between its store and its commit, an admin
    hard-deletes a. The blob must outlive the deletion either way: B took the key's lock first (the clean-up
    waits and sees B's row), or the clean-up went first (B's bytes were still staged; B was answered 503 "send it
    again" when it stored them under the key before its lock). The full stack's upload (its express lane's:
    test_express_lanes.py)."""
    wsgi_app = make_test_app(engine, **{"ufdl.express_lanes": "false"})
    import threading

    from ufdl_pyramid.services import outputs

    workers = [register(alice, f"10.0.3.{i}") for i in range(2)]
    jobs = [make_job() for _ in workers]
    for node, job in zip(workers, jobs):
        node.get(f"/v1/jobs/{job['pk']}/acquire")
        node.post(f"/v1/jobs/{job['pk']}/start", {})
    first = upload(workers[0], jobs[0], data=b"X" * 1000, name="a").json
    paused, resume = threading.Event(), threading.Event()
    real_lock = outputs.lock_blob_keys
    uploader = {}

    def lock(connection, keys):
        if threading.current_thread() is uploader.get("thread"):
            if pause == "before the lock":
                paused.set()
                resume.wait(10)
            real_lock(connection, keys)
            if pause == "after the lock":
                paused.set()
                resume.wait(10)
        else:
            real_lock(connection, keys)

    monkeypatch.setattr(outputs, "lock_blob_keys", lock)
    answers = {}

    def send():
        app = webtest.TestApp(wsgi_app)
        answers["upload"] = app.post(out(jobs[1], "b", "BLOB"), b"X" * 1000, headers=workers[1].headers(
            {"Content-Type": "application/data"}), expect_errors=True)

    def hard_delete():
        answers["delete"] = webtest.TestApp(wsgi_app).delete(f"/v1/job-outputs/{first['pk']}/hard",
                                                            headers=admin.headers(), expect_errors=True)

    uploader["thread"] = threading.Thread(target=send)
    uploader["thread"].start()
    assert paused.wait(10)
    deleter = threading.Thread(target=hard_delete)
    deleter.start()
    deleter.join(1 if pause == "after the lock" else 10)  # after the lock, its clean-up waits for the upload
    resume.set()
    uploader["thread"].join(10)
    deleter.join(10)
    assert answers["delete"].status_int == 200
    assert answers["upload"].status_int == 201
    assert workers[1].get(out(jobs[1], "b", "BLOB")).body == b"X" * 1000


def test_a_failed_upload_of_the_same_bytes_does_not_remove_a_pending_upload_s_blob(engine, admin, alice,
                                                                                  make_job, storage, monkeypatch):
    """Jobs A and B take the same bytes X from two nodes. Both uploads have read X and wait for the database;
    A's job is cancelled, so A fails (406) and its clean-up finds no row referring to X. B must still succeed
    with its bytes kept: it was answered 503 "send it again" (seen in the storm of
    test_nodes_and_admins_at_the_same_time_keep_the_invariants). The full stack's uploads (the express lane's:
    test_express_lanes.py)."""
    wsgi_app = make_test_app(engine, **{"ufdl.express_lanes": "false"})
    import threading

    from ufdl_pyramid.services import outputs

    workers = [register(alice, f"10.0.4.{i}") for i in range(2)]
    jobs = [make_job() for _ in workers]
    for node, job in zip(workers, jobs):
        node.get(f"/v1/jobs/{job['pk']}/acquire")
        node.post(f"/v1/jobs/{job['pk']}/start", {})
    real_write_from_here = outputs.write_from_here
    paused = {index: threading.Event() for index in range(2)}
    resume = {index: threading.Event() for index in range(2)}

    def write_from_here(session):  # where an upload, its bytes read, waits for the database
        index = {"upload 0": 0, "upload 1": 1}.get(threading.current_thread().name)
        if index is not None:
            paused[index].set()
            assert resume[index].wait(10)
        real_write_from_here(session)

    monkeypatch.setattr(outputs, "write_from_here", write_from_here)
    answers = {}

    def send(index):
        answers[index] = webtest.TestApp(wsgi_app).post(
            out(jobs[index], "x", "BLOB"), b"X" * 1000,
            headers=workers[index].headers({"Content-Type": "application/data"}), expect_errors=True)

    uploaders = {index: threading.Thread(target=send, args=(index,), name=f"upload {index}") for index in range(2)}
    for index in (1, 0):  # B reads X first, then A
        uploaders[index].start()
        assert paused[index].wait(10)
    admin.delete(f"/v1/jobs/{jobs[0]['pk']}/cancel")
    resume[0].set()
    uploaders[0].join(10)
    assert answers[0].status_int == 406, answers[0].text  # its clean-up has run: no row refers to X
    resume[1].set()
    uploaders[1].join(10)
    assert answers[1].status_int == 201, answers[1].text
    assert workers[1].get(out(jobs[1], "x", "BLOB")).body == b"X" * 1000
    assert os.listdir(storage.temporary_directory) == []


def test_a_storage_path_that_cannot_be_written_stops_the_start(engine, tmp_path):
    from ufdl_pyramid.settings import SettingsError

    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(SettingsError, match="ufdl.storage.path"):
        make_test_app(engine, **{"ufdl.storage.path": str(tmp_path / "a-file" / "outputs")})


def test_a_job_type_that_outputs_are_typed_with_cannot_be_deleted_or_renamed(engine, admin, worker, running):
    """Outputs are found by their type: once it no longer resolved, get, info and delete by name and type
    answered 400 for an output the job still listed."""
    upload(worker, running, b'{"a": 1}', name="doc", type_text="JSON")
    upload(worker, running, b"[1, 2]", name="numbers", type_text="Array<int>")
    types = {row["name"]: row["pk"] for row in admin.post("/v1/job-types/list").json}
    refused = admin.delete(f"/v1/job-types/{types['JSON']}", status=409).json
    assert refused == {"detail": "Job type 'JSON' is the type of 1 job output(s): it cannot be deleted"}
    renamed = {"name": "Any", "pkg": "ufdl_pyramid.types", "cls": "AnyType"}  # a UFDL type of that name
    refused = admin.patch(f"/v1/job-types/{types['Array']}", renamed, status=409).json
    assert refused == {"detail": "Job type 'Array' is the type of 1 job output(s): it cannot be renamed or "
                                 "re-pointed"}
    # A deleted output may be reinstated: it counts too.
    worker.delete(out(running, "doc", "JSON"))
    admin.delete(f"/v1/job-types/{types['JSON']}", status=409)
    assert worker.get(out(running, "numbers", "Array<int>", "info")).json["type"] == "Array<int>"
    # A name that only appears inside another type's name is no reference.
    with engine.begin() as connection:  # no UFDL type has such a name: the API would refuse the row
        arr = connection.execute(JobType.__table__.insert().values(name="Arr", pkg="collections", cls="OrderedDict")
                                 .returning(JobType.id)).scalar_one()
    admin.delete(f"/v1/job-types/{arr}")


def test_a_deleted_jobs_outputs_are_neither_offered_nor_taken_as_inputs(admin, bob, worker, running):
    """get-all-values listed them and create-job took them, though the job was deleted."""
    from job_helpers import CONSUME

    output = upload(worker, running, b"bytes", name="output", type_text="BLOB").json
    worker.post(f"/v1/jobs/{running['pk']}/finish", {})
    consume = admin.post("/v1/job-templates/import", CONSUME, status=201).json
    offered = f"/v1/job-types/get-all-values/{segment('JobOutput<BLOB>')}"
    assert [value["pk"] for value in bob.get(offered).json] == [output["pk"]]
    body = {"input_values": {"input": {"value": output["pk"], "type": "JobOutput<BLOB>"}}}
    bob.post(f"/v1/job-templates/{consume['pk']}/create-job", body, status=201)
    admin.delete(f"/v1/jobs/{running['pk']}")
    assert bob.get(offered).json == []
    refused = bob.post(f"/v1/job-templates/{consume['pk']}/create-job", body, status=400).json
    assert refused["detail"] == f"input_values.input: there is no job output {output['pk']}"
    # Nor are its bytes served, by name or by pk (they were); the records stay readable.
    withheld = {"detail": f"Output {output['pk']} is of job {running['pk']}, which is deleted"}
    assert bob.get(out(running, "output", "BLOB"), status=404).json == withheld
    assert bob.post(f"/v1/job-outputs/{output['pk']}/download", status=404).json == withheld
    assert bob.get(out(running, "output", "BLOB", "info")).json["pk"] == output["pk"]
    admin.delete(f"/v1/jobs/{running['pk']}/reinstate")
    assert [value["pk"] for value in bob.get(offered).json] == [output["pk"]]
    assert bob.get(out(running, "output", "BLOB")).body == b"bytes"


def offered(client, type_text):
    return [value["pk"] for value in client.get(f"/v1/job-types/get-all-values/{segment(type_text)}").json]


def test_get_all_values_offers_the_outputs_of_every_subtype(worker, bob, running):
    model = upload(worker, running).json
    doc = upload(worker, running, b'{"a": 1}', name="doc", type_text="JSON").json
    assert offered(bob, "JobOutput<Model<Domain<'ic'>>>") == [model["pk"]]
    assert offered(bob, "JobOutput<Model<Domain<'od'>>>") == []
    assert offered(bob, "JobOutput<JSON>") == [doc["pk"]]
    # With T left out, every output.
    assert offered(bob, "JobOutput") == [model["pk"], doc["pk"]]


def test_get_all_values_leaves_out_deleted_outputs(worker, bob, running):
    kept = upload(worker, running, b"kept", name="kept", type_text="BLOB").json
    upload(worker, running, b"gone", name="gone", type_text="BLOB")
    worker.delete(out(running, "gone", "BLOB"))
    assert offered(bob, "JobOutput<BLOB>") == [kept["pk"]]


def test_an_output_whose_type_no_longer_resolves_is_no_value_of_a_type(engine, worker, bob, running):
    from ufdl_pyramid.models import JobType

    blob = upload(worker, running, b"bytes", name="blob", type_text="BLOB").json
    numbers = upload(worker, running, b"[1]", name="numbers", type_text="Array<int>").json
    # What uninstalling the plugin of Array leaves (the API refuses to delete a type that outputs use).
    with engine.begin() as connection:
        connection.execute(JobType.__table__.delete().where(JobType.name == "Array"))
    assert offered(bob, "JobOutput<BLOB>") == [blob["pk"]]
    assert offered(bob, "JobOutput") == [blob["pk"], numbers["pk"]]


def test_a_job_type_an_output_names_as_an_argument_cannot_be_deleted(admin, worker, running):
    """Map<str, Array<float>> needs float to resolve as much as Map."""
    upload(worker, running, b"[1, 2]", name="numbers", type_text="Map<str, Array<float>>")
    types = {row["name"]: row["pk"] for row in admin.post("/v1/job-types/list").json}
    refused = admin.delete(f"/v1/job-types/{types['float']}", status=409).json
    assert refused == {"detail": "Job type 'float' is the type of 1 job output(s): it cannot be deleted"}
