"""Permission names, as an enum so that a view cannot be declared with a mistyped one."""
from enum import StrEnum


class Permission(StrEnum):
    AUTHENTICATE = "authenticate"  # obtain/refresh a token: everyone
    VIEW = "view"  # list and retrieve
    CREATE = "create"
    EDIT = "edit"
    DELETE = "delete"  # soft delete, hard delete, reinstate
    CREATE_JOB = "create_job"  # run a template
    ACT = "act"  # a node's actions on a job (the service checks that the node holds it)
    CANCEL = "cancel"  # cancel a job: admins and the job's creator
    ADMIN = "admin"  # server-wide administration
    PROBE = "probe"  # the health check: everyone (a load balancer has no token)


ADMIN_ROLE = "role:admin"


def user_principal(user_id: int) -> str:
    return f"user:{user_id}"
