"""``ufdl templates ...``: the templates registry (``<name>/<version>.yaml`` files kept in git).

Exit codes: 0 success (``diff``: nothing to do), 1 problems (invalid registry, conflicts, errors; nothing was
applied), 2 wrong usage, 3 (``diff`` only) sync would change something.
"""
import json
import sys
import urllib.error
import urllib.request

from ..errors import InvalidInput, ServiceError
from ..models import mark_written
from ..models.seed_job_types import SCALE_TEMPLATE_PREFIX
from ..plugins import load_plugins
from ..services.job_type_sync import sync_job_types_on
from ..services.template_documents import check_document, to_yaml
from ..services.template_registry import (NOTHING_TO_PRUNE_AGAINST, SETTINGS_FILE, Problem, RegistryConflicts,
                                          RegistryInvalid, RegistrySync, case_collision, case_collisions,
                                          deleted_children, export_documents, exported_keys, read_registry,
                                          registry_files, registry_warnings, summary, unchecked_offline,
                                          validate_offline, write_registry)
from ..services.validation import compile_schema
from ..worker.api import ApiError, ServerUnavailable, UfdlApi
from .environment import password_of

CHANGES_PENDING = 3

_REMOTE_HELP = ("act through the HTTP API of the server at URL (with --token or --username) instead of the database "
                "of -c INI")
# diff and sync send the registry to POST /v1/job-templates/sync; export only reads (it applies nothing).
_APPLY_REMOTELY = " (the server applies the registry in one transaction, as locally)"


def register(areas) -> None:
    area = areas.add_parser("templates", help="the templates registry: validate, diff, sync, export",
                            description=__doc__)
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", help="check a registry directory offline (no database, no server)")
    validate.add_argument("directory", metavar="DIR")
    validate.set_defaults(handler=run_validate)

    diff = actions.add_parser("diff", help="what sync would do (exit 3 if it would change something)")
    diff.add_argument("directory", metavar="DIR")
    diff.add_argument("--prune", action="store_true", help="also list server templates not in the registry")
    _remote_options(diff, _REMOTE_HELP + _APPLY_REMOTELY)
    diff.set_defaults(handler=run_diff)

    sync = actions.add_parser("sync", help="apply a registry in one transaction (all or nothing)")
    sync.add_argument("directory", metavar="DIR")
    sync.add_argument("--dry-run", action="store_true", help="do everything, then roll back")
    sync.add_argument("--prune", action="store_true",
                      help="soft-delete templates not in the registry (unless they have active jobs)")
    _remote_options(sync, _REMOTE_HELP + _APPLY_REMOTELY)
    sync.set_defaults(handler=run_sync)

    export = actions.add_parser("export", help="write the server's templates as a registry directory")
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--all-versions", action="store_true",
                        help="every active version (default: the latest of each, and the versions meta-templates "
                             "use)")
    _remote_options(export, _REMOTE_HELP + " (a request per template)")
    export.set_defaults(handler=run_export)


def _remote_options(parser, url_help: str) -> None:
    parser.add_argument("--url", help=url_help)
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--token", help="an admin's access token for --url")
    who.add_argument("--username", help="an admin's username for --url: log in with it")
    parser.add_argument("--password", help="with --username (default: the UFDL_PASSWORD environment variable)")


def _stray_remote_options(args) -> bool:
    """``--token``, ``--username`` or ``--password`` without ``--url`` (said, as a usage error): they were ignored,
    and the command acted on the INI's database, not on the server they were meant for."""
    stray = [flag for flag, value in (("--token", args.token), ("--username", args.username),
                                      ("--password", args.password)) if value is not None]
    if stray and not args.url:
        print(f"ufdl: {', '.join(stray)} without --url: give the server's --url, or leave them out to act on the "
              f"database of -c INI", file=sys.stderr)
        return True
    return False


def _remote(args) -> "RemoteServer":
    """The server of ``--url``, with ``--token`` or a token obtained by logging in as ``--username``."""
    token = args.token
    if args.username is not None:
        try:
            api = UfdlApi(args.url, args.username, password_of(args))
        except ValueError as error:  # not an http(s) URL
            raise ServiceError(f"cannot log in at {args.url}: {error}") from None
        try:
            api.login()
        except ApiError as error:
            raise ServiceError(f"cannot log in at {args.url} as {args.username}: {error.detail}") from None
        except (ValueError, ServerUnavailable) as error:  # ValueError: the answer is not JSON
            raise ServiceError(f"cannot log in at {args.url}: {error}") from None
        finally:
            api.close()
        token = api.access
    return RemoteServer(args.url, token)


def _problems(error: RegistryInvalid) -> int:
    for problem in error.problems:
        print(problem)
    return 1


class Progress:
    """``progress(done, total)``: a bar on stderr when it is a terminal; without one, a line every 10% for long
    runs."""

    def __init__(self, label: str, stream=None):
        self.stream = stream or sys.stderr
        self.label = label
        self.tty = self.stream.isatty()
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if not ((self.tty and total >= 20) or total >= 500):
            return
        if self.tty:
            filled = 30 * done // total
            self.stream.write(f"\r{self.label} [{'#' * filled}{' ' * (30 - filled)}] {done}/{total}")
            if done == total:
                self.stream.write("\n")
        elif 10 * done // total != self.last:
            self.last = 10 * done // total
            self.stream.write(f"{self.label}: {done}/{total}\n")
        self.stream.flush()


def run_validate(args, environment) -> int:
    try:
        registry = read_registry(args.directory)
    except RegistryInvalid as error:
        return _problems(error)
    plugins = load_plugins(strict=False)
    problems = validate_offline(registry, plugins.type_registry())
    warnings = registry_warnings(registry, plugins.executors)
    notes = sorted(unchecked_offline(registry).values(), key=lambda note: note.path.split("/"))
    for problem in problems + warnings + notes:
        print(problem)
    if not problems:
        print(f"{len(registry.entries)} template(s): valid"
              + (f", {len(warnings)} warning(s)" if warnings else "")
              + (f", {len(notes)} graph(s) not checked offline (they use Scale job types' templates, which live "
                 f"on the server)" if notes else ""), file=sys.stderr)
    return 1 if problems else 0


def _print_plan(plan: dict, show_identical: bool) -> None:
    """A plan (``Plan.as_json``, the server's answer remotely): a line per template, the conflicts' diffs."""
    for line in summary(plan):
        if show_identical or not line.startswith("identical"):
            print(line)
    for conflict in plan["conflicts"]:
        print(conflict["diff"], end="")
    print(f"{len(plan['create'])} to create, {len(plan['identical'])} identical, {len(plan['conflicts'])} "
          f"conflicting" + (f", {len(plan['prune'])} to prune, {len(plan['keep'])} kept"
                            if plan["prune"] or plan["keep"] else ""), file=sys.stderr)


def _conflicts(plan: dict) -> int:
    _print_plan(plan, show_identical=False)
    print("conflicts: nothing applied (a changed template needs a new version)", file=sys.stderr)
    return 1


def run_diff(args, environment) -> int:
    if _stray_remote_options(args):
        return 2
    # A dry-run sync, locally as on a server: what fails to import (a type no plugin knows) is a problem
    # here too, not a "create" that sync then refuses.
    try:
        if args.url:
            plan = _remote(args).sync(args.directory, args.prune, dry_run=True)
        else:
            # It imports what sync would, then rolls back: as long as a sync, so it shows its progress too.
            plan = _sync_locally(environment, args.directory, args.prune, True, Progress("checking"))
    except RegistryInvalid as error:
        return _problems(error)
    except RegistryConflicts as error:
        plan = error.plan
    _print_plan(plan, show_identical=True)
    if plan["conflicts"]:
        return 1
    return CHANGES_PENDING if plan["create"] or plan["prune"] else 0


def _sync_job_types(environment, db) -> None:
    """The job-types table as the server's start-up leaves it (templates name the installed plugins' types), in
    the sync's transaction: a dry run (``diff``) rolls it back with the rest."""
    synced = sync_job_types_on(db.connection(), load_plugins(environment.settings["ufdl.plugins.strict"]).types)
    if synced.added or synced.updated:
        mark_written(db)


class _DryRun(Exception):
    def __init__(self, plan: dict):
        super().__init__()
        self.plan = plan


def _sync_locally(environment, directory: str, prune: bool, dry_run: bool, progress=None) -> dict:
    """``sync`` on the INI's database in one transaction (rolled back for a dry run); the plan's JSON."""
    try:
        with environment.session() as db:
            _sync_job_types(environment, db)
            sync = RegistrySync(db)
            plan = sync.sync(sync.read(directory), prune, progress).as_json()
            if dry_run:
                raise _DryRun(plan)
    except _DryRun as rolled_back:
        plan = rolled_back.plan
    return plan


def run_sync(args, environment) -> int:
    if _stray_remote_options(args):
        return 2
    try:
        if args.url:
            plan = _remote(args).sync(args.directory, args.prune, args.dry_run)
        else:
            plan = _sync_locally(environment, args.directory, args.prune, args.dry_run, Progress("importing"))
    except RegistryConflicts as error:
        return _conflicts(error.plan)
    except RegistryInvalid as error:
        print("nothing applied:", file=sys.stderr)
        return _problems(error)
    _print_plan(plan, show_identical=False)
    if args.dry_run:
        print("dry run: rolled back", file=sys.stderr)
    return 0


def run_export(args, environment) -> int:
    if _stray_remote_options(args):
        return 2
    if args.url:
        files, orphans = _remote(args).export(args.all_versions, Progress("exporting"))
    else:
        with environment.session() as db:
            files, orphans = export_documents(db, args.all_versions)
    for names in case_collisions(path.split("/")[0] for path in files):
        print(f"warning: {case_collision(names)}", file=sys.stderr)
    # Written all the same: left out, the meta-template would be deleted by a `sync --prune` of DIR on this very
    # server. Kept in, DIR does not validate (nor sync) until someone decides: an exit 1 stops a pipeline.
    for orphan in orphans:
        meta = orphan.path.removesuffix(".yaml")
        print(f"warning: {orphan}: written all the same (left out, a sync --prune of {args.directory} would "
              f"delete {meta} here), but without the child's file a registry does not validate: reinstate the "
              f"child (then export again), or delete {meta} too", file=sys.stderr)
    try:
        written, problems = write_registry(args.directory, files)
    except OSError as error:  # DIR is a file, or cannot be made
        raise ServiceError(f"cannot write {args.directory}: {error.strerror or error}") from None
    failed = {problem.path: problem.message for problem in problems}
    for path in files:
        if path in failed:
            print(f"PROBLEM   {path} ({failed[path]})")
        elif path in written:
            print(f"wrote     {path}")
    # An earlier export's files of templates deleted since (or older versions) stay: a sync of DIR would create
    # them again. Said, not deleted: DIR may be a git checkout holding what the server never had.
    others = sorted(path for path in registry_files(args.directory)[0]
                    if path not in files and path != SETTINGS_FILE)
    for path in others:
        print(f"kept      {path} (not exported: left as it was)")
    print(f"{len(files)} template(s) exported, {len(written)} file(s) written"
          + (f", {len(others)} other file(s) left as they were" if others else "")
          + (f", {len(problems)} could not be written" if problems else "")
          + (f", {len({orphan.path for orphan in orphans})} meta-template(s) with a deleted child" if orphans
             else ""), file=sys.stderr)
    return 1 if problems or orphans else 0


_STRINGS = {"type": "array", "items": {"type": "string"}}
# What a ufdl server answers: anything else is another service's (a proxy's, a server of another API).
_PLAN = compile_schema({"type": "object", "required": ["create", "identical", "conflicts", "prune", "keep"],
                        "properties": {"create": _STRINGS, "identical": _STRINGS, "prune": _STRINGS,
                                       "keep": {"type": "object", "additionalProperties": {"type": "string"}},
                                       "conflicts": {"type": "array", "items": {
                                           "type": "object", "required": ["path", "reason", "diff"],
                                           "properties": {"path": {"type": "string"}, "reason": {"type": "string"},
                                                          "diff": {"type": "string"}}}}}})
_PROBLEMS = compile_schema({"type": "array", "items": {
    "type": "object", "properties": {"path": {"type": "string"}, "line": {"type": ["integer", "null"]},
                                     "message": {"type": "string"}}}})
_TEMPLATES = compile_schema({"type": "array", "items": {
    "type": "object", "required": ["pk", "name", "version"],
    "properties": {"pk": {"type": "integer"}, "name": {"type": "string"}, "version": {"type": "integer"}}}})


class RemoteServer:
    """The same actions through the v1 API (an admin's token): the server applies a registry in one transaction
    (``POST /v1/job-templates/sync``, a dry run for ``diff``); export reads its templates one by one."""

    def __init__(self, url: str, token: str | None):
        if not token:
            raise InvalidInput("--url needs --token or --username (an administrator's)")
        self.url = url.rstrip("/")
        self.token = token

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
                accept: str = "application/json"):
        try:
            request = urllib.request.Request(self.url + path, data=body, method=method, headers={
                "Authorization": f"Bearer {self.token}", "Accept": accept, "Content-Type": content_type})
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                answer = json.loads(error.read())
            except ValueError:
                answer = None
            answer = answer if isinstance(answer, dict) else {}
            # The server's registry errors become the ones a local run raises, and print the same.
            if "problems" in answer:
                problems = self.checked(_PROBLEMS, answer["problems"])
                raise RegistryInvalid([Problem(problem.get("path", ""), problem.get("line"),
                                               problem.get("message", "")) for problem in problems]) from None
            if error.code == 409 and "plan" in answer:
                raise RegistryConflicts(self.checked(_PLAN, answer["plan"])) from None
            detail = answer.get("detail", "")
            if error.code == 404 and not detail:  # a ufdl server says what it did not find
                detail = "(is this a ufdl server?)"
            raise ServiceError(f"{method} {path}: HTTP {error.code} {detail}".rstrip()) from None
        except urllib.error.URLError as error:
            raise ServiceError(f"{self.url}: {error.reason}") from None
        except json.JSONDecodeError:
            raise ServiceError(f"{self.url}: the answer is not JSON (is this a ufdl server?)") from None
        except ValueError as error:  # a malformed URL
            raise ServiceError(f"{self.url}: {error}") from None
        except OSError as error:  # the connection dropped or timed out while the answer was read
            raise ServiceError(f"{self.url}: {error}") from None

    def checked(self, schema, answer):
        """The answer, if it is one a ufdl server gives."""
        if not schema.is_valid(answer):
            raise self.not_ufdl()
        return answer

    def not_ufdl(self) -> ServiceError:
        return ServiceError(f"{self.url}: the answer is not a ufdl server's (is this a ufdl server?)")

    def sync(self, directory: str, prune: bool, dry_run: bool) -> dict:
        """The server's plan (``Plan.as_json``), applied unless ``dry_run``."""
        files, problems = registry_files(directory)
        if problems:  # unreadable or misplaced files: the server would not see them
            raise RegistryInvalid(problems)
        if prune and not set(files) - {SETTINGS_FILE}:  # as the server would refuse it, without sending
            raise InvalidInput(NOTHING_TO_PRUNE_AGAINST)
        body = json.dumps({"files": files, "prune": prune, "dry_run": dry_run}).encode()
        print(f"sending {len(files)} file(s) ({len(body) // 1024} KiB) to {self.url}", file=sys.stderr)
        plan = self.checked(_PLAN, self.request("POST", "/v1/job-templates/sync", body))
        plan.pop("applied", None)
        return plan

    def documents(self, progress=None) -> tuple[dict[tuple[str, int], dict], set[tuple[str, int]]]:
        """The documents of the templates a registry manages (as ``registry_templates``), and the keys of every
        active template, Scale job types' included."""
        rows = self.checked(_TEMPLATES, self.request("POST", "/v1/job-templates/list", b"{}"))
        active = {(row["name"], row["version"]) for row in rows}
        rows = [row for row in rows if not row["name"].startswith(SCALE_TEMPLATE_PREFIX)]  # as registry_templates
        documents = {}
        for count, row in enumerate(rows, 1):
            documents[(row["name"], row["version"])] = self.document(row["pk"])
            if progress:
                progress(count, len(rows))
        return documents, active

    def document(self, pk: int) -> dict:
        document = self.request("GET", f"/v1/job-templates/{pk}/export")
        try:
            check_document(document)
        except InvalidInput:
            raise self.not_ufdl() from None
        return document

    def export(self, all_versions: bool, progress=None) -> tuple[dict[str, str], list[Problem]]:
        """As ``export_documents``, through the API."""
        documents, active = self.documents(progress)
        nodes = {key: document["specific"].get("nodes", {}) for key, document in documents.items()}
        chosen = exported_keys(nodes, all_versions)
        return ({f"{name}/{version}.yaml": to_yaml(documents[(name, version)]) for name, version in sorted(chosen)},
                deleted_children(nodes, chosen, active))
