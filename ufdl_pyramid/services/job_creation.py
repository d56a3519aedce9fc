"""``create-job``: checking a job's inputs and parameters against its template (and its executor's own rules),
and creating the job (for a meta-template: the parent and every child that waits on no other)."""
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ..errors import InvalidInput, NotFound
from ..models import Job, JobTemplate
from ..models.meta import utcnow
from ..types import is_subtype
from .executor_checks import ExecutorChecks
from .notifications import actions_schema
from .outputs import servable_output
from .templates import TemplateService
from .type_registry import resolve
from .validation import compile_schema, validate

_OVERRIDE = {"type": "object", "additionalProperties": False, "properties": {
    "actions": actions_schema(), "keep_default": {"type": "boolean"}}}
_VALUE_AND_TYPE = {"type": "object", "additionalProperties": False, "required": ["value", "type"],
                   "properties": {"value": True, "type": {"type": "string", "minLength": 1, "maxLength": 1000}}}
CREATE_JOB = compile_schema({
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "input_values": {"type": "object", "maxProperties": 200, "additionalProperties": _VALUE_AND_TYPE},
        "parameter_values": {"type": ["object", "null"], "maxProperties": 200,
                             "additionalProperties": _VALUE_AND_TYPE},
        "description": {"type": "string", "maxLength": 100000},
        "notification_override": _OVERRIDE,
        "child_notification_overrides": {"type": "object", "additionalProperties": _OVERRIDE},
    },
})


class JobCreator:
    def __init__(self, db: Session, templates: TemplateService, checks: ExecutorChecks):
        self.db = db
        self.templates = templates
        self.checks = checks

    def create(self, template: JobTemplate, body, creator_id: int) -> Job:
        validate(CREATE_JOB, body)
        # Share-locked until the job commits (a template's deletion takes the row's update lock): a registry
        # prune deciding whether the template has jobs waits for this one, or this waits for the prune and sees
        # the template deleted. The job's foreign key alone takes a lock the deletion's update does not wait for.
        locked = self.db.execute(select(JobTemplate.deletion_time).where(JobTemplate.id == template.id)
                                 .with_for_update(read=True)).first()
        if locked is None:
            raise NotFound(f"Template {template.id} was deleted at the same moment")
        if locked.deletion_time is not None:
            raise InvalidInput(f"Template {template.id} is deleted: reinstate it to create jobs from it")
        values = self.job_values(template, body)
        template_id = template.id  # the session cannot read it again after a failed flush
        job = Job(template_id=template_id, creator_id=creator_id, last_status_change=utcnow(), **values)
        self.db.add(job)
        try:
            self.db.flush()
        except IntegrityError:
            # The template was read before another request deleted it for good; its row is gone now.
            raise NotFound(f"Template {template_id} was deleted at the same moment") from None
        set_committed_value(job, "outputs", [])  # a new job has none: answering it needs no query for them
        if template.is_meta:
            # The first steps are checked as they are made: a refusal is this request's 400, nothing created.
            create_ready_children(self.db, job, template, values["input_values"], values["parameter_values"] or {},
                                  values["notification_override"] or {}, self.checks)
        return job

    def job_values(self, template: JobTemplate, body: dict) -> dict:
        """The new job's description, inputs, parameters and notification settings from a create-job body
        (already checked against ``CREATE_JOB``), checked against the template and its executor."""
        inputs = self._check_inputs(template, body.get("input_values", {}))
        parameters = self._check_parameters(template, body.get("parameter_values") or {})
        self._check_child_overrides(template, body.get("child_notification_overrides"))
        self.checks.check(template, inputs, parameters)
        notifications = {key: body[key] for key in ("notification_override", "child_notification_overrides")
                         if key in body}
        return {"description": body.get("description", ""), "input_values": inputs,
                "parameter_values": parameters or None, "notification_override": notifications or None}

    @staticmethod
    def _check_child_overrides(template: JobTemplate, overrides: dict | None) -> None:
        """Each key names a child: a graph node, or a child template by name (else it would apply to nothing)."""
        if not overrides:
            return
        if not template.is_meta:
            raise InvalidInput("child_notification_overrides: only a meta-job has children")
        nodes = template.spec["nodes"]
        unknown = sorted(set(overrides) - set(nodes) - {spec["name"] for spec in nodes.values()})
        if unknown:
            raise InvalidInput(f"child_notification_overrides: {', '.join(unknown)} is no child of this graph")

    def _check_inputs(self, template: JobTemplate, given: dict) -> dict:
        unknown = sorted(set(given) - set(template.inputs))
        if unknown:
            raise InvalidInput(f"input_values: unknown input(s) {', '.join(unknown)} (the template takes: "
                               f"{', '.join(sorted(template.inputs)) or 'none'})")
        missing = sorted(set(template.inputs) - set(given))
        if missing:
            raise InvalidInput(f"input_values: missing input(s) {', '.join(missing)}")
        checked = {}
        for name, entry in given.items():
            where = f"input_values.{name}"
            type_text = self.templates.check_value(entry["value"], entry["type"], template.inputs[name]["types"],
                                                   where)
            value = self.templates.whole_number(entry["value"], type_text)
            self._check_job_output(value, type_text, where)
            checked[name] = {"value": value, "type": type_text}
        return checked

    def _check_job_output(self, value, type_text: str, where: str) -> None:
        """A JobOutput<T> value must name an existing, active output whose type is a T."""
        given = self.templates.registry.resolve(type_text)
        if given.name != "JobOutput":
            return
        output = servable_output(self.db, value)
        if output is None:
            raise InvalidInput(f"{where}: there is no job output {value}")
        if given.args:
            produced = resolve(self.templates.registry, output.type, where)
            if not is_subtype(produced, given.args[0]):
                raise InvalidInput(f"{where}: job output {value} is a '{produced}', not a '{given.args[0]}'")

    def _check_parameters(self, template: JobTemplate, given: dict) -> dict:
        unknown = sorted(set(given) - set(template.parameters))
        if unknown:
            raise InvalidInput(f"parameter_values: unknown parameter(s) {', '.join(unknown)}")
        checked = {}
        for name, spec in template.parameters.items():
            where = f"parameter_values.{name}"
            if name not in given:
                if "default" not in spec:
                    raise InvalidInput(f"{where}: required (it has no default)")
                continue
            if spec.get("const"):
                raise InvalidInput(f"{where}: the parameter is constant and cannot be set")
            entry = given[name]
            type_text = self.templates.check_value(entry["value"], entry["type"], spec["types"], where)
            value = self.templates.whole_number(entry["value"], type_text)
            self._check_job_output(value, type_text, where)  # as for an input: one that exists, of its type
            checked[name] = {"value": value, "type": type_text}
        return checked


def create_ready_children(db: Session, parent: Job, template: JobTemplate, inputs: dict, parameters: dict,
                          notifications: dict, checks: ExecutorChecks | None = None) -> None:
    """Create the children whose inputs are all given now: those with no predecessor in the graph (each checked
    by its executor, with ``checks``)."""
    waiting = {dependency["to_node"] for dependency in template.spec["dependencies"]}
    for node, spec in template.spec["nodes"].items():
        if node in waiting:
            continue
        create_child_job(db, parent, node, spec, inputs, parameters, notifications, wired={}, checks=checks)


def active_child_template(db: Session, spec: dict) -> JobTemplate | None:
    """The active template a graph node names; None once it was deleted."""
    return db.scalar(select(JobTemplate).where(JobTemplate.name == spec["name"], JobTemplate.version == spec["version"],
                                               JobTemplate.active()))


def deleted_first_template(db: Session, spec: dict) -> dict | None:
    """Of the templates a job of graph node ``spec`` is created from at once (its own, and for an inner graph its
    first steps', at any depth), the spec of the first one no longer active; None if all are."""
    template = active_child_template(db, spec)
    if template is None:
        return spec
    if template.is_meta:  # recursion as deep as the graphs nest: MAX_NESTING at most
        waiting = {dependency["to_node"] for dependency in template.spec["dependencies"]}
        for node, inner in template.spec["nodes"].items():
            deleted = None if node in waiting else deleted_first_template(db, inner)
            if deleted is not None:
                return deleted
    return None


def create_child_job(db: Session, parent: Job, node: str, spec: dict, inputs: dict, parameters: dict,
                     notifications: dict, wired: dict, checks: ExecutorChecks | None = None) -> Job:
    """One child job of a meta-job, for graph node ``node``: its inputs and parameters are the parent's
    ``node:name`` ones, ``wired`` holds the inputs filled from predecessors' outputs. With ``checks`` (at the
    parent's create-job), the child's executor may refuse it: ``InvalidInput``."""
    child_template = active_child_template(db, spec)
    if child_template is None:
        raise InvalidInput(f"Child template '{spec['name']}' version {spec['version']} is no longer active")
    prefix = f"{node}:"
    child_inputs = {name[len(prefix):]: value for name, value in inputs.items() if name.startswith(prefix)}
    child_inputs.update(wired)
    child_parameters = {name[len(prefix):]: value for name, value in parameters.items()
                        if name.startswith(prefix)}
    for name, override in spec.get("parameter_default_overrides", {}).items():
        child_parameters.setdefault(name, override)
    if checks is not None:
        checks.check(child_template, child_inputs, child_parameters, f"graph node {node}: ")
    overrides = notifications.get("child_notification_overrides", {})
    override = overrides.get(node, overrides.get(spec["name"]))
    child = Job(template_id=child_template.id, parent_id=parent.id, graph_node=node,
                description=f"{node} of job {parent.id}", input_values=child_inputs,
                parameter_values=child_parameters or None,
                notification_override={"notification_override": override} if override else None,
                creator_id=parent.creator_id, last_status_change=utcnow(),
                # A step of a deleted meta-job (an admin aborted its failed step) is deleted with
                # it, and reinstated with it: no node takes it meanwhile.
                deletion_time=parent.deletion_time)
    db.add(child)
    db.flush()
    if child_template.is_meta:  # a graph inside the graph: its own first children start with it
        # With the child's own settings, as its later steps get them (``MetaJobOrchestrator``): overrides
        # name the children of one graph, so none reaches a graph nested in it.
        create_ready_children(db, child, child_template, child_inputs, child_parameters,
                              child.notification_override or {}, checks)
    return child
