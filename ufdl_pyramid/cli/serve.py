"""``ufdl serve``: the REST API on waitress."""
import waitress
from pyramid.paster import get_app


def register(areas) -> None:
    serve = areas.add_parser("serve", help="serve the API with waitress")
    serve.add_argument("--listen", default="127.0.0.1:6543", metavar="HOST:PORT")
    serve.add_argument("--threads", type=int, default=8)
    serve.set_defaults(handler=run_serve)


def run_serve(args, environment) -> int:
    environment.settings  # fail early, with a clear message, on a bad configuration
    app = get_app(environment.config_path, "main")
    print(f"serving on http://{args.listen}", flush=True)
    waitress.serve(app, listen=args.listen, threads=args.threads)
    return 0
