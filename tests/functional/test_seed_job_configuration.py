"""``GET /v1/jobs/{pk}/seed-configuration``: a Scale job type's settings (secret ones decrypted) and mounts, for
the node that holds the job while it is QUEUED or RUNNING, and no one else."""
import copy
import logging

from job_helpers import register
from test_scale_job_types import SPEC_POST, run_job, template_of

JOB_TYPE = "/v6/job-types/test/1.0.0/"
SPEC_CONFIGURATION = {"settings": {"DB_HOST": "som.host.name", "DB_PASS": "secret_password"},
                      "mounts": {"MOUNT_PATH": {"type": "host", "host_path": "/path/on/host"}}}


def seed_job(admin, client, value: dict) -> int:
    created = admin.post("/v6/job-types/", SPEC_POST, status=201).json
    return run_job(client, template_of(client, created), value)["pk"]


def test_the_holding_node_gets_the_configuration_with_secrets_decrypted_and_not_cached(admin, alice, bob, caplog,
                                                                                      spec_input):
    pk = seed_job(admin, bob, spec_input)
    node = register(alice)
    node.get(f"/v1/jobs/{pk}/acquire")
    caplog.set_level(logging.DEBUG)
    answer = node.get(f"/v1/jobs/{pk}/seed-configuration")
    assert answer.json == SPEC_CONFIGURATION
    assert answer.headers["Cache-Control"] == "no-store"
    assert "secret_password" not in caplog.text
    node.post(f"/v1/jobs/{pk}/start", {})
    # The job type's configuration as it is when the node asks; a setting the job's manifest does not declare
    # is not given (the validation warns UNKNOWN_SETTING, and Scale ignores it too).
    admin.patch(JOB_TYPE, {"configuration": {"settings": {"DB_HOST": "other.host", "NOT_DECLARED": "x"}}})
    assert node.get(f"/v1/jobs/{pk}/seed-configuration").json == {
        "settings": {"DB_HOST": "other.host", "DB_PASS": "secret_password"}, "mounts": {}}


def test_no_configuration_is_scales_defaults(admin, alice, bob, spec_input):
    created = admin.post("/v6/job-types/", {**SPEC_POST, "configuration": None}, status=201).json
    pk = run_job(bob, template_of(bob, created), spec_input)["pk"]
    node = register(alice)
    node.get(f"/v1/jobs/{pk}/acquire")
    assert node.get(f"/v1/jobs/{pk}/seed-configuration").json == {"settings": {}, "mounts": {}}


def test_no_one_but_the_holding_node_of_a_queued_or_running_job_gets_it(admin, alice, bob, spec_input):
    pk = seed_job(admin, bob, spec_input)
    path = f"/v1/jobs/{pk}/seed-configuration"
    node, other = register(alice), register(alice, "10.0.0.2")
    assert node.get(path, status=403).json == {"detail": f"Node {node.node_id} does not hold job {pk}"}  # PENDING
    node.get(f"/v1/jobs/{pk}/acquire")
    assert other.get(path, status=403).json == {"detail": f"Node {other.node_id} does not hold job {pk}"}
    for user in (alice, bob, admin):  # its node's owner, its creator, an admin: no node, no configuration
        assert user.get(path, status=403).json == {
            "detail": "Only a node may read a job's Seed configuration: send the Node-Id header"}
    node.post(f"/v1/jobs/{pk}/start", {})
    node.post(f"/v1/jobs/{pk}/finish", {"success": True})
    answer = node.get(path, status=403)
    assert answer.json == {"detail": f"Job {pk} is COMPLETED: its Seed configuration is given only while it is "
                                     f"QUEUED or RUNNING"}
    assert "secret_password" not in answer.text


def test_a_job_of_another_template_has_none(alice, job):
    node = register(alice)
    node.get(f"/v1/jobs/{job['pk']}/acquire")
    assert node.get(f"/v1/jobs/{job['pk']}/seed-configuration", status=404).json == {
        "detail": f"Job {job['pk']} is not a Scale job type's job: it has no Seed configuration"}


def test_an_older_revisions_job_gets_only_what_its_manifest_declares(admin, alice, bob, spec_input):
    pk = seed_job(admin, bob, spec_input)
    changed = copy.deepcopy(SPEC_POST)
    settings = changed["manifest"]["job"]["interface"]["settings"]
    settings.append({"name": "NEW_SETTING"})
    changed["configuration"]["settings"]["NEW_SETTING"] = "new"
    admin.post("/v6/job-types/", changed, status=201)  # revision 2
    node = register(alice)
    node.get(f"/v1/jobs/{pk}/acquire")
    assert node.get(f"/v1/jobs/{pk}/seed-configuration").json == SPEC_CONFIGURATION


def test_a_server_without_the_key_that_stored_the_secrets_is_a_clear_503(admin, alice, bob, keyless, spec_input):
    pk = seed_job(admin, bob, spec_input)
    node = register(alice)
    node.get(f"/v1/jobs/{pk}/acquire")
    refused = keyless(alice).as_node(node.node_id).get(f"/v1/jobs/{pk}/seed-configuration", status=503)
    assert refused.json == {"detail": "Secret setting values cannot be read: the server has no encryption key. "
                                      "Set ufdl.seed.secret_key (or the environment variable UFDL_SEED_SECRET_KEY) "
                                      "to the Fernet key that stored them."}
