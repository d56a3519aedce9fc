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

    def _user(self):
        identity = self.request.identity
        return identity.user if identity else None

    def can_see(self, row) -> bool:
        user = self._user()
        return row.scope != "user" or (user is not None and (user.is_admin or row.creator_id == user.id))

    def query(self):
        query = super().query()
        user = self._user()
        if user is None or not user.is_admin:
            query = query.where(or_(JobTemplate.scope != "user",
                                    JobTemplate.creator_id == (user.id if user else None)))
        return query
