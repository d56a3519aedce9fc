"""Deleting and reinstating job templates (import is in templates.py: templates are never edited)."""
from sqlalchemy import func, select

from ..errors import Conflict
from ..models import DataDomain, Job, JobTemplate, Licence, SeedJobTypeRevision, TemplateChild
from .records import RecordService


class TemplateRecords(RecordService):
    model = JobTemplate
    schema = {}

    def destroy(self, template: JobTemplate):
        self._check_not_scale(template)
        return super().destroy(template)

    def check_unreferenced(self, template: JobTemplate) -> None:
        self._check_not_scale(template)
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
        # Its licence and domain must be active, as import asks: else it would export names that import refuses.
        # Share-locked: their deletion, which counts the active templates naming them, waits for the reinstatement.
        for model, pk, kind in ((Licence, template.licence_id, "licence"), (DataDomain, template.domain_id, "domain")):
            if pk is not None and self.db.scalar(select(model.id).where(model.id == pk, model.active())
                                                 .with_for_update(read=True)) is None:
                raise Conflict(f"Template {template.id}'s {kind} '{getattr(template, kind).name}' is deleted: "
                               f"reinstate the {kind} first")
        return super().reinstate(template)

    def _check_not_scale(self, template: JobTemplate) -> None:
        """The template of a Scale job type's revision (design notes §1) is the v6 API's: deleted, the revision
        could never run again, and nothing could make it anew."""
        revision = self.db.scalar(select(SeedJobTypeRevision).where(SeedJobTypeRevision.template_id == template.id)
                                  .limit(1))
        if revision is not None:
            job_type = revision.job_type
            raise Conflict(f"Template {template.id} is revision {revision.revision_num} of the Scale job type "
                           f"'{job_type.name}' {job_type.version}: the v6 API owns it. Pause or deactivate the job "
                           f"type instead (PATCH /v6/job-types/{job_type.name}/{job_type.version}/ with is_paused "
                           "or is_active)")
