"""Job templates: users see public and project templates and their own; admins see all."""
from pyramid.authorization import Allow, Authenticated
from sqlalchemy import or_

from ..models import JobTemplate
from ..permissions import Permission
from ..representations import template_json
from ..services.template_records import TemplateRecords
from .base import Collection, SoftDeletableItem


class TemplateItem(SoftDeletableItem):
    pass


class JobTemplates(Collection):
    __acl__ = [(Allow, Authenticated, Permission.VIEW), (Allow, Authenticated, Permission.CREATE_JOB)]
    model = JobTemplate
    item_class = TemplateItem
    service_class = TemplateRecords
    represent = staticmethod(template_json)

    def can_see(self, row) -> bool:
        identity = self.request.identity
        return row.scope != "user" or (identity is not None and (identity.is_admin
                                                                or row.creator_id == identity.user_id))

    def query(self):
        query = super().query()
        identity = self.request.identity
        if identity is None or not identity.is_admin:
            query = query.where(or_(JobTemplate.scope != "user",
                                    JobTemplate.creator_id == (identity.user_id if identity else None)))
        return query
