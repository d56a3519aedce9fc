"""Nodes: registration, ownership, and acting as a node with the Node-Id header."""
import pytest

NODE = {"ip": "192.168.0.10", "index": 0, "driver_version": "535.104", "hardware_generation": "Ampere",
        "gpu_mem": 24576, "cpu_mem": 65536}


@pytest.fixture
def node(alice):
    return alice.post("/v1/nodes/create", NODE, status=201).json


def test_a_user_registers_a_node(alice, node):
    assert node == {"pk": node["pk"], **NODE, "cpus": None, "gpus": None, "last_seen": None, "current_job": None,
                    "owner": alice.user_id}
    assert alice.get(f"/v1/nodes/{node['pk']}").json == node
    assert alice.post("/v1/nodes/list").json == [node]


def test_whole_numbers_written_as_floats_are_answered_as_the_integers_stored(alice):
    """JSON Schema takes 1.0 for an integer: the columns stored 1, but the answer echoed 1.0 (and 1e+18)."""
    node = alice.post("/v1/nodes/create", {"ip": "10.4.4.4", "index": 1.0, "gpu_mem": 5.0, "cpu_mem": 1e18},
                      status=201).json
    assert (node["index"], node["gpu_mem"], node["cpu_mem"]) == (1, 5, 10**18)
    assert all(isinstance(node[field], int) for field in ("index", "gpu_mem", "cpu_mem"))
    assert alice.get(f"/v1/nodes/{node['pk']}").json == node
    changed = alice.patch(f"/v1/nodes/{node['pk']}", {"cpu_mem": 2.0}, status=200).json
    assert changed["cpu_mem"] == 2 and isinstance(changed["cpu_mem"], int)


def test_a_node_may_say_how_many_cores_and_gpus_it_has(alice):
    """Our extension (a Scale job's manifest asks ``cpus`` and ``gpus``): whole numbers, or null for not said."""
    node = alice.post("/v1/nodes/create", {"ip": "10.4.4.5", "index": 0, "cpus": 16, "gpus": 2.0}, status=201).json
    assert (node["cpus"], node["gpus"]) == (16, 2) and isinstance(node["gpus"], int)
    assert alice.patch(f"/v1/nodes/{node['pk']}", {"gpus": None}, status=200).json["gpus"] is None
    for wrong in ({"cpus": -1}, {"gpus": 1.5}, {"cpus": "16"}, {"cpus": 2**31}):
        assert alice.patch(f"/v1/nodes/{node['pk']}", wrong, status=400).json["detail"].startswith(next(iter(wrong)))
    assert alice.get(f"/v1/nodes/{node['pk']}").json["cpus"] == 16


def test_minimal_node_and_ipv6(alice):
    node = alice.post("/v1/nodes/create", {"ip": "::1", "index": 2}, status=201).json
    assert node["ip"] == "::1" and node["gpu_mem"] is None


def test_an_address_is_stored_in_its_canonical_form_so_one_spelling_is_one_node(alice, bob):
    node = alice.post("/v1/nodes/create", {"ip": "2001:DB8:0:0:0:0:0:1", "index": 0}, status=201).json
    assert node["ip"] == "2001:db8::1"
    response = bob.post("/v1/nodes/create", {"ip": "2001:db8::1", "index": 0}, status=409)
    assert response.json == {"detail": "A node with ip '2001:db8::1' and index 0 already exists"}


def test_ip_and_index_are_unique_together(alice, bob, node):
    response = bob.post("/v1/nodes/create", {"ip": NODE["ip"], "index": 0}, status=409)
    assert response.json == {"detail": "A node with ip '192.168.0.10' and index 0 already exists"}
    other = bob.post("/v1/nodes/create", {"ip": NODE["ip"], "index": 1}, status=201).json
    bob.patch(f"/v1/nodes/{other['pk']}", {"index": 0}, status=409)


def test_bad_node_bodies_are_400(alice):
    for body, needle in (({"ip": "not-an-ip", "index": 0}, "IPv4"), ({"ip": "10.0.0.1"}, "index"),
                         ({"ip": "10.0.0.1", "index": -1}, "index"), ({**NODE, "gpu_mem": "lots"}, "gpu_mem"),
                         ({**NODE, "owner": 1}, "owner")):
        assert needle in alice.post("/v1/nodes/create", body, status=400).json["detail"]


def test_only_the_owner_or_an_admin_changes_a_node(alice, bob, admin, node):
    pk = node["pk"]
    bob.patch(f"/v1/nodes/{pk}", {"gpu_mem": 1}, status=403)
    bob.delete(f"/v1/nodes/{pk}", status=403)
    assert alice.patch(f"/v1/nodes/{pk}", {"gpu_mem": 1}).json["gpu_mem"] == 1
    assert admin.patch(f"/v1/nodes/{pk}", {"gpu_mem": 2}).json["gpu_mem"] == 2
    assert bob.get(f"/v1/nodes/{pk}").json["gpu_mem"] == 2  # everyone may see nodes
    alice.delete(f"/v1/nodes/{pk}")
    alice.get(f"/v1/nodes/{pk}", status=404)


def test_put_replaces_a_node_resetting_the_fields_it_leaves_out(alice, admin):
    """PUT set only the fields given: a worker could not clear a stale cpus or gpus, which acquiring matches jobs
    against. Now what it leaves out is reset as create sets it (null); the server's own fields stay."""
    from job_helpers import ECHO, register

    worker = register(alice)
    alice.patch(f"/v1/nodes/{worker.node_id}", {"gpu_mem": 5, "cpus": 4, "gpus": 1, "driver_version": "1"})
    template = admin.post("/v1/job-templates/import", ECHO, status=201).json["pk"]
    job = alice.post(f"/v1/job-templates/{template}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    worker.get(f"/v1/jobs/{job}/acquire")
    worker.post(f"/v1/jobs/{job}/start", {})
    before = alice.get(f"/v1/nodes/{worker.node_id}").json
    assert before["last_seen"] is not None and before["current_job"] == job

    replaced = alice.put(f"/v1/nodes/{worker.node_id}", {"ip": "10.0.0.2", "index": 0}).json
    assert replaced == {**before, "ip": "10.0.0.2", "index": 0, "driver_version": None, "hardware_generation": None,
                        "gpu_mem": None, "cpu_mem": None, "cpus": None, "gpus": None}
    assert alice.get(f"/v1/nodes/{worker.node_id}").json == replaced
    # The fields a node must have stay required; PATCH still changes only those given.
    assert "index" in alice.put(f"/v1/nodes/{worker.node_id}", {"ip": "10.0.0.1"}, status=400).json["detail"]
    assert alice.patch(f"/v1/nodes/{worker.node_id}", {"cpus": 8}).json == {**replaced, "cpus": 8}


def test_a_node_holding_a_job_cannot_be_deleted(admin, alice):
    from job_helpers import ECHO, register

    template = admin.post("/v1/job-templates/import", ECHO, status=201).json["pk"]
    job = alice.post(f"/v1/job-templates/{template}/create-job",
                     {"input_values": {"input": {"value": "x", "type": "str"}}}, status=201).json["pk"]
    worker = register(alice)
    worker.get(f"/v1/jobs/{job}/acquire")
    # Deleted, it would leave the job held by no node, where no lease expires.
    refused = alice.delete(f"/v1/nodes/{worker.node_id}", status=409)
    assert f"holds job {job}" in refused.json["detail"]
    worker.delete(f"/v1/jobs/{job}/release")
    alice.delete(f"/v1/nodes/{worker.node_id}")


def test_acting_as_your_node_updates_last_seen(alice, node):
    as_node = alice.as_node(node["pk"])
    as_node.post("/v1/job-types/list")
    seen = alice.get(f"/v1/nodes/{node['pk']}").json["last_seen"]
    assert seen is not None and seen.endswith("Z")
    as_node.get(f"/v1/nodes/{node['pk']}")
    assert alice.get(f"/v1/nodes/{node['pk']}").json["last_seen"] > seen


def test_another_users_node_id_is_403_on_every_call(bob, node):
    as_node = bob.as_node(node["pk"])
    assert as_node.post("/v1/job-types/list", status=403).json == {
        "detail": f"Node {node['pk']} belongs to another user"}
    as_node.get(f"/v1/nodes/{node['pk']}", status=403)
    as_node.post("/v1/nodes/list", status=403)  # the nodes' collection lets only its create through


def test_an_admin_may_act_as_any_node(admin, node):
    admin.as_node(node["pk"]).post("/v1/job-types/list", status=200)


def test_unknown_and_malformed_node_ids(alice, node):
    assert alice.as_node(9999).post("/v1/job-types/list", status=403).json == {"detail": "Node 9999 does not exist"}
    response = alice.request("POST", "/v1/job-types/list", headers={"Node-Id": "abc"}, status=400)
    assert "Node-Id" in response.json["detail"]
    # A long header is quoted in part (it came back whole: up to waitress's 256 kB of headers).
    response = alice.request("POST", "/v1/job-types/list", headers={"Node-Id": "x" * 10000}, status=400)
    assert "Node-Id" in response.json["detail"] and len(response.json["detail"]) < 200


def test_a_client_whose_node_was_deleted_logs_in_and_registers_again(alice, anonymous, node):
    # The UFDL client keeps sending its node's Node-Id on every call, these two included.
    alice.delete(f"/v1/nodes/{node['pk']}")
    stale = {"Node-Id": str(node["pk"])}
    tokens = anonymous.post("/v1/auth/obtain", {"username": "alice", "password": "password123"},
                            headers=stale).json
    anonymous.post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, headers=stale)
    # With its token as well, which makes the Node-Id count elsewhere.
    alice.post("/v1/auth/obtain", {"username": "alice", "password": "password123"}, headers=stale)
    alice.post("/v1/auth/refresh", {"refresh": tokens["refresh"]}, headers=stale)
    alice.post("/v1/job-types/list", headers=stale, status=403)  # elsewhere the stale node is refused
    alice.post("/v1/nodes/create", {"ip": "10.0.0.9", "index": 0}, headers=stale, status=201)


def test_the_pk_of_a_deleted_node_is_never_given_again(alice, bob, admin, node):
    """SQLite handed out max(id) + 1: the next node registered took the deleted one's pk, and a worker still
    sending the old Node-Id acted as it (an admin's, as any node)."""
    alice.delete(f"/v1/nodes/{node['pk']}")
    again = bob.post("/v1/nodes/create", {"ip": "10.0.0.9", "index": 0}, status=201).json
    assert again["pk"] > node["pk"]
    admin.as_node(node["pk"]).post("/v1/job-types/list", status=403)


def test_node_id_without_credentials_is_still_401(anonymous, node):
    anonymous.as_node(node["pk"]).post("/v1/job-types/list", status=401)


def test_list_filters_on_owner_and_memory(alice, bob, node):
    bob.post("/v1/nodes/create", {"ip": "10.0.0.2", "index": 0, "gpu_mem": 8192}, status=201)
    mine = alice.post("/v1/nodes/list", {"expressions": [{"type": "exact", "field": "owner", "value": alice.user_id}]})
    assert [row["pk"] for row in mine.json] == [node["pk"]]
    big = alice.post("/v1/nodes/list", {"expressions": [{"type": "compare", "field": "gpu_mem", "operator": ">",
                                                         "value": 10000}]})
    assert [row["ip"] for row in big.json] == [NODE["ip"]]
    followed = alice.post("/v1/nodes/list", {"expressions": [{"type": "exact", "field": "owner.username",
                                                              "value": "bob"}]})
    assert [row["ip"] for row in followed.json] == ["10.0.0.2"]
    # Private columns cannot be reached, not even through a relation.
    alice.post("/v1/nodes/list", {"expressions": [{"type": "contains", "field": "owner.password_hash",
                                                   "sub_string": "$"}]}, status=400)


def test_a_node_pings_the_server_which_marks_it_seen(alice, bob, anonymous, node):
    """``GET /v1/nodes/ping`` (upstream's PingNodeViewSet): a node says it is alive; upstream answers 200 with an
    empty body. It was a 404 here."""
    as_node = alice.as_node(node["pk"])
    answer = as_node.get("/v1/nodes/ping", status=200)
    assert answer.body == b""
    seen = alice.get(f"/v1/nodes/{node['pk']}").json["last_seen"]
    assert seen is not None
    as_node.get("/v1/nodes/ping/", status=200)  # the python client's trailing slash
    assert alice.get(f"/v1/nodes/{node['pk']}").json["last_seen"] > seen
    # Only a node pings (upstream: IsNode), and only as a node of its user's.
    assert alice.get("/v1/nodes/ping", status=403).json == {"detail": "Only a node may ping: send its Node-Id"}
    bob.as_node(node["pk"]).get("/v1/nodes/ping", status=403)
    anonymous.as_node(node["pk"]).get("/v1/nodes/ping", status=401)
    assert "GET" in as_node.post("/v1/nodes/ping", {}, status=405).headers["Allow"]


def test_memory_in_bytes_past_32_bits_is_stored_and_filtered_on(alice):
    """The job launcher registers a node's memory in bytes (psutil's total): 64 GiB is past 2**31, which the
    column (and the body's check) refused. It is a 64-bit column now (migration 0007)."""
    big = 64 * 2**30
    body = {"ip": "10.0.0.7", "index": 0, "driver_version": None, "hardware_generation": None,
            "gpu_mem": 24 * 2**30, "cpu_mem": big}
    node = alice.post("/v1/nodes/create", body, status=201).json
    assert (node["gpu_mem"], node["cpu_mem"]) == (24 * 2**30, big)
    assert alice.get(f"/v1/nodes/{node['pk']}").json["cpu_mem"] == big
    assert alice.patch(f"/v1/nodes/{node['pk']}", {"cpu_mem": 2**63 - 1}).json["cpu_mem"] == 2**63 - 1
    alice.patch(f"/v1/nodes/{node['pk']}", {"cpu_mem": 2**63}, status=400)
    big_ones = {"expressions": [{"type": "compare", "field": "cpu_mem", "operator": ">", "value": 2**40}]}
    assert [row["pk"] for row in alice.post("/v1/nodes/list", big_ones).json] == [node["pk"]]
