"""The JSON form of each model, as the v1 API answers it (field names follow the UFDL seeds)."""
from datetime import datetime

from .models import DataDomain, JobType, Licence, Node, User


def timestamp(value: datetime | None) -> str | None:
    """UTC in ISO 8601 with a Z, as the upstream server writes it."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


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
