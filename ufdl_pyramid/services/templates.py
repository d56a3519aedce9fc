"""Job templates: importing (checking types, parameters and meta graphs), exporting, and the questions
clients ask of a template (its inputs, outputs, parameters, contract arguments).

A template version is immutable: importing the same name and version again with identical content is a no-op,
with different content a conflict.
"""
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from ..errors import ConcurrentChange, Conflict, InvalidInput
from ..models import DataDomain, JobTemplate, JobType, Licence, TemplateChild, TemplateTypeReference, User
from ..models.jobs import OUTPUT_NAME_LENGTH
from ..models.seed_job_types import SCALE_TEMPLATE_PREFIX
from ..models.templates import META, WORKABLE
from ..types import MAX_TYPE_LENGTH, AnyType, Contract, InvalidType, TypeInstance, TypeRegistry, is_subtype, type_names
from .template_documents import MAX_VERSION, check_document, is_meta, same_json
from .type_registry import resolve

# How deep graphs may nest (a meta-template of workable ones is 1 deep), and how many workable steps one may run
# in all, its inner graphs' included. Creating, finishing and deleting a nested job walks its levels: hundreds
# of them once exhausted Python's stack (a 500). A graph of graphs multiplies: 100 nodes of 100 nodes of 100
# steps would be a million jobs. No real graph comes near either limit.
MAX_NESTING = 50
MAX_STEPS = 1000


def check_json_value(value, schema: dict, where: str) -> None:
    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda error: list(error.path))
    if errors:
        raise InvalidInput(f"{where}: {errors[0].message}")


@dataclass
class NormalisedTemplate:
    """What an import document becomes once checked: the row's values and the stored document."""

    name: str
    version: int | None
    description: str
    scope: str
    domain: DataDomain | None
    licence: Licence
    kind: str
    spec: dict
    inputs: dict
    outputs: dict
    parameters: dict
    contract: TypeInstance | None = None
    executor_class: str | None = None
    required_packages: str = ""
    children: dict | None = None  # graph node -> child template
    depth: int = 0  # how deep its graph nests: 0 for a workable template, 1 for a graph of workable ones
    steps: int = 1  # the workable steps a job of it runs in all

    def document(self, version: int) -> dict:
        return {"name": self.name, "version": version, "description": self.description, "scope": self.scope,
                "domain": self.domain.name if self.domain else None, "licence": self.licence.name,
                "specific": self.spec}

    def type_strings(self) -> set[str]:
        strings = {str(self.contract)} if self.contract is not None else set()
        for parameter in self.parameters.values():
            strings.update(parameter["types"])
        for spec in self.inputs.values():
            strings.update(spec["types"])
        strings.update(self.outputs.values())
        return strings


def canonical(type_string: str, where: str) -> str:
    """A type string as normalising writes it, or a 400 naming ``where``: the canonical spelling (', ' between
    arguments) may outgrow the limit the text was checked against, and export writes it (the contract column holds
    it), so import must take it back. Checked in normalising, so that the offline ``validate`` refuses it too."""
    if len(type_string) > MAX_TYPE_LENGTH:
        raise InvalidInput(f"{where}: type {type_string[:60]}... is longer than {MAX_TYPE_LENGTH} characters once "
                           "written in canonical form")
    return type_string


def template_document(template: JobTemplate) -> dict:
    """The export form: exactly what import accepts."""
    return {"name": template.name, "version": template.version, "description": template.description,
            "scope": template.scope, "domain": template.domain.name if template.domain else None,
            "licence": template.licence.name, "specific": template.spec}


def check_not_scale_name(name: str) -> None:
    """Only the v6 API names templates so (its job types' revisions): a template imported as seed-job-type-5
    would stand in for job type 5's, or clash with it."""
    if name.startswith(SCALE_TEMPLATE_PREFIX):
        raise InvalidInput(f"name: template names beginning with '{SCALE_TEMPLATE_PREFIX}' are those of the Scale "
                           "v6 job types' revisions, made with them")


class TemplateService:
    def __init__(self, db: Session, registry: TypeRegistry):
        self.db = db
        self.registry = registry

    # Importing

    def import_document(self, document, user: User | None, *, scale: bool = False) -> tuple[JobTemplate, bool]:
        """The template the document describes, and whether it was created (False: identical one existed).
        ``scale``: the template of a v6 job type's revision, the only kind that may take their names."""
        normalised = self.normalise(document)
        if not scale:
            check_not_scale_name(normalised.name)
        self._lock_name(normalised.name)
        existing = self._existing_version(normalised)
        if existing is not None:
            if same_json(template_document(existing), normalised.document(existing.version)):
                return existing, False
            raise Conflict(f"Template '{normalised.name}' version {existing.version} already exists with "
                           "different content: a changed template needs a new version")
        version = normalised.version or self._next_version(normalised.name)
        template = JobTemplate(
            name=normalised.name, version=version, description=normalised.description, scope=normalised.scope,
            domain_id=normalised.domain.id if normalised.domain else None, licence_id=normalised.licence.id,
            kind=normalised.kind, contract=str(normalised.contract) if normalised.contract else None,
            contract_name=normalised.contract.name if normalised.contract else None,
            executor_class=normalised.executor_class, required_packages=normalised.required_packages,
            spec=normalised.spec, inputs=normalised.inputs, outputs=normalised.outputs,
            parameters=normalised.parameters, creator_id=user.id if user else None)
        self.db.add(template)
        try:
            self.db.flush()
        except IntegrityError:
            # Two imports of the same name raced for a version number: the retry sees the winner's row.
            raise ConcurrentChange(f"Template '{normalised.name}' was imported by another request at the same "
                                   "time") from None
        self._record_references(template, normalised)
        return template, True

    def _lock_name(self, name: str) -> None:
        """Imports of one name take turns (until commit), so that deciding "identical, or the next version"
        sees every earlier import. SQLite needs nothing: its writers already take turns."""
        if self.db.get_bind().dialect.name == "postgresql":
            self.db.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"template:{name}"})

    def _existing_version(self, normalised: NormalisedTemplate) -> JobTemplate | None:
        query = select(JobTemplate).where(JobTemplate.name == normalised.name, JobTemplate.active())
        if normalised.version is not None:
            return self.db.scalar(query.where(JobTemplate.version == normalised.version))
        # No version: the latest, if it is identical (so re-importing a document is a no-op); else a new one.
        latest = self.db.scalar(query.order_by(JobTemplate.version.desc()).limit(1))
        if latest is not None and same_json(template_document(latest), normalised.document(latest.version)):
            return latest
        return None

    def _next_version(self, name: str) -> int:
        highest = self.db.scalar(select(func.max(JobTemplate.version)).where(JobTemplate.name == name))
        if highest is not None and highest >= MAX_VERSION:
            # One past it could not be stored (PostgreSQL), nor exported and imported again.
            raise Conflict(f"Template '{name}' has a version {highest}, the highest a version may be: give the "
                           "version of a new one")
        return (highest or 0) + 1

    def _record_references(self, template: JobTemplate, normalised: NormalisedTemplate) -> None:
        names = set().union(*(type_names(text) for text in normalised.type_strings()))
        if names:
            # Share-locked, as the children: a job type's deletion that found no template naming it yet holds its
            # row, and the reference would then fail its foreign key. Gone once the lock is ours: the request runs
            # again, and the type is unknown.
            ids = dict(self.db.execute(select(JobType.name, JobType.id).where(JobType.name.in_(names))
                                       .with_for_update(read=True)).all())
            gone = sorted(name for name in names - ids.keys() if self.registry.get(name) is not AnyType)
            if gone:
                raise ConcurrentChange(f"Job type(s) {', '.join(gone)} were deleted while the template was imported")
            self.db.add_all(TemplateTypeReference(template_id=template.id, job_type_id=pk) for pk in ids.values())
        for node, child in (normalised.children or {}).items():
            self.db.add(TemplateChild(template_id=template.id, node=node, child_id=child.id))
        self.db.flush()

    def normalise(self, document) -> NormalisedTemplate:
        check_document(document)
        # Share-locked: a rename or deletion of the licence (or domain) that found no template naming it holds
        # its row; this waits for it, then no longer finds the name (catalogue.NamedByTemplates).
        licence = self.db.scalar(select(Licence).where(Licence.name == document["licence"], Licence.active())
                                 .with_for_update(read=True))
        if licence is None:
            raise InvalidInput(f"licence: unknown licence '{document['licence']}'")
        domain = None
        if document.get("domain") is not None:
            domain = self.db.scalar(select(DataDomain).where(DataDomain.name == document["domain"],
                                                             DataDomain.active()).with_for_update(read=True))
            if domain is None:
                raise InvalidInput(f"domain: unknown domain '{document['domain']}'")
        common = dict(name=document["name"], version=document.get("version"),
                      description=document.get("description", ""), scope=document["scope"], domain=domain,
                      licence=licence)
        specific = document["specific"]
        if is_meta(specific):
            return self._normalise_meta(specific, common)
        return self._normalise_workable(specific, common)

    def _normalise_workable(self, specific: dict, common: dict) -> NormalisedTemplate:
        contract = resolve(self.registry, specific["job_type"], "specific.job_type")
        if not issubclass(contract.cls, Contract):
            raise InvalidInput(f"specific.job_type: '{contract}' is not a contract")
        try:
            specialised = contract.cls.specialise(contract, self.registry)
        except InvalidType as error:  # a type its slots name is not registered (its job-types row deleted, say)
            raise InvalidInput(f"specific.job_type: the inputs and outputs of '{contract}' do not resolve: "
                               f"{error}") from None
        where = "specific.job_type"
        canonical(str(contract), where)
        inputs = {name: {"types": [canonical(str(option), f"{where} (input {name})") for option in options],
                         "help": contract.cls.inputs[name].help} for name, options in specialised.inputs.items()}
        outputs = {name: canonical(str(output), f"{where} (output {name})")
                   for name, output in specialised.outputs.items()}
        parameters = {name: self._normalise_parameter(parameter, f"specific.parameters.{name}")
                      for name, parameter in specific["parameters"].items()}
        spec = {"job_type": str(contract), "executor_class": specific["executor_class"],
                "required_packages": specific["required_packages"], "parameters": parameters}
        return NormalisedTemplate(**common, kind=WORKABLE, spec=spec, inputs=inputs, outputs=outputs,
                                  parameters=parameters, contract=contract,
                                  executor_class=specific["executor_class"],
                                  required_packages=specific["required_packages"])

    def _normalise_parameter(self, parameter: dict, where: str) -> dict:
        types = [canonical(str(resolve(self.registry, text, f"{where}.types[{i}]")), f"{where}.types[{i}]")
                 for i, text in enumerate(parameter["types"])]
        normalised = {"types": types, "help": parameter["help"]}
        if "default" in parameter:
            default_type = canonical(self.check_value(parameter["default"], parameter.get("default_type", types[0]),
                                                      types, f"{where}.default"), f"{where}.default_type")
            normalised.update(default=self.whole_number(parameter["default"], default_type), default_type=default_type)
        elif "default_type" in parameter:
            raise InvalidInput(f"{where}.default_type: given without a default")
        if parameter.get("const"):
            if "default" not in parameter:
                raise InvalidInput(f"{where}.const: a constant parameter needs a default")
            normalised["const"] = True
        return normalised

    def check_value(self, value, type_text, allowed: list[str], where: str) -> str:
        """Check that a value of the given type fits one of the allowed types; the canonical type string."""
        given = resolve(self.registry, type_text, f"{where} type")
        options = [self.stored_type(text) for text in allowed]
        if not any(is_subtype(given, option) for option in options):
            raise InvalidInput(f"{where}: type '{given}' is not one of {', '.join(allowed)}")
        check_json_value(value, given.json_schema(), f"{where}: value")
        return str(given)

    def whole_number(self, value, type_text: str):
        """The value as a job (or a template's default) keeps it: of a type whose values are integers (int, a
        primary key, JobOutput<T>), ``5.0``, which JSON Schema takes for an integer, is the integer 5 (the executor,
        or the output's lookup, would get a float)."""
        if isinstance(value, float) and value.is_integer():
            types = self.registry.resolve(type_text).json_schema().get("type")
            if "integer" in (types if isinstance(types, list) else [types]):
                return int(value)
        return value

    def _normalise_meta(self, specific: dict, common: dict) -> NormalisedTemplate:
        children: dict[str, JobTemplate] = {}
        nodes = {}
        for node, spec in sorted(specific["nodes"].items()):
            child = self._find_child(spec, f"specific.nodes.{node}")
            if child.scope == "user" and common["scope"] != "user":
                # Whoever may see the graph may run it: the child would reach users it is hidden from.
                raise InvalidInput(f"specific.nodes.{node}: template '{child.name}' is of scope user: only a "
                                   "meta-template of scope user may include it")
            children[node] = child
            nodes[node] = {"name": child.name, "version": child.version}
            overrides = spec.get("parameter_default_overrides")
            if overrides:
                for parameter, override in overrides.items():
                    where = f"specific.nodes.{node}.parameter_default_overrides.{parameter}"
                    if parameter not in child.parameters:
                        raise InvalidInput(f"{where}: template '{child.name}' has no parameter '{parameter}'")
                    if child.parameters[parameter].get("const"):
                        raise InvalidInput(f"{where}: the parameter is constant")
                    override["type"] = canonical(self.check_value(override["value"], override["type"],
                                                                  child.parameters[parameter]["types"], where),
                                                 f"{where}.type")
                    override["value"] = self.whole_number(override["value"], override["type"])
                nodes[node]["parameter_default_overrides"] = dict(sorted(overrides.items()))

        wired: set[tuple[str, str]] = set()
        dependencies = []
        for index, dependency in enumerate(specific["dependencies"]):
            where = f"specific.dependencies[{index}]"
            source, target = dependency["from_node"], dependency["to_node"]
            for end in (source, target):
                if end not in children:
                    raise InvalidInput(f"{where}: unknown node '{end}'")
            output, input_name = dependency["from_output"], dependency["to_input"]
            if output not in children[source].outputs:
                raise InvalidInput(f"{where}.from_output: template '{children[source].name}' has no output "
                                   f"'{output}'")
            if input_name not in children[target].inputs:
                raise InvalidInput(f"{where}.to_input: template '{children[target].name}' has no input "
                                   f"'{input_name}'")
            if (target, input_name) in wired:
                raise InvalidInput(f"{where}: input '{target}:{input_name}' is wired more than once")
            wired.add((target, input_name))
            produced = self.stored_type(f"JobOutput<{children[source].outputs[output]}>")
            accepted = [self.stored_type(text) for text in children[target].inputs[input_name]["types"]]
            if not any(is_subtype(produced, option) for option in accepted):
                raise InvalidInput(f"{where}: output '{source}:{output}' ({produced}) does not fit input "
                                   f"'{target}:{input_name}' ({', '.join(map(str, accepted))})")
            dependencies.append({key: dependency[key] for key in ("from_node", "from_output", "to_node",
                                                                    "to_input")})
        _check_acyclic(children, dependencies)
        deepest, steps = self._measure(children)
        if deepest + 1 > MAX_NESTING:
            raise InvalidInput(f"specific.nodes: graphs nest at most {MAX_NESTING} deep (a meta-template of workable "
                               "templates is 1 deep); this one would be deeper")
        if steps > MAX_STEPS:
            raise InvalidInput(f"specific.nodes: a graph runs at most {MAX_STEPS} workable steps in all, its inner "
                               f"graphs' included; this one would run {steps}")
        dependencies.sort(key=lambda d: (d["from_node"], d["from_output"], d["to_node"], d["to_input"]))

        inputs, parameters, outputs = {}, {}, {}
        for node, child in children.items():
            for name, spec in child.inputs.items():
                if (node, name) not in wired:
                    inputs[f"{node}:{name}"] = spec
            for name, spec in child.parameters.items():
                override = nodes[node].get("parameter_default_overrides", {}).get(name)
                if override is not None:
                    spec = {**spec, "default": override["value"], "default_type": override["type"]}
                parameters[f"{node}:{name}"] = spec
            for name, output_type in child.outputs.items():
                # The meta-job carries it under this name: one too long to store would fail its completion.
                if len(f"{node}:{name}") > OUTPUT_NAME_LENGTH:
                    raise InvalidInput(f"specific.nodes.{node}: the graph's output '{node}:{name}' would be longer "
                                       f"than an output name may be ({OUTPUT_NAME_LENGTH} characters)")
                outputs[f"{node}:{name}"] = output_type
        return NormalisedTemplate(**common, kind=META, spec={"nodes": nodes, "dependencies": dependencies},
                                  inputs=inputs, outputs=outputs, parameters=parameters, children=children,
                                  depth=deepest + 1, steps=steps)

    def _find_child(self, spec: dict, where: str) -> JobTemplate:
        # Share-locked until the graph commits: a deletion for good of the child waits, then finds it in the
        # graph (409). Else it could find it in no graph yet, and the graph's row naming it fail its foreign key.
        query = (select(JobTemplate).where(JobTemplate.name == spec["name"], JobTemplate.active())
                 .with_for_update(read=True, of=JobTemplate))
        if "version" in spec:
            child = self.db.scalar(query.where(JobTemplate.version == spec["version"]))
            if child is None:
                raise InvalidInput(f"{where}: no template '{spec['name']}' version {spec['version']}")
            return child
        child = self.db.scalar(query.order_by(JobTemplate.version.desc()).limit(1))
        if child is None:
            raise InvalidInput(f"{where}: no template '{spec['name']}'")
        return child

    def _measure(self, children: dict[str, JobTemplate]) -> tuple[int, int]:
        """The depth of the deepest of these templates' graphs (0: all workable) and their workable steps in all.
        Their graphs are read one query per level, no deeper than just past MAX_NESTING."""
        graphs: dict[int, list[int]] = {}  # a meta-template's id: its children's, one per graph node
        level = {child.id for child in children.values()}
        for _ in range(MAX_NESTING + 1):
            rows = self.db.execute(select(TemplateChild.template_id, TemplateChild.child_id)
                                   .where(TemplateChild.template_id.in_(level))).all()
            for template_id, child_id in rows:
                graphs.setdefault(template_id, []).append(child_id)
            level = {child_id for _, child_id in rows} - graphs.keys()
            if not level:
                break
        sizes: dict[int, tuple[int, int]] = {}

        def size(template_id: int) -> tuple[int, int]:  # recursion as deep as the graphs: MAX_NESTING at most
            if template_id not in sizes:
                parts = [size(child_id) for child_id in graphs.get(template_id, ())]
                sizes[template_id] = (1 + max(depth for depth, _ in parts), sum(steps for _, steps in parts)) \
                    if parts else (0, 1)
            return sizes[template_id]

        measured = [size(child.id) for child in children.values()]
        return max(depth for depth, _ in measured), sum(steps for _, steps in measured)

    # Questions about a template

    def contract_arguments(self, template: JobTemplate) -> dict[str, str]:
        """``get-types``: the contract's type-parameter names mapped to the template's arguments."""
        if template.contract is None:
            return {}
        contract = self.stored_type(template.contract)
        return {parameter.name: str(argument)
                for parameter, argument in zip(contract.cls.parameters, contract.args)}

    def parameters_with_schemas(self, template: JobTemplate) -> dict:
        """``get-all-parameters``: types mapped to their value schemas, and the default in nested form."""
        answer = {}
        for name, spec in template.parameters.items():
            entry = {"types": {text: self.stored_type(text).json_schema() for text in spec["types"]},
                     "help": spec["help"]}
            if "default" in spec:
                entry["default"] = {"value": spec["default"], "type": spec["default_type"],
                                    "schema": self.stored_type(spec["default_type"]).json_schema(),
                                    "const": spec.get("const", False)}
            answer[name] = entry
        return answer

    def matching(self, visible: Select, contract_name: str, wanted_inputs: dict[str, TypeInstance]) -> list:
        """``get-all-matching-templates``: of the templates the caller may see (``visible``), the active
        workable ones that fulfil the contract and take the given input types."""
        if contract_name not in self.registry or not issubclass(self.registry.get(contract_name), Contract):
            # A typo would otherwise look like "no template does this".
            raise InvalidInput(f"Unknown contract {contract_name!r}; the contracts are: "
                               f"{', '.join(self._contract_names())}")
        candidates = self.db.scalars(visible.where(JobTemplate.active(), JobTemplate.contract.is_not(None))
                                     .order_by(JobTemplate.id))
        return [template for template in candidates if self.matches(template, contract_name, wanted_inputs)]

    def matches(self, template: JobTemplate, contract_name: str, wanted_inputs: dict[str, TypeInstance]) -> bool:
        """Does the template fulfil the named contract and take each given input type?"""
        if template.contract is None:
            return False
        try:
            if not issubclass(self.registry.resolve(template.contract).cls, self.registry.get(contract_name)):
                return False
            for name, given in wanted_inputs.items():
                spec = template.inputs.get(name)
                if spec is None or not any(is_subtype(given, self.registry.resolve(text)) for text in spec["types"]):
                    return False
        except InvalidType:  # one of its types is no longer known: its jobs could not be created
            return False
        return True

    def stored_type(self, text: str) -> TypeInstance:
        """A type string a stored template holds, resolved; a Conflict once it no longer resolves (the plugin
        that provided one of its types was uninstalled, say): the template is of no use until it is back."""
        try:
            return self.registry.resolve(text)
        except InvalidType as error:
            shown = getattr(error, "name", text)
            raise Conflict(f"A template's type '{shown}' is no longer known to the server (is the plugin that "
                           f"provides it installed?): {error}") from None

    def _contract_names(self) -> list[str]:
        return [name for name in self.registry.names() if issubclass(self.registry.get(name), Contract)]


def _check_acyclic(children: dict, dependencies: list[dict]) -> None:
    """400 naming a cycle (``a -> b -> a``) if the graph has one."""
    edges: dict[str, set[str]] = {node: set() for node in children}
    for dependency in dependencies:
        edges[dependency["from_node"]].add(dependency["to_node"])
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for successor in sorted(edges[node]):
            if state.get(successor) == 1:
                cycle = path[path.index(successor):] + [successor]
                raise InvalidInput(f"specific.dependencies: the graph has a cycle: {' -> '.join(cycle)}")
            if successor not in state:
                visit(successor)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
