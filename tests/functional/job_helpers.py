"""What the job tests share: a minimal workable template and registering a node to act as."""
from ufdl_pyramid.testing import ApiClient

ECHO = {"name": "echo", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"job_type": "Process<str, str>", "executor_class": "tests.Echo", "required_packages": "",
                     "parameters": {}}}


def register(client: ApiClient, ip: str = "10.0.0.1", index: int = 0) -> ApiClient:
    """A node registered by ``client``'s user; the returned client acts as it (sends its Node-Id)."""
    pk = client.post("/v1/nodes/create", {"ip": ip, "index": index}, status=201).json["pk"]
    return client.as_node(pk)
