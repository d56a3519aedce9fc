"""What the job tests share: minimal workable and meta templates, and registering a node to act as."""
from ufdl_pyramid.testing import ApiClient

ECHO = {"name": "echo", "version": 1, "scope": "public", "licence": "MIT",
        "specific": {"job_type": "Process<str, str>", "executor_class": "tests.Echo", "required_packages": "",
                     "parameters": {}}}
# A two-step meta-job: the first step's output is the second's input.
PRODUCE = {"name": "produce", "version": 1, "scope": "public", "licence": "MIT",
           "specific": {"job_type": "Process<str, BLOB>", "executor_class": "tests.Produce",
                        "required_packages": "", "parameters": {}}}
CONSUME = {"name": "consume", "version": 1, "scope": "public", "licence": "MIT",
           "specific": {"job_type": "Process<JobOutput<BLOB>, BLOB>", "executor_class": "tests.Consume",
                        "required_packages": "", "parameters": {"mode": {"types": ["str"], "help": "",
                                                                          "default": "fast"}}}}
PIPELINE = {"name": "pipeline", "version": 1, "scope": "public", "licence": "MIT",
            "specific": {"nodes": {"first": {"name": "produce"}, "second": {"name": "consume"}},
                         "dependencies": [{"from_node": "first", "from_output": "output", "to_node": "second",
                                           "to_input": "input"}]}}


def register(client: ApiClient, ip: str = "10.0.0.1", index: int = 0) -> ApiClient:
    """A node registered by ``client``'s user; the returned client acts as it (sends its Node-Id)."""
    pk = client.post("/v1/nodes/create", {"ip": ip, "index": index}, status=201).json["pk"]
    return client.as_node(pk)
