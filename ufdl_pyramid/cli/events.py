"""``ufdl events prune --older-than 30d``: delete old job events (the progress channel's outbox)."""
import sys
from datetime import timedelta

from ..services.events import parse_age, prune_events


def register(areas) -> None:
    events = areas.add_parser("events", help="manage the job events outbox")
    actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    prune = actions.add_parser("prune", help="delete events older than an age")
    prune.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 90m, 3600s")
    prune.set_defaults(handler=run_prune)


def age_option(text: str, *, zero: bool) -> timedelta | None:
    """``--older-than``'s age, or None (the usage error said) when it is no age, below 0, 0 unless ``zero``, or
    too large for a date. A negative age put the cutoff in the future: everything was older than it."""
    try:
        age = parse_age(text)
    except (ValueError, OverflowError):  # "soon"; "inf" and "1e300d" overflow timedelta
        age = None
    if age is None or age < timedelta(0) or (age == timedelta(0) and not zero):
        least = "of 0 or above" if zero else "above 0"
        print(f"ufdl: --older-than must be an age {least} such as 30d, 12h, 15m or 90s, not {text!r}",
              file=sys.stderr)
        return None
    return age


def run_prune(args, environment) -> int:
    age = age_option(args.older_than, zero=False)  # 0 would delete every event (the retention setting refuses it)
    if age is None:
        return 2
    with environment.session() as db:
        count = prune_events(db, age)
    print(f"pruned {count} event(s) older than {args.older_than}")
    return 0
