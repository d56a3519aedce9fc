"""The job-types table: names of UFDL types mapped to the classes that implement them."""
import importlib
import re

from sqlalchemy import func, select

from ..errors import Conflict, InvalidInput
from ..models import JobOutput, JobType, TemplateTypeReference
from ..types import UFDLType, type_names
from .records import RecordService

_DOTTED = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


def import_type_class(pkg: str, cls: str) -> type:
    """The class named by (pkg, cls); ``cls`` is a path inside ``pkg``, optionally prefixed with ``pkg.``."""
    for label, value in (("pkg", pkg), ("cls", cls)):
        if not _DOTTED.match(value):
            raise InvalidInput(f"{label} {value!r} is not a dotted Python name")
    try:
        module = importlib.import_module(pkg)
    except Exception as error:  # any failure while importing a plugin's module is the caller's input error
        raise InvalidInput(f"Cannot import package '{pkg}': {type(error).__name__}: {error}") from None
    path = cls[len(pkg) + 1:] if cls.startswith(pkg + ".") else cls
    found = module
    for part in path.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise InvalidInput(f"Package '{pkg}' has no attribute '{path}' (cls {cls!r})")
    if not isinstance(found, type):
        raise InvalidInput(f"'{cls}' in package '{pkg}' is not a class")
    return found


def import_ufdl_type(name: str, pkg: str, cls: str) -> type[UFDLType]:
    """The UFDL type a job-types row names: (pkg, cls) must be a UFDL type class called ``name``. The API refuses
    (400) a row the type registry would skip, and the registry skips what this refuses: one rule, so that no
    row the API took leaves its name an unknown type."""
    found = import_type_class(pkg, cls)
    if not issubclass(found, UFDLType) or not hasattr(found, "name"):  # the UFDLType base itself has no name
        raise InvalidInput(f"'{cls}' in package '{pkg}' is not a UFDL type")
    if found.name != name:
        raise InvalidInput(f"'{cls}' in package '{pkg}' is the UFDL type '{found.name}', not '{name}'")
    return found


class JobTypeService(RecordService):
    model = JobType
    unique_together = (("name",),)
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "pkg", "cls"],
        "properties": {"name": {"type": "string", "pattern": r"\A[A-Za-z_][A-Za-z0-9_]*\Z", "maxLength": 200,
                                "description": "an identifier: letters, digits and '_', not starting with a digit"},
                       "pkg": {"type": "string", "minLength": 1, "maxLength": 200},
                       "cls": {"type": "string", "minLength": 1, "maxLength": 200}},
    }

    def check(self, data, row=None):
        # A PATCH is checked for the row it leaves.
        import_ufdl_type(*(data[name] if name in data else getattr(row, name) for name in ("name", "pkg", "cls")))
        if row is not None and any(data.get(name, getattr(row, name)) != getattr(row, name)
                                   for name in ("name", "pkg", "cls")):
            # Templates name the type and were checked against its class: renamed or re-pointed, they
            # would no longer resolve (as if it were deleted). Locked first, as for a deletion: an import naming
            # the type waits for the change, then finds the type gone.
            self.db.execute(select(JobType.id).where(JobType.id == row.id).with_for_update())
            self.check_unreferenced(row, "renamed or re-pointed")
        return data

    def check_unreferenced(self, row, change: str = "deleted"):
        templates = self.db.scalar(select(func.count()).select_from(TemplateTypeReference)
                                   .where(TemplateTypeReference.job_type_id == row.id))
        if templates:
            raise Conflict(f"Job type '{row.name}' is used by {templates} job template(s): it cannot be {change}")
        outputs = self._outputs_using(row.name)
        if outputs:
            raise Conflict(f"Job type '{row.name}' is the type of {outputs} job output(s): it cannot be {change}")

    def _outputs_using(self, name: str) -> int:
        """How many outputs (deleted ones too: they may be reinstated) have a type that mentions the name; they
        are found by it, which must keep resolving. Rare (an admin's change): the text narrows, parsing decides."""
        counted = (select(JobOutput.type, func.count()).where(JobOutput.type.contains(name, autoescape=True))
                   .group_by(JobOutput.type))
        return sum(count for type_string, count in self.db.execute(counted) if name in type_names(type_string))
