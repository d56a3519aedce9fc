"""``get-all-values/{TYPE}``: the records a server-resident type's values point at."""
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..models import DataDomain, Framework, Job, JobOutput, Licence
from ..representations import domain_json, framework_json, job_output_json, licence_json
from ..types import InvalidType, TypeInstance, TypeRegistry, is_subtype
from .type_registry import resolve


def _literal_args(instance: TypeInstance) -> list:
    return [argument.value for argument in instance.args]


def _domains(db: Session, registry, instance: TypeInstance) -> list[dict]:
    query = select(DataDomain).where(DataDomain.active()).order_by(DataDomain.id)
    names = _literal_args(instance)
    if names:
        query = query.where(DataDomain.name == names[0])
    return [domain_json(row) for row in db.scalars(query)]


def _frameworks(db: Session, registry, instance: TypeInstance) -> list[dict]:
    query = select(Framework).where(Framework.active()).order_by(Framework.id)
    for column, value in zip((Framework.name, Framework.version), _literal_args(instance)):
        query = query.where(column == value)
    return [framework_json(row) for row in db.scalars(query)]


def _licences(db: Session, registry, instance: TypeInstance) -> list[dict]:
    return [licence_json(row) for row in db.scalars(select(Licence).where(Licence.active()).order_by(Licence.id))]


def _job_outputs(db: Session, registry: TypeRegistry, instance: TypeInstance) -> list[dict]:
    """Outputs whose stored type is a subtype of T (all outputs when T is left out)."""
    wanted = instance.args[0] if instance.args else None

    def fits(type_text: str) -> bool:
        try:
            return is_subtype(registry.resolve(type_text), wanted)
        except InvalidType:  # a stored type that no longer resolves (its plugin is gone) matches nothing
            return False

    # Those served (services/outputs.py: ``withheld``): active, of a job not deleted.
    rows = db.scalars(select(JobOutput).join(Job, JobOutput.job_id == Job.id)
                      .where(JobOutput.active(), Job.deletion_time.is_(None)).order_by(JobOutput.id))
    return [job_output_json(row) for row in rows if wanted is None or fits(row.type)]


LISTERS = {"Domain": _domains, "Framework": _frameworks, "Licence": _licences, "JobOutput": _job_outputs}


def all_values(db: Session, registry: TypeRegistry, type_text: str) -> list[dict]:
    instance = resolve(registry, type_text, "TYPE")
    if not instance.cls.server_resident:
        raise InvalidInput(f"'{instance}' is not a server-resident type: its values are not kept on the server")
    lister = LISTERS.get(instance.name)
    if lister is None:
        raise InvalidInput(f"'{instance}' is server-resident, but this server keeps no {instance.name} records")
    return lister(db, registry, instance)
