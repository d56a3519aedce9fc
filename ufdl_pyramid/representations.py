"""The JSON form of each model, as the v1 API answers it (field names follow the UFDL seeds)."""
from datetime import datetime, timezone

from .models import DataDomain, Framework, Job, JobOutput, JobTemplate, JobType, Licence, Node, User


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
            "last_seen": timestamp(node.last_seen), "current_job": node.current_job_id, "owner": node.owner_id}


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
