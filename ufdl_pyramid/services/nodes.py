"""Worker nodes."""
import ipaddress

from ..errors import InvalidInput
from ..models import Node
from .records import RecordService

_OPTIONAL_TEXT = {"type": ["string", "null"], "maxLength": 32}
_OPTIONAL_MEMORY = {"type": ["integer", "null"], "minimum": 0, "maximum": 2**31 - 1}


class NodeService(RecordService):
    model = Node
    unique_together = (("ip", "index"),)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["ip", "index"],
        "properties": {"ip": {"type": "string", "maxLength": 39}, "index": {"type": "integer", "minimum": 0,
                                                                          "maximum": 1024},
                       "driver_version": _OPTIONAL_TEXT, "hardware_generation": _OPTIONAL_TEXT,
                       "gpu_mem": _OPTIONAL_MEMORY, "cpu_mem": _OPTIONAL_MEMORY},
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
