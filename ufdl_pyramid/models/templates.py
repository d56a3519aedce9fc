"""Job templates: workable (an executor class fulfilling a contract) or meta (a graph of child templates).

The columns hold what the API and the job creation read often (name, version, contract, the derived inputs,
outputs and parameters); ``spec`` holds the normalised ``specific`` part of the import document, so that export
gives back exactly what import accepts.
"""
from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, or_, text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .catalogue import DataDomain, Licence
from .meta import IDS_NEVER_REUSED, Base
from .mixins import SoftDeleteMixin

WORKABLE = "workable"
META = "meta"
SCOPES = ("public", "project", "user")


class JobTemplate(SoftDeleteMixin, Base):
    __tablename__ = "job_templates"
    __table_args__ = (
        # (name, version) is unique among active templates only: a soft-deleted version keeps its number.
        Index("uq_job_templates_active_name_version", "name", "version", unique=True,
              sqlite_where=text("deletion_time IS NULL"), postgresql_where=text("deletion_time IS NULL")),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[str] = mapped_column(String(16), default="public", info={"choices": SCOPES})
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domains.id"))
    licence_id: Mapped[int] = mapped_column(ForeignKey("licences.id"))
    kind: Mapped[str] = mapped_column(String(8), info={"choices": (WORKABLE, META)})
    # Workable templates only: the canonical contract type string and the executor.
    contract: Mapped[str | None] = mapped_column(String(1000), info={"api_name": "type"})  # answered as type
    contract_name: Mapped[str | None] = mapped_column(String(200), index=True)
    executor_class: Mapped[str | None] = mapped_column(String(200))
    required_packages: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict] = mapped_column(JSON)
    # Derived at import: {name: {types: [...], help}}, {name: type}, {name: parameter spec}.
    inputs: Mapped[dict] = mapped_column(JSON)
    outputs: Mapped[dict] = mapped_column(JSON)
    parameters: Mapped[dict] = mapped_column(JSON)

    domain: Mapped[DataDomain | None] = relationship(lazy="joined")
    licence: Mapped[Licence] = relationship(lazy="joined")

    # Upstream (Django) keeps workable and meta templates in sub-tables of the templates table, and its
    # clients filter on those sub-records: the job launcher polls with ``template.workabletemplate`` not null.
    # A list filter reads each of these names as the template's pk when the template is of that kind, else
    # null, as Django's reverse one-to-one would.
    subtype_fields = {"workabletemplate": WORKABLE, "metatemplate": META}

    @property
    def is_meta(self) -> bool:
        return self.kind == META

    def visible_to(self, user_id: int | None, is_admin: bool) -> bool:
        """A template of scope ``user`` is its creator's (and the admins'); the others are everyone's."""
        return is_admin or self.scope != "user" or (user_id is not None and self.creator_id == user_id)

    @classmethod
    def visible_condition(cls, user_id: int | None, is_admin: bool, entity=None):
        """`visible_to` in SQL, on ``entity`` (an alias of the table) or the table itself."""
        entity = cls if entity is None else entity
        return true() if is_admin else or_(entity.scope != "user", entity.creator_id == user_id)


class TemplateTypeReference(Base):
    """Which job types a template's type strings mention: a job type in use cannot be deleted."""

    __tablename__ = "job_template_type_refs"

    template_id: Mapped[int] = mapped_column(ForeignKey("job_templates.id", ondelete="CASCADE"), primary_key=True)
    job_type_id: Mapped[int] = mapped_column(ForeignKey("job_types.id"), primary_key=True, index=True)


class TemplateChild(Base):
    """The child templates a meta-template's graph uses: a child in use cannot be hard-deleted."""

    __tablename__ = "job_template_children"

    template_id: Mapped[int] = mapped_column(ForeignKey("job_templates.id", ondelete="CASCADE"), primary_key=True)
    node: Mapped[str] = mapped_column(String(200), primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("job_templates.id"), index=True)
