"""``ufdl jobs watch PK --url URL --token TOKEN``: follow a job's progress channel with a progress bar."""
import sys

import websocket

from ..client import ChannelRefused, watch_job


def register(areas) -> None:
    jobs = areas.add_parser("jobs", help="follow jobs")
    actions = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)
    watch = actions.add_parser("watch", help="print a job's progress until it ends")
    watch.add_argument("pk", type=int)
    watch.add_argument("--url", default="http://127.0.0.1:6544", help="the progress channel's base URL")
    watch.add_argument("--token", required=True, help="an access token")
    watch.add_argument("--after", type=int, default=None, help="replay the events after this id first")
    watch.add_argument("--follow-retries", action="store_true",
                       help="go on watching a FAILED job, which a reset or an abort may run again (default: stop)")
    watch.set_defaults(handler=run_watch)


def bar(progress: float, width: int = 30) -> str:
    filled = int(round(max(0.0, min(1.0, progress or 0.0)) * width))
    return "[" + "#" * filled + "." * (width - filled) + f"] {100 * (progress or 0):5.1f}%"


def run_watch(args, environment) -> int:
    status = None
    told = []

    def on_retry(error):  # once: a listener that is not there kept the command silent for 50 s
        if not told:
            told.append(error)
            print(f"ufdl: cannot reach the progress channel at {args.url} ({error}); trying again", file=sys.stderr,
                  flush=True)

    try:
        for message in watch_job(args.url, args.token, args.pk, after=args.after, on_retry=on_retry):
            status = message["status"]
            line = f"job {message['pk']} {bar(message['progress'])} {status:<9} {message['transition']}"
            if message.get("error"):
                line += f" ({message['error']})"
            print(line, flush=True)
            if status == "FAILED" and not args.follow_retries:
                break
    except ChannelRefused as error:
        print(f"ufdl: {error}", file=sys.stderr)
        return 1
    except (OSError, websocket.WebSocketException, ValueError) as error:
        # No listener there (after watch_job's reconnects), or a URL it cannot use: one line, not a traceback.
        print(f"ufdl: cannot watch job {args.pk} at {args.url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0 if status == "COMPLETED" else 1
