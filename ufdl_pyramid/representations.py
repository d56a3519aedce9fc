"""The JSON form of each model, as the APIs answer it (field names follow the UFDL seeds for v1, Scale's for v6)."""
from datetime import datetime, timezone

from .models import (DataDomain, Framework, Job, JobOutput, JobTemplate, JobType, Licence, Node, SeedJobType,
                     SeedJobTypeRevision, User)


def timestamp(value: datetime | None) -> str | None:
    """UTC in ISO 8601 with a Z, as the upstream server writes it (whatever zone the value comes in)."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value is not None else None


def soft_delete_fields(row) -> dict:
    return {"creator": row.creator_id, "creation_time": timestamp(row.creation_time),
            "deletion_time": timestamp(row.deletion_time)}


def user_json(user: User) -> dict:
    return {"pk": user.id, "username": user.username, "email": user.email, "is_staff": user.is_admin,
            "is_active": user.is_active, "date_joined": timestamp(user.date_joined)}


def node_json(node: Node) -> dict:
    return {"pk": node.id, "ip": node.ip, "index": node.index, "driver_version": node.driver_version,
            "hardware_generation": node.hardware_generation, "gpu_mem": node.gpu_mem, "cpu_mem": node.cpu_mem,
            "cpus": node.cpus, "gpus": node.gpus, "last_seen": timestamp(node.last_seen), "current_job": node.current_job_id, "owner": node.owner_id}


def licence_json(licence: Licence) -> dict:
    return {"pk": licence.id, "name": licence.name, "url": licence.url, **soft_delete_fields(licence)}


def domain_json(domain: DataDomain) -> dict:
    return {"pk": domain.id, "name": domain.name, "description": domain.description,
            **soft_delete_fields(domain)}


def job_type_json(job_type: JobType) -> dict:
    return {"pk": job_type.id, "name": job_type.name, "pkg": job_type.pkg, "cls": job_type.cls}


def framework_json(framework: Framework) -> dict:
    return {"pk": framework.id, "name": framework.name, "version": framework.version,
            **soft_delete_fields(framework)}


def template_json(template: JobTemplate) -> dict:
    """The seed's fields, the workable or meta specifics, and the inputs and outputs a job must be given."""
    answer = {"pk": template.id, "name": template.name, "version": template.version,
              "description": template.description, "scope": template.scope,
              "domain": template.domain.name if template.domain else None, "licence": template.licence_id,
              **soft_delete_fields(template)}
    if template.is_meta:
        answer.update(nodes=template.spec["nodes"], dependencies=template.spec["dependencies"],
                      parameters=template.parameters)
    else:
        answer.update(type=template.contract, executor_class=template.executor_class,
                      required_packages=template.required_packages, parameters=template.parameters)
    answer.update(inputs=template.inputs, outputs=template.outputs)
    return answer


def job_output_json(output: JobOutput) -> dict:
    return {"pk": output.id, "job": output.job_id, "name": output.name, "type": output.type,
            "content_type": output.content_type, "size": output.size, **soft_delete_fields(output)}


def job_json(job: Job) -> dict:
    return {"pk": job.id,
            "template": {"pk": job.template.id, "name": job.template.name, "version": job.template.version},
            "parent": job.parent_id, "start_time": timestamp(job.start_time), "end_time": timestamp(job.end_time),
            "error_reason": job.error_reason, "input_values": job.input_values,
            "parameter_values": job.parameter_values, "node": job.node_id, "description": job.description,
            "outputs": [{"pk": output.id, "name": output.name, "type": output.type}
                        for output in job.outputs if output.is_active],
            "is_cancelled": job.is_cancelled, "status": job.status, "progress": job.progress,
            "last_status_change": timestamp(job.last_status_change), "error_category": job.error_category,
            **soft_delete_fields(job)}


# The v6 (Scale) API's job types. ``unmet`` is the job type's unmet resources (NodeCapacity.unmet).

def seed_job_type_json(row: SeedJobType) -> dict:
    """A job type in the list of every version."""
    return {"id": row.id, "name": row.name, "version": row.version, "title": row.title,
            "description": row.description, "icon_code": row.icon_code, "is_published": row.is_published,
            "is_active": row.is_active, "is_paused": row.is_paused, "is_system": row.is_system,
            "max_scheduled": row.max_scheduled, "revision_num": row.revision_num, "docker_image": row.docker_image,
            "created": timestamp(row.created), "deprecated": timestamp(row.deprecated),
            "paused": timestamp(row.paused), "last_modified": timestamp(row.last_modified)}


def seed_job_type_version_json(row: SeedJobType, unmet: str | None) -> dict:
    """A job type in the list of one name's versions."""
    return {**seed_job_type_json(row), "unmet_resources": unmet}


SCALE_DEFAULT_PRIORITY = 100


def scale_configuration_json(configuration: dict | None) -> dict:
    """A job type's configuration as Scale answers it: the members its v6 docs call required always there, with
    Scale's defaults (nothing mounted, set or sent to a workspace; priority 100) for those not given."""
    configuration = configuration or {}
    workspaces = configuration.get("output_workspaces", {})
    return {**configuration, "mounts": configuration.get("mounts", {}),
            "output_workspaces": {**workspaces, "outputs": workspaces.get("outputs", {})},
            "priority": configuration.get("priority", SCALE_DEFAULT_PRIORITY),
            "settings": configuration.get("settings", {})}


def seed_job_type_details_json(row: SeedJobType, unmet: str | None) -> dict:
    # The configuration is stored without the secret settings' values: none can be answered.
    return {**seed_job_type_version_json(row, unmet), "max_tries": row.max_tries, "manifest": row.manifest,
            "configuration": scale_configuration_json(row.configuration), "recipe_types": []}


def seed_job_type_names_json(versions: list[SeedJobType]) -> dict:
    """One name, from its versions in order of precedence: the fields are the latest one's."""
    latest = versions[-1]
    return {"name": latest.name, "title": latest.title, "description": latest.description,
            "icon_code": latest.icon_code, "is_published": latest.is_published,
            "versions": [row.version for row in versions], "latest_version": latest.version}


def seed_job_type_brief_json(row: SeedJobType, unmet: str | None) -> dict:
    """The job type as a revision (or a count) shows it."""
    return {"id": row.id, "name": row.name, "version": row.version, "title": row.title,
            "description": row.description, "is_active": row.is_active, "is_paused": row.is_paused,
            "is_published": row.is_published, "icon_code": row.icon_code, "unmet_resources": unmet}


def seed_job_type_revision_json(revision: SeedJobTypeRevision, unmet: str | None, *, details: bool = False) -> dict:
    answer = {"id": revision.id, "job_type": seed_job_type_brief_json(revision.job_type, unmet),
              "revision_num": revision.revision_num, "docker_image": revision.docker_image,
              "created": timestamp(revision.created)}
    return {**answer, "manifest": revision.manifest} if details else answer
