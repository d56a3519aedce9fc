"""``ufdl events prune --older-than 30d``: delete old job events (the progress channel's outbox)."""
import sys

from ..services.events import parse_age, prune_events


def register(areas) -> None:
    events = areas.add_parser("events", help="manage the job events outbox")
    actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    prune = actions.add_parser("prune", help="delete events older than an age")
    prune.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 90m, 3600s")
    prune.set_defaults(handler=run_prune)


def run_prune(args, environment) -> int:
    try:
        age = parse_age(args.older_than)
    except ValueError:
        print(f"ufdl: --older-than must look like 30d, 12h, 15m or 90s, not {args.older_than!r}", file=sys.stderr)
        return 2
    with environment.session() as db:
        count = prune_events(db, age)
    print(f"pruned {count} event(s) older than {args.older_than}")
    return 0
