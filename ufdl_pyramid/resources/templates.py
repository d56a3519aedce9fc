"""Job templates: users see public and project templates and their own; admins see all."""
from pyramid.authorization import Allow, Authenticated

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
        return row.visible_to(identity.user_id, identity.is_admin) if identity else row.visible_to(None, False)

    def query(self):
        identity = self.request.identity
        return super().query().where(JobTemplate.visible_condition(
            identity.user_id if identity else None, identity.is_admin if identity else False))
