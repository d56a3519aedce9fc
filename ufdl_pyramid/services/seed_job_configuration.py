"""A Scale job type's configuration as the node running one of its jobs needs it: the settings (the secret ones
decrypted) and the mounts, for the Seed executor to give the container.

Only the node that holds the job, while it is QUEUED or RUNNING, gets it: secret values leave the server for the
one run that needs them and no one else. It is the job type's configuration at the moment the node asks (as
Scale takes the job type's at schedule time), narrowed to the settings and mounts that the job's revision's
manifest declares: an older revision's job gets nothing its own manifest does not name.
"""
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Forbidden, NotFound
from ..models import Job, SeedJobTypeRevision
from ..models.jobs import QUEUED, RUNNING
from .auth import ActingNode
from .seed_job_types import SecretBox


def _declared(manifest, kind: str) -> set[str]:
    """The names of the manifest's ``settings`` or ``mounts`` (validated when the job type was made)."""
    interface = ((manifest or {}).get("job") or {}).get("interface") or {}
    return {item["name"] for item in interface.get(kind) or () if isinstance(item, dict) and "name" in item}


class SeedJobConfiguration:
    def __init__(self, db: Session, secrets: SecretBox):
        self.db = db
        self.secrets = secrets

    def for_node(self, job: Job, node: ActingNode | None) -> dict:
        """``{"settings": {NAME: value}, "mounts": {NAME: {...}}}``; Scale's defaults (none of either) for what
        the configuration leaves out. Never logged: the values may be secret."""
        if node is None:
            raise Forbidden("Only a node may read a job's Seed configuration: send the Node-Id header")
        if job.node_id != node.id:
            raise Forbidden(f"Node {node.id} does not hold job {job.id}")
        if job.status not in (QUEUED, RUNNING):
            raise Forbidden(f"Job {job.id} is {job.status}: its Seed configuration is given only while it is "
                            f"QUEUED or RUNNING")
        revision = self.db.scalar(select(SeedJobTypeRevision).where(SeedJobTypeRevision.template_id == job.template_id))
        if revision is None:
            raise NotFound(f"Job {job.id} is not a Scale job type's job: it has no Seed configuration")
        job_type = revision.job_type
        configuration = job_type.configuration or {}
        settings = dict(configuration.get("settings") or {})
        if job_type.secrets is not None:
            settings.update(self.secrets.open(job_type.secrets))
        wanted_settings = _declared(revision.manifest, "settings")
        wanted_mounts = _declared(revision.manifest, "mounts")
        return {"settings": {name: value for name, value in settings.items() if name in wanted_settings},
                "mounts": {name: mount for name, mount in (configuration.get("mounts") or {}).items()
                           if name in wanted_mounts}}
