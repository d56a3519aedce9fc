"""Jobs: every user may read them."""
from pyramid.authorization import Allow, Authenticated

from ..models import Job
from ..permissions import Permission
from ..representations import job_json
from ..services.records import RecordService
from .base import Collection, Item


class JobRecords(RecordService):
    model = Job
    schema = {}


class JobItem(Item):
    pass


class Jobs(Collection):
    __acl__ = [(Allow, Authenticated, Permission.VIEW)]
    model = Job
    item_class = JobItem
    service_class = JobRecords
    represent = staticmethod(job_json)
