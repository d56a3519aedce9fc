"""``ufdl outputs sweep [--older-than 1h] [--dry-run]``: delete stored blobs that no output row refers to."""
import os
import sys

from ..services.outputs import sweep_blobs
from ..storage import storage_from_settings
from .events import age_option


def register(areas) -> None:
    outputs = areas.add_parser("outputs", help="manage the output storage")
    actions = outputs.add_subparsers(dest="action", metavar="ACTION", required=True)
    sweep = actions.add_parser("sweep", help="delete blobs that no output refers to (left by a crash)")
    sweep.add_argument("--older-than", default="1h", metavar="AGE",
                       help="only blobs last written this long ago (default 1h; e.g. 30d, 12h, 90m, 3600s)")
    sweep.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    sweep.set_defaults(handler=run_sweep)


def run_sweep(args, environment) -> int:
    age = age_option(args.older_than, zero=True)  # 0: every orphan, however recent
    if age is None:
        return 2
    storage = storage_from_settings(environment.settings)
    root = getattr(storage, "root", None)
    if root is not None and not os.path.exists(root):
        # Not an empty storage but the wrong place (a relative path from another working directory, say): the
        # sweep said "deleted 0 of 0 blob(s)", exit 0, for ever.
        print(f"ufdl: the output storage cannot be used: no directory {root!r} (ufdl.storage.path; the server "
              "creates it at its start)", file=sys.stderr)
        return 1
    tty = sys.stderr.isatty()
    counted = False

    def progress(checked: int, orphaned: int) -> None:
        # The listing streams (its length is unknown): a running count, rewritten in place on a terminal.
        nonlocal counted
        counted = True
        line = f"checked {checked} blob(s), {orphaned} orphaned"
        print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    failure = None
    try:
        checked, orphaned = sweep_blobs(environment.engine, storage, older_than=age.total_seconds(),
                                        dry_run=args.dry_run, progress=progress)
    except NotImplementedError as error:
        failure = str(error)
    except OSError as error:  # the storage's own error: its errno, reason and path say what to fix
        failure = f"the output storage cannot be used: {error}"
    if tty and counted:
        print(file=sys.stderr)  # ends the running count's line
    if failure is not None:
        print(f"ufdl: {failure}", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {orphaned} of {checked} blob(s) last written over {args.older_than} ago: no output refers to them")
    return 0
