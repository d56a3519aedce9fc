"""``ufdl jobs watch PK [--url URL] (--token TOKEN | --username U)``: follow a job's progress channel with a
progress bar."""
import argparse
import sys

import websocket

from ..client import ChannelRefused, watch_job
from ..worker.api import ServerUnavailable, UfdlApi
from .environment import password_of


def register(areas) -> None:
    jobs = areas.add_parser("jobs", help="follow jobs")
    actions = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)
    watch = actions.add_parser("watch", help="print a job's progress until it ends")
    watch.add_argument("pk", type=database_id(1))
    watch.add_argument("--url", default="http://127.0.0.1:6544", help="the progress channel's base URL (default: http://127.0.0.1:6544)")
    who = watch.add_mutually_exclusive_group(required=True)
    who.add_argument("--token", help="an access token (it cannot be renewed: a reconnect after it expired fails)")
    who.add_argument("--username", help="log in through --api-url, and renew the token when it expires")
    watch.add_argument("--password", help="with --username (default: the UFDL_PASSWORD environment variable)")
    watch.add_argument("--api-url", default="http://127.0.0.1:6543",
                       help="the API's base URL, for --username (default: http://127.0.0.1:6543)")
    watch.add_argument("--after", type=database_id(0), default=None, metavar="ID",
                       help="replay the events after this event id first")
    watch.add_argument("--follow-retries", action="store_true",
                       help="go on watching a FAILED job, which a reset or an abort may run again (default: stop)")
    watch.set_defaults(handler=run_watch)


def database_id(least: int):
    """An argparse type: a pk or event id as the channel takes them (-5 was sent, and refused as no such job)."""
    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 18 and int(text) >= least):
            raise argparse.ArgumentTypeError(f"must be an integer of {least} or above (at most 18 digits), "
                                             f"not {text!r}")
        return int(text)
    return parse


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

    token, renew = args.token, None
    if args.username is not None:
        try:
            api = UfdlApi(args.api_url, args.username, password_of(args))
            api.login()
        except (ValueError, ServerUnavailable) as error:
            print(f"ufdl: cannot log in at {args.api_url}: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # Ctrl-C while logging in (an API slow to answer): as while watching
            return 130
        token, renew = api.access, api.renewed_access
    try:
        for message in watch_job(args.url, token, args.pk, after=args.after, on_retry=on_retry, renew=renew):
            status = message["status"]
            line = f"job {message['pk']} {bar(message['progress'])} {status:<9} {message['transition']}"
            if message.get("error"):
                line += f" ({message['error']})"
            print(line, flush=True)
            if status == "FAILED" and not args.follow_retries:
                break
    except ChannelRefused as error:
        expired = error.status == 401 and "expired" in error.detail and args.token is not None
        hint = " (give --username instead of --token, and the token is renewed as it expires)" if expired else ""
        print(f"ufdl: {error}{hint}", file=sys.stderr)
        return 1
    except ServerUnavailable as error:  # renewing the token, the API could not be reached
        print(f"ufdl: cannot renew the access token at {args.api_url}: {error}", file=sys.stderr)
        return 1
    except (OSError, websocket.WebSocketException, ValueError) as error:
        # No listener there (after watch_job's reconnects), or a URL it cannot use: one line, not a traceback.
        print(f"ufdl: cannot watch job {args.pk} at {args.url}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0 if status == "COMPLETED" else 1
