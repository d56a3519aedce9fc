"""Deleting and reinstating job templates (import is in templates.py: templates are never edited)."""
from sqlalchemy import func, select

from ..errors import Conflict
from ..models import Job, JobTemplate, TemplateChild
from .records import RecordService


class TemplateRecords(RecordService):
    model = JobTemplate
    schema = {}

    def check_unreferenced(self, template: JobTemplate) -> None:
        jobs = self.db.scalar(select(func.count()).select_from(Job).where(Job.template_id == template.id))
        if jobs:
            raise Conflict(f"Template {template.id} is used by {jobs} job(s): hard-delete those first")
        parents = self.db.scalars(select(TemplateChild.template_id).where(TemplateChild.child_id == template.id)
                                  .distinct()).all()
        if parents:
            raise Conflict(f"Template {template.id} is a child of meta-template(s) "
                           f"{', '.join(map(str, sorted(parents)))}")

    def reinstate(self, template: JobTemplate):
        clash = self.db.scalar(select(JobTemplate.id).where(
            JobTemplate.name == template.name, JobTemplate.version == template.version, JobTemplate.active(),
            JobTemplate.id != template.id))
        if clash is not None:
            raise Conflict(f"Template '{template.name}' version {template.version} is already active "
                           f"(template {clash})")
        return super().reinstate(template)
