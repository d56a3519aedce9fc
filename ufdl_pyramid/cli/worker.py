"""``ufdl worker``: run jobs from a server with the executors of the installed plugins (no INI needed)."""
import logging
import math
import signal
import sys
import threading

from ..plugins import load_plugins
from ..services.nodes import MAX_INDEX
from .environment import password_of


def register(areas) -> None:
    worker = areas.add_parser("worker", help="run jobs from a server with the installed executors")
    worker.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:6543")
    worker.add_argument("--username", required=True)
    worker.add_argument("--password", help="the password (default: the UFDL_PASSWORD environment variable)")
    worker.add_argument("--ip", help="this node's address (default: the one it uses to reach the server)")
    worker.add_argument("--index", type=int, default=0, help="this node's index on its machine (default 0)")
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit (0 even if none)")
    worker.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="run N jobs at once, as nodes with indexes INDEX ... INDEX+N-1 (default 1)")
    worker.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                        help="wait between asking for jobs when there are none (default 2)")
    worker.add_argument("--heartbeat", type=float, default=5.0, metavar="SECONDS",
                        help="time between heartbeats while a job runs; keep it under the server's "
                             "ufdl.node_timeout (default 5)")
    worker.add_argument("--max-backoff", type=float, default=30.0, metavar="SECONDS",
                        help="longest wait between retries while the server is down (default 30)")
    worker.add_argument("--grace", type=float, default=0.0, metavar="SECONDS",
                        help="on SIGTERM or Ctrl-C, give the running job this long to finish before stopping it "
                             "(a second signal stops it at once; default 0: at once)")
    worker.add_argument("--executor", action="append", metavar="DOTTED.NAME",
                        help="only run these executors (repeatable; default: every installed one)")
    worker.set_defaults(handler=run_worker)


def run_worker(args, environment) -> int:
    from ..worker.api import UfdlApi
    from ..worker.runner import WorkerOptions, run_workers

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
    password = password_of(args)
    executors = dict(load_plugins(strict=False).executors)
    if args.executor:
        unknown = sorted(set(args.executor) - set(executors))
        if unknown:
            print(f"ufdl: no installed executor {', '.join(unknown)}", file=sys.stderr)
            return 1
        executors = {name: executors[name] for name in args.executor}
    if not executors:
        print("ufdl: no executors are installed (install a plugin that registers some)", file=sys.stderr)
        return 1
    try:
        UfdlApi(args.url, args.username, password).check_host()  # a host that may only be down is waited for
    except ValueError as error:
        print(f"ufdl: {error}", file=sys.stderr)
        return 1
    # Option values out of range are usage errors (exit 2), as argparse's own and the other commands' are.
    if not 0 <= args.grace < math.inf:
        print("ufdl: --grace must be a number of seconds, 0 or more", file=sys.stderr)
        return 2
    # 0 (or less) made a busy loop: acquire-next, or the heartbeat, sent again and again without a pause.
    for flag, value in (("--poll", args.poll), ("--heartbeat", args.heartbeat), ("--max-backoff", args.max_backoff)):
        if not 0 < value < math.inf:
            print(f"ufdl: {flag} must be a number of seconds above 0", file=sys.stderr)
            return 2
    if args.concurrency < 1 or args.index < 0:
        print("ufdl: --concurrency must be at least 1 and --index 0 or more", file=sys.stderr)
        return 2
    if args.index + args.concurrency - 1 > MAX_INDEX:  # each node beyond it was refused, one by one, by the server
        print(f"ufdl: --index {args.index} with --concurrency {args.concurrency} needs node indexes up to "
              f"{args.index + args.concurrency - 1}; a server takes 0 to {MAX_INDEX}", file=sys.stderr)
        return 2
    stop, interrupt, abandon = threading.Event(), threading.Event(), threading.Event()
    log = logging.getLogger("ufdl_pyramid.worker")

    def on_signal(number, frame):
        name = signal.Signals(number).name
        if interrupt.is_set():  # the job is being stopped already: give up waiting for a server that is down
            log.info("signal %s: no more waiting for the server to take the job back", name)
            abandon.set()
            return
        if stop.is_set() or not args.grace:
            log.info("signal %s: stopping, and stopping the running job", name)
            stop.set()
            interrupt.set()
            return
        log.info("signal %s: stopping; a running job has %g s to finish (signal again to stop it now)",
                 name, args.grace)
        stop.set()
        timer = threading.Timer(args.grace, interrupt.set)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    options = WorkerOptions(ip=args.ip, index=args.index, once=args.once, poll=args.poll,
                            heartbeat=args.heartbeat, max_backoff=args.max_backoff)
    return run_workers(lambda: UfdlApi(args.url, args.username, password), executors, options,
                       args.concurrency, stop, interrupt, abandon)
