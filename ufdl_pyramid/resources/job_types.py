"""The v1 job-types table."""
from ..models import JobType
from ..representations import job_type_json
from ..services.job_types import JobTypeService
from .base import CreatableCollection, RecordItem
from .catalogue import READ_ONLY_FOR_USERS


class JobTypes(CreatableCollection):
    __acl__ = READ_ONLY_FOR_USERS
    model = JobType
    item_class = RecordItem
    service_class = JobTypeService
    represent = staticmethod(job_type_json)
