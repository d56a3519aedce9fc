"""Worker nodes."""
import ipaddress

from sqlalchemy import select

from ..errors import Conflict, InvalidInput
from ..models import Job, Node
from ..models.jobs import QUEUED, RUNNING
from .records import RecordService

MAX_INDEX = 1024  # a node's index: the highest a server takes
_OPTIONAL_TEXT = {"type": ["string", "null"], "maxLength": 32}
_OPTIONAL_MEMORY = {"type": ["integer", "null"], "minimum": 0, "maximum": 2**63 - 1}  # bytes, or MB
_OPTIONAL_COUNT = {"type": ["integer", "null"], "minimum": 0, "maximum": 2**31 - 1}


class NodeService(RecordService):
    model = Node
    unique_together = (("ip", "index"),)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["ip", "index"],
        "properties": {"ip": {"type": "string", "maxLength": 39}, "index": {"type": "integer", "minimum": 0,
                                                                          "maximum": MAX_INDEX},
                       "driver_version": _OPTIONAL_TEXT, "hardware_generation": _OPTIONAL_TEXT,
                       "gpu_mem": _OPTIONAL_MEMORY, "cpu_mem": _OPTIONAL_MEMORY,
                       "cpus": _OPTIONAL_COUNT, "gpus": _OPTIONAL_COUNT},
    }

    def check(self, data, row=None):
        values = dict(data)
        if "ip" in values:
            try:
                values["ip"] = str(ipaddress.ip_address(values["ip"]))
            except ValueError:
                raise InvalidInput(f"ip: {data['ip']!r} is not an IPv4 or IPv6 address") from None
        return values

    def new_row(self, values, user):
        # A node belongs to the user who registered it: only they (or an admin) may act as it.
        return Node(owner_id=user.id, **values)

    def check_unreferenced(self, row) -> None:
        # Deleted, it would leave its jobs held by no node, where no lease can expire: they would wait for ever.
        # The node's row is locked first (PostgreSQL), as its own requests lock it: an acquire that got in first
        # has committed when the check reads, and one that comes later waits, then finds no node.
        self.db.execute(select(Node.id).where(Node.id == row.id).with_for_update())
        held = self.db.scalar(select(Job.id).where(Job.node_id == row.id, Job.status.in_((QUEUED, RUNNING)))
                              .order_by(Job.id).limit(1))
        if held is not None:
            raise Conflict(f"Node {row.id} holds job {held}: release, finish or abort it first")
