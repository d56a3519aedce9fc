"""Create-job asks the job's executor (``Executor.check_job``) whether it could ever run the job, when the
executor is installed on the server too: a job its executor would refuse is a 400 now, not a failed job later.
The check may answer the job outputs the job would download (file inputs named inside a JSON value, which the
template's types cannot tell): each must exist, as a ``JobOutput<T>`` value must."""
import copy
import json
import logging
from collections.abc import Mapping

from sqlalchemy.orm import Session

from ..errors import InvalidInput
from ..executors import ExecutionError, merged_parameters
from ..models import JobTemplate
from .outputs import servable_output

log = logging.getLogger(__name__)


class ExecutorChecks:
    """``executors``: the executor classes installed on the server, by dotted name (the plugin registry's)."""

    def __init__(self, executors: Mapping[str, type], db: Session):
        self.executors = executors
        self.db = db

    def check(self, template: JobTemplate, input_values: dict, parameter_values: dict, where: str = "") -> None:
        """Raise ``InvalidInput`` (prefixed by ``where``) if the template's executor refuses the job of these
        checked ``{name: {value, type}}`` values, or names a job output that is not there. An executor not
        installed here checks nothing."""
        if template.is_meta:
            return
        executor = self.executors.get(template.executor_class)
        check = getattr(executor, "check_job", None)  # a registered class need not derive from Executor
        if check is None:
            return
        # The defaults in get-all-parameters' nested form: the worker merges that answer with the same code.
        defaults = {name: {"default": {"value": spec["default"]}} for name, spec in template.parameters.items()
                    if "default" in spec}
        parameters = merged_parameters({"parameter_values": parameter_values}, defaults)
        inputs = {name: entry["value"] for name, entry in input_values.items()}
        try:
            # Copies: the values are the job's and the template's own, which a check must not change.
            downloads = check(copy.deepcopy(parameters), copy.deepcopy(inputs))
        except ExecutionError as refusal:
            raise InvalidInput(f"{where}{template.executor_class} refuses the job: {refusal}") from None
        except Exception:  # a plugin's bug must not stop job creation: the job runs, and fails, as before
            log.exception("%s.check_job raised; job of template %s created unchecked", template.executor_class,
                          template.id)
            return
        if downloads is not None:
            self._check_downloads(template, downloads, where)

    def _check_downloads(self, template: JobTemplate, downloads, where: str) -> None:
        """``downloads``: what ``check_job`` answered, ``{what: [job-output pk, ...]}``."""
        try:
            named = [(str(what), pk) for what, pks in downloads.items() for pk in pks]
        except (AttributeError, TypeError):  # not such a mapping: the plugin's bug, as an exception above
            log.error("%s.check_job answered %.200r, not {what: [job-output pk, ...]}; job of template %s created "
                      "with its downloads unchecked", template.executor_class, downloads, template.id)
            return
        for what, pk in named:
            if servable_output(self.db, pk) is None:
                raise InvalidInput(f"{where}{what}: there is no job output {json.dumps(pk, default=str)[:100]}")
