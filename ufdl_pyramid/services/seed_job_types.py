"""Scale job types (the v6 API): Seed images and their manifests by (name, version), with revisions.

A job type is created (or given a new revision) from a Seed manifest and a Docker image, and edited; the
listings page and filter as Scale's do. The values of secret settings are kept apart from the configuration,
encrypted with the server's Fernet key, and never returned by this API (only the node running one of the job
type's jobs gets them: seed_job_configuration.py).
"""
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Select, and_, case, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ConcurrentChange, InvalidInput, NotFound, ServiceUnavailable
from ..models import Node, SeedJobType, SeedJobTypeRevision
from ..models.meta import MAX_ID, utcnow
from ..models.seed_job_types import (DOCKER_IMAGE_LENGTH, ICON_CODE_LENGTH, NAME_LENGTH, SCALE_TEMPLATE_PREFIX,
                                     VERSION_LENGTH)
from .docker_references import IMAGE_REFERENCE, is_image_reference
from .listing import MAX_SUB_STRING
from .seed_validation import secret_setting_names, validate_configuration, validate_manifest, validate_runnable
from .templates import TemplateService
from .type_registry import type_registry
from .validation import compile_schema, validate

# Paths under /v6/job-types/ that are the API's own, not job type names (a job type may not take them).
RESERVED_NAMES = frozenset({"validation", "status", "pending", "running", "system-failures"})
INVALID_PAGE = "Invalid page."
MAX_PAGE_SIZE = 1000
# As many as a v1 list body's expressions: each is two LIKEs in one OR, which SQLite nests 1,000 deep at most.
MAX_KEYWORDS = 100
# Each is a LIKE pattern, which SQLite refuses over 50,000 bytes (a 500), as a list filter's ``contains``.
MAX_KEYWORD_LENGTH = MAX_SUB_STRING

# The fields ``order`` may name on the job-type list (Scale's), and on the list of names.
ORDER_FIELDS = {name: getattr(SeedJobType, name) for name in (
    "id", "name", "version", "title", "description", "icon_code", "is_published", "is_active", "is_paused",
    "is_system", "max_scheduled", "max_tries", "revision_num", "docker_image", "created", "deprecated", "paused",
    "last_modified")}
# The docs give order=name&order=version as the example for this list too: a name's versions make one entry
# (listed by precedence), so ordering by version orders nothing more there (None: taken, no clause).
NAME_ORDER_FIELDS = {"name": SeedJobType.name, "version": None}

_BOOLEAN = {"type": "boolean"}
_COMMON_FIELDS = {
    "icon_code": {"type": ["string", "null"], "maxLength": ICON_CODE_LENGTH},
    "is_published": _BOOLEAN, "is_active": _BOOLEAN, "is_paused": _BOOLEAN,
    "max_scheduled": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_ID},
    "docker_image": {"type": "string", "minLength": 1, "maxLength": DOCKER_IMAGE_LENGTH},
    # Their content is the Seed validation's to judge, which reports every problem by Scale's names.
    "manifest": {}, "configuration": {},
    "auto_update": _BOOLEAN,  # accepted as Scale does; there are no recipes here to update
}
CREATE = compile_schema({"type": "object", "additionalProperties": False, "required": ["docker_image", "manifest"],
                         "properties": _COMMON_FIELDS})
EDIT = compile_schema({"type": "object", "additionalProperties": False, "properties": _COMMON_FIELDS})
VALIDATE = compile_schema({"type": "object", "additionalProperties": False, "required": ["manifest"],
                           "properties": {"manifest": {}, "configuration": {}}})


# Each revision is a workable job template (design notes §1) of this form, named by the job type's id and
# versioned by the revision number. Its one input and output are JSON values, run by the Seed executor.
TEMPLATE_JOB_TYPE = "Process<JSON, JSON>"
TEMPLATE_EXECUTOR = "ufdl_seed.SeedExecutor"
TEMPLATE_LICENCE = "Proprietary"


def template_specific(revision: SeedJobTypeRevision) -> dict:
    """The revision's workable spec. The node running a job gets the image and the manifest from the template's
    parameters; they are constant, so that a job runs what its job type's revision names and no other image. A
    revision is made whenever either changes, so the template (immutable once it has jobs) stays true. The
    manifest holds no setting values: the secret ones are kept apart, encrypted, and only the node running a job
    gets them, when it runs it (seed_job_configuration.py)."""
    return {"job_type": TEMPLATE_JOB_TYPE, "executor_class": TEMPLATE_EXECUTOR, "required_packages": "",
            "parameters": {
                "seed_image": {"types": ["str"], "help": "The Seed image that the job runs (docker_image)",
                               "default": revision.docker_image, "default_type": "str", "const": True},
                "seed_manifest": {"types": ["JSON"], "help": "The Seed manifest of the image",
                                  "default": revision.manifest, "default_type": "JSON", "const": True}}}


def input_help(manifest: dict) -> str:
    """What the template's one input holds, from the manifest's interface (``get-inputs`` shows it): the Seed
    executor binds the input object's entries to the manifest's inputs by name (ufdl_seed/interface.py)."""
    job = manifest["job"]
    inputs = job.get("interface", {}).get("inputs", {})
    entries = []
    for entry in inputs.get("files", []):
        notes = ["a file" if not entry.get("multiple") else "files"]
        notes += ["optional"] if entry.get("required") is False else []
        notes += entry.get("mediaTypes") or []
        kind = "a list of job-output pks" if entry.get("multiple") else "a job-output pk"
        entries.append(f"{entry['name']}: {kind} ({', '.join(notes)})")
    for entry in inputs.get("json", []):
        optional = " (optional)" if entry.get("required") is False else ""
        entries.append(f"{entry['name']}: a JSON {entry['type']}{optional}")
    title = f"{job['name']} {job['jobVersion']}"
    if not entries:
        return f"{title} takes no inputs: an empty JSON object."
    return f"The inputs of {title}, a JSON object by name: {'; '.join(entries)}."


def template_name(job_type: SeedJobType) -> str:
    return f"{SCALE_TEMPLATE_PREFIX}{job_type.id}"


class InvalidSeed(InvalidInput):
    """A manifest or configuration that Seed validation refused: 400 with every error and warning."""

    def __init__(self, errors: list[dict], warnings: list[dict]):
        super().__init__("; ".join(f"{error['name']}: {error['description']}" for error in errors))
        self.extra = {"is_valid": False, "errors": errors, "warnings": warnings}


class SecretsUnavailable(ServiceUnavailable):
    """The server was given no key (or another one) to encrypt secret settings with: its configuration's fault,
    not the request's, and the same request succeeds once the key is set."""


NO_SECRET_KEY = ("Secret setting values cannot be stored: the server has no encryption key. Set "
                 "ufdl.seed.secret_key (or the environment variable UFDL_SEED_SECRET_KEY) to a Fernet key.")
NO_KEY_TO_READ = ("Secret setting values cannot be read: the server has no encryption key. Set "
                  "ufdl.seed.secret_key (or the environment variable UFDL_SEED_SECRET_KEY) to the Fernet key that "
                  "stored them.")
WRONG_SECRET_KEY = ("The stored secret setting values cannot be decrypted with the server's key "
                    "(ufdl.seed.secret_key was changed).")


@dataclass
class SecretBox:
    """Encrypts and decrypts the secret settings (a JSON object) with the server's Fernet key."""

    key: str | None

    @classmethod
    def from_settings(cls, settings: dict) -> "SecretBox":
        return cls(settings.get("ufdl.seed.secret_key"))

    def seal(self, values: dict) -> str:
        if self.key is None:
            raise SecretsUnavailable(NO_SECRET_KEY)
        return Fernet(self.key).encrypt(json.dumps(values).encode()).decode()

    def open(self, token: str) -> dict:
        if self.key is None:
            raise SecretsUnavailable(NO_KEY_TO_READ)
        try:
            return json.loads(Fernet(self.key).decrypt(token.encode()))
        except InvalidToken:
            raise SecretsUnavailable(WRONG_SECRET_KEY) from None


@dataclass
class Page:
    count: int
    items: list
    page: int
    page_size: int

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.count


def check_page(count: int, page: int, page_size: int) -> None:
    """Django's paginator: page 1 always exists (empty when nothing matches); any other past the end does not."""
    if page < 1 or (page > 1 and (page - 1) * page_size >= count):
        raise NotFound(INVALID_PAGE)


def page_of_query(db: Session, query: Select, page: int, page_size: int) -> Page:
    count = db.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    check_page(count, page, page_size)
    items = list(db.scalars(query.offset((page - 1) * page_size).limit(page_size)))
    return Page(count, items, page, page_size)


def page_of_list(items: list, page: int, page_size: int) -> Page:
    check_page(len(items), page, page_size)
    return Page(len(items), items[(page - 1) * page_size:page * page_size], page, page_size)


_SEMVER = re.compile(r"\A([0-9]+)\.([0-9]+)\.([0-9]+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?\Z")


def version_key(version: str) -> tuple:
    """Semantic versioning's precedence: numbers compare as numbers, a pre-release comes before its release
    (``1.0.0-alpha`` < ``1.0.0``), build metadata is ignored. A version of another form sorts first, by text."""
    match = _SEMVER.match(version)
    if match is None:
        return (0, version)
    major, minor, patch, pre = match.groups()
    identifiers = () if pre is None else tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in pre.split("."))
    return (1, int(major), int(minor), int(patch), pre is None, identifiers, version)


@dataclass
class Filters:
    keywords: list[str] = field(default_factory=list)
    ids: list[int] | None = None  # None: any id; []: none
    is_active: bool | None = None
    is_system: bool | None = None

    def conditions(self) -> list:
        conditions = []
        if self.keywords:
            # Case-insensitive LIKE on the name and the tags; % and _ are meant literally. The tags are kept one
            # per line: a keyword holding a line break would match the end of one tag and the start of another.
            conditions.append(or_(*(condition for keyword in self.keywords for condition in (
                func.lower(SeedJobType.name).contains(keyword.lower(), autoescape=True),
                func.lower(SeedJobType.tags).contains(keyword.lower(), autoescape=True) if "\n" not in keyword
                else false()))))
        if self.ids is not None:
            conditions.append(SeedJobType.id.in_(self.ids))
        if self.is_active is not None:
            conditions.append(SeedJobType.is_active.is_(self.is_active))
        if self.is_system is not None:
            conditions.append(SeedJobType.is_system.is_(self.is_system))
        return conditions


def order_clauses(order: list[str], fields: dict) -> list:
    """``order`` values (``-`` in front: descending) as ORDER BY clauses; an unknown field is a 400. A field
    named again changes nothing (and thousands of terms are more than SQLite takes). Nulls (``deprecated``,
    ``paused``, ...) sort above every value as on Scale's PostgreSQL, on SQLite too (which sorts them below)."""
    clauses, seen = [], set()
    for value in order:
        name = value.removeprefix("-")
        if name not in fields:
            raise InvalidInput(f"order: unknown field {name!r}; one of {', '.join(sorted(fields))}")
        if name not in seen and fields[name] is not None:
            seen.add(name)
            clauses.append(fields[name].desc().nulls_first() if value.startswith("-")
                           else fields[name].asc().nulls_last())
    return clauses


def scalar_resources(manifest: Any) -> dict[str, float]:
    """The manifest's scalar resources that ask for something (a positive number), by name."""
    job = manifest.get("job") if isinstance(manifest, dict) else None
    resources = job.get("resources") if isinstance(job, dict) else None
    scalars = resources.get("scalar") if isinstance(resources, dict) else None
    found = {}
    for resource in scalars if isinstance(scalars, list) else ():
        if not isinstance(resource, dict) or not isinstance(resource.get("name"), str):
            continue
        value = resource.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            found[resource["name"]] = value
    return found


@dataclass(frozen=True)
class Offer:
    """What the registered nodes offer of one resource, as acquiring judges it: the most any of them registered,
    and whether one did not say (it is not held back: it offers any amount)."""

    most: float | None
    unbounded: bool

    def meets(self, value: float) -> bool:
        return self.unbounded or (self.most is not None and self.most >= value)


@dataclass
class NodeCapacity:
    """What the registered nodes offer, for ``unmet_resources``: a resource is met when some node would not be
    held back by it (seed_scheduling.py); ``mem``, ``cpus`` and ``gpus`` are judged."""

    offers: dict[str, Offer]

    @classmethod
    def read(cls, db: Session) -> "NodeCapacity":
        gpus_untold = and_(Node.gpus.is_(None), Node.gpu_mem > 0)  # one GPU at least, of no known count
        row = db.execute(select(
            func.max(Node.cpu_mem), func.count(Node.id) - func.count(Node.cpu_mem),
            func.max(Node.cpus), func.count(Node.id) - func.count(Node.cpus),
            func.max(Node.gpus), func.count(case((gpus_untold, 1))))).one()
        memory, memory_untold, cpus, cpus_untold, gpus, gpus_untold_count = row
        return cls({"mem": Offer(None if memory is None else memory / 2**20, memory_untold > 0),
                    "cpus": Offer(cpus, cpus_untold > 0), "gpus": Offer(gpus, gpus_untold_count > 0)})

    # Every node is taken to offer these (nodes do not report them); a resource of any other name is unmet.
    ASSUMED = frozenset({"disk", "sharedMem"})

    def unmet(self, manifest: Any) -> str | None:
        """The manifest's scalar resources that no node offers, comma-separated (None: all are met)."""
        unmet = [name for name, value in scalar_resources(manifest).items()
                 if name not in self.ASSUMED and not (name in self.offers and self.offers[name].meets(value))]
        return ",".join(unmet) or None


def validation_result(manifest: Any, configuration: Any, *,
                      check_runnable: bool = True) -> tuple[list[dict], list[dict]]:
    """Every error and warning of a manifest and a configuration for it (design notes §7: every error, so a
    configuration's own are reported beside an invalid manifest's; its warnings need a valid manifest).
    ``check_runnable``: False for a stored manifest, which may predate those checks (``validate_runnable``)."""
    errors, warnings = validate_manifest(manifest)
    manifest_is_valid = not errors
    if manifest_is_valid:
        errors = _unacceptable(_job(manifest)) + (validate_runnable(manifest) if check_runnable else [])
    config_errors, config_warnings = validate_configuration(configuration, manifest,
                                                            manifest_is_valid=manifest_is_valid)
    return errors + config_errors, warnings + config_warnings


def _unacceptable(job: dict) -> list[dict]:
    """What the Seed standard allows and this server cannot take: a name that is one of the API's own paths, a
    name or version too long to store. Validation says so too, so that what it passes can be created."""
    name, version = job["name"], job["jobVersion"]
    errors = []
    if name in RESERVED_NAMES:
        errors.append({"name": "INVALID_JOB_TYPE_NAME", "description": (
            f"The job type name {name!r} is reserved by the API ({', '.join(sorted(RESERVED_NAMES))})")})
    if len(name) > NAME_LENGTH:
        errors.append({"name": "INVALID_JOB_TYPE_NAME", "description": (
            f"job.name has {len(name)} characters: at most {NAME_LENGTH} are stored")})
    if len(version) > VERSION_LENGTH:
        errors.append({"name": "INVALID_JOB_TYPE_VERSION", "description": (
            f"job.jobVersion has {len(version)} characters: at most {VERSION_LENGTH} are stored")})
    return errors


def image_errors(body: dict) -> list[dict]:
    """The body's ``docker_image``, if given, must be an image reference: ``docker run`` reads it as an argument,
    where ``--privileged`` would be an option."""
    image = body.get("docker_image")
    if image is None or is_image_reference(image):
        return []
    shown = json.dumps(image if len(image) <= 80 else image[:77] + "...")
    return [{"name": "INVALID_DOCKER_IMAGE", "description": f"docker_image {shown} must be {IMAGE_REFERENCE}"}]


def _job(manifest: dict) -> dict:
    return manifest["job"]


def _tags(manifest: dict) -> str:
    tags = _job(manifest).get("tags")
    return "\n".join(tag for tag in tags if isinstance(tag, str)) if isinstance(tags, list) else ""


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


class SeedJobTypeService:
    def __init__(self, db: Session, secrets: SecretBox):
        self.db = db
        self.secrets = secrets

    # Reads

    def find(self, name: str, version: str) -> SeedJobType | None:
        return self.db.scalar(select(SeedJobType).where(SeedJobType.name == name, SeedJobType.version == version))

    def versions(self, name: str) -> list[SeedJobType]:
        """The versions of one name, newest first by semantic-version precedence (Scale's view lists them by
        -version, newest first, but compares them as text: 1.10.0 before 1.9.0)."""
        query = select(SeedJobType).where(SeedJobType.name == name)
        return sorted(self.db.scalars(query), key=lambda row: version_key(row.version), reverse=True)

    def list_query(self, filters: Filters, order: list[str]) -> Select:
        # The id last, so that rows alike in every ordered field keep one order from page to page.
        ordering = order_clauses(order, ORDER_FIELDS) or [SeedJobType.name.asc(), SeedJobType.version.asc()]
        return select(SeedJobType).where(*filters.conditions()).order_by(*ordering, SeedJobType.id.asc())

    def names_page(self, filters: Filters, order: list[str], page: int, page_size: int) -> Page:
        """The names with a version that matches, each with its matching versions (by precedence)."""
        ordering = order_clauses(order, NAME_ORDER_FIELDS) or [SeedJobType.name.asc()]
        names = select(SeedJobType.name).where(*filters.conditions()).group_by(SeedJobType.name).order_by(*ordering)
        found = page_of_query(self.db, names, page, page_size)
        rows = self.db.scalars(select(SeedJobType).where(SeedJobType.name.in_(found.items), *filters.conditions()))
        by_name: dict[str, list] = {name: [] for name in found.items}
        for row in rows:
            by_name[row.name].append(row)
        found.items = [sorted(versions, key=lambda row: version_key(row.version)) for versions in by_name.values()]
        return found

    def revision(self, job_type: SeedJobType, revision_num: int) -> SeedJobTypeRevision | None:
        return self.db.scalar(select(SeedJobTypeRevision).where(
            SeedJobTypeRevision.job_type_id == job_type.id, SeedJobTypeRevision.revision_num == revision_num))

    def revisions_query(self, job_type: SeedJobType) -> Select:
        # Newest first, as Scale lists them (its docs say no order; its view orders by -revision_num).
        return (select(SeedJobTypeRevision).where(SeedJobTypeRevision.job_type_id == job_type.id)
                .order_by(SeedJobTypeRevision.revision_num.desc()))

    # Validation, creation, editing

    def validate(self, body) -> tuple[list[dict], list[dict]]:
        validate(VALIDATE, body)
        return validation_result(body["manifest"], body.get("configuration"))

    def create(self, body) -> tuple[SeedJobType, bool, list[dict]]:
        """A new job type (revision 1), or the existing (name, version) updated: a new revision when its
        manifest or image changed. Returns the row, whether it is new, and the warnings."""
        validate(CREATE, body)
        manifest = body["manifest"]
        errors, warnings = validation_result(manifest, body.get("configuration"))
        errors += image_errors(body)
        if errors:
            raise InvalidSeed(errors, warnings)
        name, version = _job(manifest)["name"], _job(manifest)["jobVersion"]
        row = self.db.scalar(select(SeedJobType).where(SeedJobType.name == name, SeedJobType.version == version)
                             .with_for_update())
        created = row is None
        self._new_revisions: list[SeedJobTypeRevision] = []
        now = utcnow()  # one moment: a new job type's created and last_modified, and its first revision's created
        if created:
            row = SeedJobType(name=name, version=version, manifest=manifest, docker_image=body["docker_image"],
                              revision_num=1, is_system=False, is_published=False, is_active=True, is_paused=False,
                              max_tries=3, tags="", created=now)
            self.db.add(row)
            self._add_revision(row, 1, row.docker_image, manifest, now)
        self._apply(row, body, manifest, now)
        try:
            self.db.flush()
        except IntegrityError:
            # Another request created the same (name, version) at the same moment: run again, and update it.
            raise ConcurrentChange(f"The job type {name} {version} was created by another request at the same "
                                   "moment; try again.") from None
        self._make_templates(row)
        return row, created, warnings

    def edit(self, row: SeedJobType, body) -> list[dict]:
        """Changes the fields given; nothing is written unless all of it is valid. Returns the warnings."""
        validate(EDIT, body)
        # Edits of one job type take turns (PostgreSQL; SQLite's writers already do): two new revisions at once
        # would both be numbered from the same revision_num.
        self.db.refresh(row, with_for_update=True)
        manifest = body.get("manifest", row.manifest)
        configuration = body.get("configuration", row.configuration)
        # A stored manifest whose command or media types predate their checks stays editable (create-job
        # refuses its jobs).
        errors, warnings = validation_result(manifest, self._with_stored_secrets(row, configuration, manifest),
                                             check_runnable="manifest" in body)
        if not errors:
            job = _job(manifest)
            if (job.get("name"), job.get("jobVersion")) != (row.name, row.version):
                errors.append({"name": "MISMATCHED_JOB_TYPE", "description": (
                    f"The manifest's job.name and job.jobVersion ({job.get('name')!r}, {job.get('jobVersion')!r}) "
                    f"must be those of the job type edited ({row.name!r}, {row.version!r})")})
        errors += image_errors(body)  # only a new one: an image stored before the check was made stays editable
        if errors:
            raise InvalidSeed(errors, warnings)
        self._new_revisions = []
        self._apply(row, body, manifest, utcnow())
        self.db.flush()
        self._make_templates(row)
        return warnings

    def _with_stored_secrets(self, row: SeedJobType, configuration, manifest) -> Any:
        """The configuration as validation sees it: the secret settings whose values are stored (apart from it,
        encrypted, and kept when a configuration leaves them out) count as given, else every edit after one
        was stored would warn MISSING_SETTING."""
        if row.secrets is None or not isinstance(configuration, dict):
            return configuration
        settings = configuration.get("settings", {})
        if not isinstance(settings, dict):
            return configuration  # validation says what is wrong with it
        try:
            stored = set(self.secrets.open(row.secrets))
        except SecretsUnavailable:  # no key (or another one): saving will say so; validation need not
            stored = secret_setting_names(manifest)
        kept = {name: "" for name in stored & secret_setting_names(manifest) if name not in settings}
        return {**configuration, "settings": {**settings, **kept}} if kept else configuration

    def _add_revision(self, row: SeedJobType, number: int, docker_image: str, manifest: dict,
                      now: datetime) -> None:
        needs = scalar_resources(manifest)
        revision = SeedJobTypeRevision(job_type=row, revision_num=number, docker_image=docker_image,
                                       manifest=manifest, needed_mem_mib=needs.get("mem"),
                                       needed_cpus=needs.get("cpus"), needed_gpus=needs.get("gpus"), created=now)
        self.db.add(revision)
        self._new_revisions.append(revision)

    def _make_templates(self, row: SeedJobType) -> None:
        """The workable job template of each new revision (once the job type has its id)."""
        templates = TemplateService(self.db, type_registry(self.db))
        for revision in self._new_revisions:
            template, _ = templates.import_document({
                "name": template_name(row), "version": revision.revision_num,
                "description": f"Scale job type {row.name} {row.version}, revision {revision.revision_num}",
                "scope": "public", "domain": None, "licence": TEMPLATE_LICENCE,
                "specific": template_specific(revision)},
                None, scale=True)
            template.inputs = {**template.inputs, "input": {**template.inputs["input"],
                                                            "help": input_help(revision.manifest)}}
            revision.template_id = template.id
        self._new_revisions = []

    def _apply(self, row: SeedJobType, body: dict, manifest: dict, now: datetime) -> None:
        docker_image = body.get("docker_image", row.docker_image)
        if manifest != row.manifest or docker_image != row.docker_image:
            # What a revision records changed (identical content is no new revision).
            row.revision_num += 1
            self._add_revision(row, row.revision_num, docker_image, manifest, now)
        row.manifest, row.docker_image = manifest, docker_image
        job = _job(manifest)
        row.title, row.description, row.tags = _text(job.get("title")), _text(job.get("description")), _tags(manifest)
        for name in ("icon_code", "is_published"):
            if name in body:
                setattr(row, name, body[name])
        if "max_scheduled" in body:  # JSON Schema's integers include 5.0: kept as 5
            row.max_scheduled = None if body["max_scheduled"] is None else int(body["max_scheduled"])
        if "is_active" in body and body["is_active"] != row.is_active:
            # Scale: deprecated holds when it was last deactivated, and is cleared when it is active again.
            row.is_active, row.deprecated = body["is_active"], None if body["is_active"] else now
        if "is_paused" in body and body["is_paused"] != row.is_paused:
            row.is_paused, row.paused = body["is_paused"], now if body["is_paused"] else None
        stored_settings = (row.configuration or {}).get("settings")
        if "configuration" in body:
            self._configure(row, body["configuration"], manifest)
        elif isinstance(stored_settings, dict) and secret_setting_names(manifest) & stored_settings.keys():
            # The new manifest makes a stored setting secret: its value goes to the encrypted ones, else every GET
            # would answer it.
            self._configure(row, row.configuration, manifest)
        elif row.secrets is not None and not secret_setting_names(manifest):
            row.secrets = None  # the new manifest has no secret settings left
        row.last_modified = now

    def _configure(self, row: SeedJobType, configuration: dict | None, manifest: dict) -> None:
        """Stores the configuration without the secret settings' values; those given are encrypted, replacing
        the stored ones of the same names (a configuration that leaves a secret out keeps its stored value)."""
        if configuration is None:
            row.configuration, row.secrets = None, None
            return
        secret_names = secret_setting_names(manifest)
        settings = configuration.get("settings")
        given = {}
        if isinstance(settings, dict):
            given = {name: value for name, value in settings.items() if name in secret_names}
            configuration = {**configuration, "settings": {name: value for name, value in settings.items()
                                                           if name not in secret_names}}
        row.configuration = configuration
        if given or row.secrets is not None:
            kept = self.secrets.open(row.secrets) if row.secrets is not None else {}
            values = {name: value for name, value in {**kept, **given}.items() if name in secret_names}
            row.secrets = self.secrets.seal(values) if values else None

