"""The templates registry at scale: 1,000 generated templates (every tenth a meta-template chaining two
workable ones), timed through the same code as ``ufdl templates``: validate (offline), the first sync, and a
no-op re-sync (target: at most 1/5 of the first sync).

    python bench/registry.py [--count 1000] [--remote]
``--remote`` syncs through a waitress server's API (``--url``), as a deployment's CI would.
Set UFDL_BENCH_DATABASE_URL to measure on PostgreSQL (default: a temporary SQLite file).
"""
import argparse
import os
import tempfile
import time

from common import database_url, prepare, server

from ufdl_pyramid.cli import main as ufdl
from ufdl_pyramid.services.template_documents import to_yaml
from ufdl_pyramid.testing import TEST_SETTINGS


def workable(index: int) -> dict:
    return {"name": f"bench-{index}", "version": 1, "description": f"Template number {index}\nsecond line",
            "scope": "public", "domain": None, "licence": "MIT",
            "specific": {"job_type": "Process<str, BLOB>", "executor_class": "bench.Executor",
                         "required_packages": "", "parameters": {
                             "epochs": {"types": ["int"], "help": "Epochs", "default": index, "default_type": "int"},
                             "tag": {"types": ["str"], "help": "A tag"}}}}


def meta(index: int) -> dict:
    return {"name": f"bench-meta-{index}", "version": 1, "description": "", "scope": "public", "domain": None,
            "licence": "MIT", "specific": {
                "nodes": {"first": {"name": f"bench-{index - 1}", "version": 1},
                          "second": {"name": "word-count", "version": 1}},
                "dependencies": [{"from_node": "first", "from_output": "output", "to_node": "second",
                                  "to_input": "input"}]}}


def write(directory: str, count: int) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, os.pardir, "templates_registry", "word-count", "1.yaml")) as file:
        files = {"word-count/1.yaml": file.read()}
    for index in range(count - 1):
        document = meta(index) if index % 10 == 9 else workable(index)
        files[f"{document['name']}/1.yaml"] = to_yaml(document)
    for path, text in files.items():
        os.makedirs(os.path.join(directory, os.path.dirname(path)), exist_ok=True)
        with open(os.path.join(directory, path), "w") as file:
            file.write(text)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    code = ufdl(argv)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"ufdl {' '.join(argv)}: exit {code}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--remote", action="store_true", help="sync through the HTTP API of a waitress server")
    args = parser.parse_args()
    url = database_url()
    engine, admin = prepare(url)
    work = tempfile.mkdtemp()
    registry = os.path.join(work, "registry")
    write(registry, args.count)
    ini = os.path.join(work, "bench.ini")
    with open(ini, "w") as file:
        file.write(f"[app:main]\nuse = egg:ufdl-pyramid\n"
                   f"sqlalchemy.url = {engine.url.render_as_string(hide_password=False)}\n"
                   f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n")
    validate = timed(["-c", ini, "templates", "validate", registry])
    if args.remote:
        with server(url) as port:
            remote = ["--url", f"http://127.0.0.1:{port}", "--token", admin.token]
            first = timed(["templates", "sync", registry, *remote])
            again = timed(["templates", "sync", registry, *remote])
    else:
        first = timed(["-c", ini, "templates", "sync", registry])
        again = timed(["-c", ini, "templates", "sync", registry])
    print(f"{args.count} templates on {engine.dialect.name}{' through the API' if args.remote else ''}:")
    print(f"  validate         {validate:7.2f} s")
    print(f"  first sync       {first:7.2f} s")
    print(f"  no-op re-sync    {again:7.2f} s  ({again / first:.0%} of the first sync; target at most 20%)")


if __name__ == "__main__":
    main()
