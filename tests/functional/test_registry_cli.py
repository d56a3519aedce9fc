"""``ufdl templates validate|diff|sync|export``: the templates registry, against the test database."""
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import webtest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from ufdl_pyramid.cli import main
from ufdl_pyramid.cli.templates import Progress
from ufdl_pyramid.models import Job, JobTemplate, JobType
from ufdl_pyramid.testing import TEST_SETTINGS, make_test_app

REGISTRY = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "templates_registry")


@pytest.fixture
def ini(tmp_path, engine):
    path = tmp_path / "test.ini"
    url = engine.url.render_as_string(hide_password=False)
    path.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = {url}\n"
                    f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n")
    return str(path)


@pytest.fixture
def ufdl(ini, capsys):
    def run(*args) -> tuple[int, str, str]:
        code = main(["-c", ini, "templates", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture(params=["local", "remote"])
def sync_cli(request, ufdl):
    """``ufdl templates diff|sync`` on the test database: directly (``-c INI``) or through the API (``--url``),
    which must behave alike."""
    if request.param == "local":
        return ufdl
    url, admin = request.getfixturevalue("server_url"), request.getfixturevalue("admin")
    return lambda *args: ufdl(*args, "--url", url, "--token", admin.token)


@pytest.fixture
def registry(tmp_path):
    directory = tmp_path / "registry"
    shutil.copytree(REGISTRY, directory)
    return directory


def templates(engine) -> set[tuple[str, int]]:
    with Session(engine) as db:
        return set(db.execute(select(JobTemplate.name, JobTemplate.version).where(JobTemplate.active())).all())


def edit(path, change):
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


ALL = {("shell", 1), ("word-count", 1), ("shell-then-count", 1)}


# validate

def test_validate_accepts_the_shipped_registry(ufdl, registry):
    assert ufdl("validate", registry)[0] == 0


def test_the_readme_pre_commit_hook_checks_what_is_staged(tmp_path):
    """It validated the working tree: a broken file staged, then mended but not staged again, went in."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [hook] = [block for block in re.findall(r"```sh\n(.*?)```", readme, re.S) if block.startswith("#!/bin/sh")]
    repo = tmp_path / "repo"
    shutil.copytree(REGISTRY, repo / "templates_registry")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "ufdl").symlink_to(Path(sys.executable).with_name("ufdl"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / ".git" / "hooks" / "pre-commit").write_text(hook)
    (repo / ".git" / "hooks" / "pre-commit").chmod(0o755)
    (repo / ".gitignore").write_text(".venv/\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "registry"], cwd=repo, check=True)

    shell = repo / "templates_registry" / "shell" / "1.yaml"
    good = shell.read_text()
    shell.write_text(good.replace("licence: Apache-2.0", "licence: No-Such-Licence\nlicense: typo"))
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    shell.write_text(good + "# mended\n")  # in the working tree only
    refused = subprocess.run([*git, "commit", "-qm", "broken"], cwd=repo, capture_output=True, text=True)
    assert refused.returncode != 0 and "shell/1.yaml" in refused.stdout + refused.stderr
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    mended = subprocess.run([*git, "commit", "-qm", "mended"], cwd=repo, capture_output=True, text=True)
    assert mended.returncode == 0, mended.stdout + mended.stderr


def test_validate_needs_no_database(registry, capsys, tmp_path):
    assert main(["-c", str(tmp_path / "missing.ini"), "templates", "validate", str(registry)]) == 0


def test_a_file_instead_of_the_registry_directory_is_said(ufdl, registry, tmp_path):
    """It said "no such directory" of a file that is there."""
    code, out, err = ufdl("validate", registry / "shell" / "1.yaml")
    assert code == 1 and out == ""
    assert err == (f"ufdl: {registry / 'shell' / '1.yaml'}: not a directory (give the registry's directory, not one "
                   f"of its files)\n")
    assert ufdl("diff", tmp_path / "missing")[2] == f"ufdl: {tmp_path / 'missing'}: no such directory\n"


def _replace(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("breaking, expected", [
    (lambda r: _replace(r / "shell" / "1.yaml", "scope: public", "scope: [public"),
     "shell/1.yaml:7: invalid YAML"),
    (lambda r: _replace(r / "shell" / "1.yaml", "scope: public", "scope: public\nversion: 2"),
     "shell/1.yaml:7: invalid YAML: found the key 'version' twice"),
    (lambda r: (r / "shell" / "1.yaml").write_text("# nothing yet\n"),
     "shell/1.yaml: the file is empty: a template document is a mapping"),
    (lambda r: (r / "shell" / "1.yaml").write_text("- name: shell\n"),
     "shell/1.yaml:1: a template document must be a mapping, not a list"),
    (lambda r: (r / "shell" / "1.yaml").write_text("shell\n"),
     "shell/1.yaml:1: a template document must be a mapping, not a string"),
    (lambda r: (r / "registry.yaml").write_text("- licences\n"),
     "registry.yaml:1: registry settings must be a mapping, not a list"),
    (lambda r: (r / "shell" / "1.yaml").write_text("- " * 5000 + "x\n"),
     "shell/1.yaml:1: invalid YAML: "),
    (lambda r: _replace(r / "shell" / "1.yaml", "default: 60", "default: !!int sixty"),
     "shell/1.yaml:22: invalid YAML: 'sixty' is not a valid !!int"),
    (lambda r: _replace(r / "shell" / "1.yaml", "version: 1", "version: !!timestamp 1"),
     "shell/1.yaml:2: invalid YAML: '1' is not a valid !!timestamp"),
    (lambda r: _replace(r / "shell" / "1.yaml", "scope: public", "scope: everyone"),
     "shell/1.yaml:6: scope: 'everyone' is not one of"),
    (lambda r: _replace(r / "shell" / "1.yaml", "job_type: Process<str, BLOB>", "job_type: Process<str, BLOBB>"),
     "shell/1.yaml:10: specific.job_type: Invalid type"),
    (lambda r: _replace(r / "shell" / "1.yaml", "      - int", "      - integer"),
     "shell/1.yaml:20: specific.parameters.timeout.types[0]: Invalid type"),
    (lambda r: _replace(r / "shell" / "1.yaml", "default: 60", "default: sixty"),
     "shell/1.yaml:22: specific.parameters.timeout.default: value"),
    (lambda r: _replace(r / "shell" / "1.yaml", "name: shell\n", "name: shelly\n"),
     "shell/1.yaml:1: name: 'shelly' does not agree with the directory name 'shell'"),
    (lambda r: _replace(r / "shell" / "1.yaml", "version: 1", "version: 2"),
     "shell/1.yaml:2: version: 2 does not agree with the file name (1)"),
    (lambda r: _replace(r / "shell-then-count" / "1.yaml", "name: word-count", "name: word-counter"),
     "shell-then-count/1.yaml:10: specific.nodes.count: template 'word-counter' version 1 is not in the "
     "registry"),
    (lambda r: _replace(r / "shell-then-count" / "1.yaml", "to_input: input", "to_input: text"),
     "shell-then-count/1.yaml:19: specific.dependencies[0].to_input: template 'word-count' has no input 'text'"),
    (lambda r: (r / "shell" / "latest.yaml").write_text("name: shell\n"),
     "shell/latest.yaml: unexpected file"),
    (lambda r: (r / "shell" / "01.yaml").write_text((r / "shell" / "1.yaml").read_text()),
     "shell/01.yaml: unexpected file"),
    (lambda r: _replace(r / "shell" / "1.yaml", "version: 1\n", ""),
     "shell/1.yaml:1: version: None does not agree with the file name (1)"),
    (lambda r: _replace(r / "word-count" / "1.yaml", "specific:", "specifics:"),
     "word-count/1.yaml:1: document: Additional properties are not allowed ('specifics' was unexpected); "
     "document: 'specific' is a required property"),
    (lambda r: (r / "registry.yaml").write_text("licences: [MIT]\n"),
     "shell/1.yaml:8: licence: 'Apache-2.0' is not one of the registry's licences (MIT)"),
    (lambda r: (r / "registry.yaml").write_text("licences: [MIT\n"),
     "registry.yaml:2: invalid YAML"),
    (lambda r: (r / "registry.yaml").write_text("licences: [MIT, Apache-2.0]\nlicenses: [MIT]\n"),
     "registry.yaml:2: unknown setting 'licenses' (known: licences, domains)"),
    (lambda r: (r / "registry.yaml").write_text("domains: ic\n"),
     "registry.yaml:1: domains: must be a list of names"),
    (lambda r: (r / "seed-job-type-1").mkdir() or (r / "seed-job-type-1" / "1.yaml").write_text(
        (r / "shell" / "1.yaml").read_text().replace("name: shell\n", "name: seed-job-type-1\n")),
     "seed-job-type-1/1.yaml:1: name: template names beginning with 'seed-job-type-' are those of the Scale v6"),
])
def test_validate_names_file_and_line_of_each_kind_of_error(ufdl, registry, breaking, expected):
    breaking(registry)
    code, out, err = ufdl("validate", registry)
    assert code == 1
    assert expected in out, out


def test_brackets_in_text_are_no_nesting(ufdl, registry):
    edit(registry / "shell" / "1.yaml", lambda document: document.update(description="[" * 200 + "\n" + "{" * 200))
    code, out, err = ufdl("validate", registry)
    assert code == 0, out


def test_hidden_files_are_no_part_of_the_registry(ufdl, registry, engine):
    """A checkout's own files (``.git``, an editor's swap file, ``.DS_Store``) are skipped, not refused."""
    (registry / ".git").mkdir()
    (registry / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (registry / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (registry / "shell" / ".1.yaml.swp").write_bytes(b"b0VIM 9.0\x00")
    code, out, err = ufdl("validate", registry)
    assert (code, out) == (0, ""), out
    assert ufdl("sync", registry)[0] == 0
    assert templates(engine) == ALL


def test_a_child_named_without_a_version_is_the_registrys_newest(ufdl, registry, engine):
    """validate resolves it as sync does: word-count/2 has the parameter the meta-template overrides, /1 not."""
    newer = yaml.safe_load((registry / "word-count" / "1.yaml").read_text())
    newer["version"] = 2
    newer["specific"]["parameters"]["stopwords"] = {"types": ["str"], "help": "Words not to count", "default": ""}
    (registry / "word-count" / "2.yaml").write_text(yaml.safe_dump(newer, sort_keys=False))

    def unversioned(document):
        document["specific"]["nodes"]["count"] = {"name": "word-count", "parameter_default_overrides": {
            "stopwords": {"value": "the", "type": "str"}}}
    edit(registry / "shell-then-count" / "1.yaml", unversioned)
    code, out, err = ufdl("validate", registry)
    assert code == 0, out
    assert ufdl("sync", registry)[0] == 0
    with Session(engine) as db:
        stored = db.scalar(select(JobTemplate).where(JobTemplate.name == "shell-then-count"))
        assert stored.spec["nodes"]["count"]["version"] == 2


def test_validate_warns_of_executors_no_plugin_provides_and_of_names_differing_only_in_case(ufdl, registry):
    """Neither is an error (a worker may have executors the server does not; Linux tells Train from train), but
    a template no worker can run and folders that are one on macOS or Windows are likelier mistakes."""
    _replace(registry / "word-count" / "1.yaml", "executor_class: ufdl_example_executors.WordCounter",
             "executor_class: ufdl_example_executors.WordCount")
    (registry / "Shell").mkdir()
    (registry / "Shell" / "1.yaml").write_text((registry / "shell" / "1.yaml").read_text().replace(
        "name: shell\n", "name: Shell\n", 1))
    code, out, err = ufdl("validate", registry)
    assert code == 0, out + err
    assert out.splitlines() == [
        "shell: warning: the template names Shell and shell differ only in case: on a case-insensitive "
        "filesystem (macOS, Windows) their folders are one",
        "word-count/1.yaml:9: warning: executor_class 'ufdl_example_executors.WordCount' is no installed "
        "plugin's executor (only a worker that has one can run the template)"]
    assert err.splitlines()[-1] == "4 template(s): valid, 2 warning(s)"


def test_an_export_warns_of_names_differing_only_in_case(ufdl, registry, tmp_path):
    (registry / "Shell").mkdir()
    (registry / "Shell" / "1.yaml").write_text((registry / "shell" / "1.yaml").read_text().replace(
        "name: shell\n", "name: Shell\n", 1))
    assert ufdl("sync", registry)[0] == 0
    code, out, err = ufdl("export", tmp_path / "exported")
    assert code == 0, out + err
    assert "warning: the template names Shell and shell differ only in case: on a case-insensitive filesystem " \
           "(macOS, Windows) their folders are one\n" in err


def test_validate_reports_every_problem_of_a_file_at_once(ufdl, registry):
    _replace(registry / "shell" / "1.yaml", "name: shell\n", "name: shelly\n")
    _replace(registry / "shell" / "1.yaml", "version: 1", "version: 2")
    _replace(registry / "shell" / "1.yaml", "scope: public", "scope: everyone")
    (registry / "registry.yaml").write_text("licences: [MIT]\ndomains: [ic]\n")
    code, out, err = ufdl("validate", registry)
    assert code == 1
    for expected in ("shell/1.yaml:6: scope: 'everyone' is not one of",
                     "shell/1.yaml:1: name: 'shelly' does not agree with the directory name 'shell'",
                     "shell/1.yaml:2: version: 2 does not agree with the file name (1)",
                     "word-count/1.yaml:6: licence: 'Apache-2.0' is not one of the registry's licences (MIT)",
                     "word-count/1.yaml:5: domain: 'tc' is not one of the registry's domains (ic)"):
        assert expected in out, out


def test_a_version_of_the_wrong_type_is_reported_once(ufdl, registry):
    _replace(registry / "shell" / "1.yaml", "version: 1", "version: one")
    code, out, err = ufdl("validate", registry)
    assert code == 1
    assert "shell/1.yaml:2: version: 'one' is not of type 'integer'" in out and "does not agree" not in out, out


def test_a_version_written_as_a_float_is_that_integer(sync_cli, ufdl, registry, engine):
    """JSON Schema takes 1.0 for an integer: 'version: 2.0' in 1.yaml was no problem of its own, but made the file
    template version 2.0 (only the meta-template using version 1 said something was wrong)."""
    _replace(registry / "shell" / "1.yaml", "version: 1", "version: 2.0")
    code, out, err = ufdl("validate", registry)
    assert code == 1
    assert out.startswith("shell/1.yaml:2: version: 2 does not agree with the file name (1)\n"), out
    _replace(registry / "shell" / "1.yaml", "version: 2.0", "version: 1.0")
    assert ufdl("validate", registry)[0] == 0
    assert sync_cli("sync", registry)[0] == 0
    assert templates(engine) == ALL
    code, out, err = sync_cli("diff", registry)
    assert code == 0 and sorted(out.splitlines()) == ["identical shell-then-count/1.yaml", "identical shell/1.yaml",
                                                      "identical word-count/1.yaml"], out


def test_validate_finds_cycles_between_templates(ufdl, registry):
    (registry / "loop").mkdir()
    loop = {"name": "loop", "version": 1, "description": "", "scope": "public", "domain": None,
            "licence": "Apache-2.0", "specific": {"nodes": {"inner": {"name": "loop", "version": 1}},
                                                  "dependencies": []}}
    (registry / "loop" / "1.yaml").write_text(yaml.safe_dump(loop, sort_keys=False))
    code, out, err = ufdl("validate", registry)
    assert code == 1
    assert "loop/1.yaml:9: templates refer to each other in a cycle: loop/1 -> loop/1" in out


def test_validate_and_sync_refuse_a_type_too_long_once_written_in_canonical_form(sync_cli, ufdl, registry, engine):
    """1,000 characters as written, 1,001 in canonical form (', ' between arguments), which export would write:
    the import refused it, and validate, offline, passed it."""
    long_type = f"Process<Framework<'{'a' * 969}','1'>,JSON>"
    assert len(long_type) == 1000
    _replace(registry / "shell" / "1.yaml", "job_type: Process<str, BLOB>", f"job_type: {long_type}")
    for code, out, err in (ufdl("validate", registry), sync_cli("sync", registry)):
        assert code == 1
        assert "shell/1.yaml:10: specific.job_type: type Process<Framework<" in out, out
        assert "is longer than 1000 characters once written in canonical form" in out
    assert templates(engine) == set()


def test_validate_and_sync_refuse_graphs_nested_too_deep(sync_cli, ufdl, registry, engine):
    """A registry checks nesting as the server's import does: offline (validate) by the registry's own graphs."""
    from ufdl_pyramid.services.templates import MAX_NESTING

    inner = "word-count"
    for depth in range(1, MAX_NESTING + 2):
        (registry / f"level{depth}").mkdir()
        level = {"name": f"level{depth}", "version": 1, "scope": "public", "licence": "Apache-2.0",
                 "specific": {"nodes": {"s": {"name": inner}}, "dependencies": []}}
        (registry / f"level{depth}" / "1.yaml").write_text(yaml.safe_dump(level, sort_keys=False))
        inner = f"level{depth}"
    code, out, err = ufdl("validate", registry)
    assert code == 1 and out.count("nest at most") == 1
    assert f"level{MAX_NESTING + 1}/1.yaml:7: specific.nodes: graphs nest at most {MAX_NESTING} deep" in out
    assert sync_cli("sync", registry)[0] == 1
    assert templates(engine) == set()


def test_a_long_chain_of_meta_templates_is_refused_without_a_crash(sync_cli, ufdl, registry, engine):
    """Ordering the registry (children first) must not recurse once per level: a chain far past the nesting
    limit (and Python's recursion limit) gets the nesting problem, not a RecursionError."""
    from ufdl_pyramid.services.templates import MAX_NESTING

    inner = "word-count"
    for depth in range(1, 3001):  # the outermost's name first in sorted order: the walk goes down the chain
        name = f"level{9999 - depth}"
        (registry / name).mkdir()
        (registry / name / "1.yaml").write_text(
            f"name: {name}\nversion: 1\nscope: public\nlicence: Apache-2.0\nspecific:\n  nodes:\n"
            f"    s:\n      name: {inner}\n  dependencies: []\n")
        inner = name
    code, out, err = ufdl("validate", registry)
    assert code == 1 and "Traceback" not in err, err
    too_deep = f"level{9999 - MAX_NESTING - 1}"
    assert f"{too_deep}/1.yaml:7: specific.nodes: graphs nest at most {MAX_NESTING} deep" in out
    code, out, err = sync_cli("sync", registry)
    assert code == 1 and "Traceback" not in err, err
    assert f"nest at most {MAX_NESTING} deep" in out
    assert templates(engine) == set()


def test_validate_counts_the_steps_of_graphs_of_graphs(ufdl, registry):
    for name, child, width in (("tens", "word-count", 10), ("hundreds", "tens", 10), ("thousand", "hundreds", 10),
                               ("two-thousand", "thousand", 2)):
        (registry / name).mkdir()
        graph = {"name": name, "version": 1, "scope": "public", "licence": "Apache-2.0",
                 "specific": {"nodes": {f"n{i}": {"name": child} for i in range(width)}, "dependencies": []}}
        (registry / name / "1.yaml").write_text(yaml.safe_dump(graph, sort_keys=False))
    code, out, err = ufdl("validate", registry)
    assert code == 1 and out.count("workable steps") == 1
    assert "two-thousand/1.yaml:7: specific.nodes: a graph runs at most 1000 workable steps in all" in out


# diff, sync, export

def test_sync_and_diff_refuse_what_the_registry_settings_forbid(sync_cli, registry, engine):
    (registry / "registry.yaml").write_text("licences: [MIT]\n")
    for command in ("diff", "sync"):
        code, out, err = sync_cli(command, registry)
        assert code == 1
        assert "shell/1.yaml:8: licence: 'Apache-2.0' is not one of the registry's licences (MIT)" in out
    assert templates(engine) == set()


def test_diff_reports_what_sync_would_refuse_to_import(sync_cli, registry, engine):
    """Locally as remotely, diff is a dry-run sync: a type no installed plugin knows is a problem, not a create."""
    edit(registry / "shell" / "1.yaml", lambda d: d["specific"].__setitem__("job_type", "Process<Nope, str>"))
    for command in ("diff", "sync"):
        code, out, err = sync_cli(command, registry)
        assert code == 1 and "shell/1.yaml:10: specific.job_type: Invalid type 'Process<Nope, str>'" in out
        assert "to create" not in err
    assert templates(engine) == set()


def test_sync_diff_export_round_trip(ufdl, registry, engine, tmp_path, admin):
    assert ufdl("diff", registry)[0] == 3  # changes pending
    code, out, err = ufdl("sync", registry)
    assert code == 0, out + err
    assert out.count("create") == 3
    assert templates(engine) == ALL
    names = {row["name"] for row in admin.post("/v1/job-templates/list", {}).json}
    assert names == {"shell", "word-count", "shell-then-count"}

    # Twice: a no-op.
    code, out, err = ufdl("sync", registry)
    assert (code, out) == (0, "")
    assert "0 to create, 3 identical, 0 conflicting" in err
    assert ufdl("diff", registry)[0] == 0

    exported = tmp_path / "exported"
    assert ufdl("export", exported)[0] == 0
    for path in ("shell/1.yaml", "word-count/1.yaml", "shell-then-count/1.yaml"):
        assert (exported / path).read_text() == (registry / path).read_text()


def test_export_then_sync_into_an_empty_database_gives_the_same_files(ufdl, registry, engine, cleaner, tmp_path):
    # A registry written by hand (keys in another order, a version left implicit in a meta node)...
    edit(registry / "shell-then-count" / "1.yaml",
         lambda document: document["specific"]["nodes"]["count"].pop("version"))
    assert ufdl("sync", registry)[0] == 0
    first = tmp_path / "first"
    assert ufdl("export", first, "--all-versions")[0] == 0
    cleaner.reset()
    assert templates(engine) == set()
    assert ufdl("sync", first)[0] == 0
    second = tmp_path / "second"
    assert ufdl("export", second, "--all-versions")[0] == 0
    files = sorted(str(path.relative_to(first)) for path in first.rglob("*.yaml"))
    assert files == ["shell-then-count/1.yaml", "shell/1.yaml", "word-count/1.yaml"]
    for path in files:
        assert (second / path).read_text() == (first / path).read_text()
    # ... and the exported form of a file written by hand differs only in form: no conflict.
    assert ufdl("sync", registry)[0] == 0


def test_a_conflict_aborts_with_nothing_applied(sync_cli, registry, engine):
    assert sync_cli("sync", registry)[0] == 0
    edit(registry / "shell" / "1.yaml", lambda document: document.update(description="Changed"))
    (registry / "echo").mkdir()
    echo = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
    echo["name"] = "echo"
    (registry / "echo" / "1.yaml").write_text(yaml.safe_dump(echo, sort_keys=False))

    code, out, err = sync_cli("diff", registry)
    assert code == 1
    assert "CONFLICT  shell/1.yaml" in out
    assert "-description: |-" in out and "+description: Changed" in out

    code, out, err = sync_cli("sync", registry)
    assert code == 1
    assert "CONFLICT  shell/1.yaml" in out
    assert "nothing applied" in err
    assert templates(engine) == ALL  # echo was not created


def test_a_conflicts_diff_shows_what_differs_in_substance_only(sync_cli, registry):
    assert sync_cli("sync", registry)[0] == 0

    def change(document):
        del document["domain"]  # null: the same template, written by hand without it
        document["specific"]["parameters"]["timeout"].pop("default_type")  # int: inferred from the default
        document["description"] = "Changed"
    edit(registry / "shell" / "1.yaml", change)
    code, out, err = sync_cli("diff", registry)
    assert code == 1 and "CONFLICT  shell/1.yaml" in out
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    # "-domain: null" and "-      default_type: int" showed too, as if they were part of the conflict.
    assert changed == ["-description: |-", "-  Runs a command line with the input text on its standard input.",
                       "-  The standard output becomes the output 'output'.", "+description: Changed"], out


def test_an_import_error_rolls_everything_back(sync_cli, registry, engine):
    # Valid offline, but the licence is unknown to the server: the last import fails, the others are undone.
    edit(registry / "shell-then-count" / "1.yaml", lambda document: document.update(licence="Nope-1.0"))
    code, out, err = sync_cli("sync", registry)
    assert code == 1
    assert "shell-then-count/1.yaml:6: licence: unknown licence 'Nope-1.0'" in out
    assert templates(engine) == set()


def test_ctrl_c_in_a_sync_is_one_line_and_applies_nothing(ufdl, registry, engine, monkeypatch):
    """Ctrl-C half-way through the imports printed a KeyboardInterrupt traceback."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background test run ignores it
    monkeypatch.setattr(Progress, "__call__", lambda self, done, total: os.kill(os.getpid(), signal.SIGINT))
    try:
        code, out, err = ufdl("sync", registry)
    except KeyboardInterrupt:
        pytest.fail("the KeyboardInterrupt escaped the command")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (code, err) == (130, "ufdl: interrupted\n")
    assert templates(engine) == set()


def test_dry_run_changes_nothing(sync_cli, registry, engine):
    code, out, err = sync_cli("sync", registry, "--dry-run")
    assert code == 0
    assert out.count("create") == 3
    assert "rolled back" in err
    assert templates(engine) == set()


def test_diff_and_a_dry_run_write_nothing_the_job_types_included(ufdl, registry, engine):
    """They bring the job-types table up to the plugins' types to check the templates as sync would, then roll
    that back with the rest: a read-only look commits nothing."""
    def process_row():
        with Session(engine) as db:
            return db.execute(select(JobType.pkg, JobType.cls).where(JobType.name == "Process")).one()
    synced = process_row()
    with Session(engine) as db, db.begin():
        db.scalar(select(JobType).where(JobType.name == "Process")).cls = "Renamed"
    for command in (("diff", registry), ("diff", registry, "--prune"), ("sync", registry, "--dry-run")):
        code, out, err = ufdl(*command)
        assert code in (0, 3), (command, out, err)
        assert process_row() == (synced.pkg, "Renamed"), command
    assert templates(engine) == set()
    assert ufdl("sync", registry)[0] == 0  # a sync brings the table up to date with the templates
    assert process_row() == synced
    assert templates(engine) == ALL
    with Session(engine) as db, db.begin():
        db.scalar(select(JobType).where(JobType.name == "Process")).cls = "Renamed"
    assert ufdl("sync", registry)[0] == 0  # and so does one with no template to create
    assert process_row() == synced


def _add_job(engine, name, status):
    with Session(engine) as db, db.begin():
        template = db.scalar(select(JobTemplate).where(JobTemplate.name == name))
        db.add(Job(template_id=template.id, input_values={}, status=status))


def test_prune_keeps_templates_with_active_jobs(sync_cli, registry, engine, tmp_path):
    assert sync_cli("sync", registry)[0] == 0
    extra = tmp_path / "extra"
    for name in ("busy", "done", "idle"):
        document = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
        document["name"] = name
        (extra / name).mkdir(parents=True)
        (extra / name / "1.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    assert sync_cli("sync", extra)[0] == 0
    _add_job(engine, "busy", "RUNNING")
    _add_job(engine, "done", "COMPLETED")

    code, out, err = sync_cli("diff", registry, "--prune")
    assert code == 3
    assert "prune     done/1" in out and "prune     idle/1" in out
    assert "keep      busy/1 (not in the registry, but 1 active job(s))" in out
    assert templates(engine) == ALL | {("busy", 1), ("done", 1), ("idle", 1)}

    code, out, err = sync_cli("sync", registry, "--prune")
    assert code == 0
    assert templates(engine) == ALL | {("busy", 1)}
    # Without --prune nothing is deleted.
    assert sync_cli("sync", extra)[0] == 0
    assert sync_cli("sync", registry)[0] == 0
    assert templates(engine) == ALL | {("busy", 1), ("done", 1), ("idle", 1)}



def test_the_templates_of_scale_job_types_are_no_registrys_to_prune_or_export(sync_cli, registry, engine, admin,
                                                                               tmp_path):
    """Each revision of a v6 job type is a job template that the v6 API keeps: a --prune deleted it (create-job
    from the job type's template then failed) and an export wrote it into the registry."""
    with open(os.path.join(os.path.dirname(__file__), "seed_manifests", "random-number.manifest.json")) as file:
        manifest = json.load(file)
    admin.post("/v6/job-types/", {"docker_image": "random:1", "manifest": manifest}, status=201)
    assert sync_cli("sync", registry)[0] == 0
    scale = templates(engine) - ALL
    assert len(scale) == 1 and next(iter(scale))[0].startswith("seed-job-type-")
    code, out, err = sync_cli("diff", registry, "--prune")
    assert code == 0 and "seed-job-type" not in out, out
    assert sync_cli("sync", registry, "--prune")[0] == 0
    assert templates(engine) == ALL | scale
    exported = tmp_path / "exported"
    assert sync_cli("export", exported)[0] == 0
    assert sorted(path.name for path in exported.iterdir()) == sorted(name for name, _ in ALL)

def _scale_template(admin) -> str:
    """A v6 job type's template (``seed-job-type-{id}`` version 1), made as the v6 API makes it."""
    with open(os.path.join(os.path.dirname(__file__), "seed_manifests", "random-number.manifest.json")) as file:
        manifest = json.load(file)
    job_type = admin.post("/v6/job-types/", {"docker_image": "random:1", "manifest": manifest}, status=201).json
    return f"seed-job-type-{job_type['id']}"


def _mix(scale: str, version=1) -> dict:
    """A meta-template of a registry template and a Scale job type's."""
    return {"name": "mix", "version": 1, "description": "", "scope": "public", "domain": None,
            "licence": "Apache-2.0", "specific": {"nodes": {"a": {"name": "shell", "version": 1},
                                                             "b": {"name": scale, "version": version}},
                                                   "dependencies": []}}


def test_a_meta_template_using_a_scale_job_types_template_round_trips(sync_cli, ufdl, registry, engine, admin,
                                                                     tmp_path):
    """Its child lives on the server, not in the registry (no file may hold a Scale job type's template): export
    wrote the meta-template alone, and validate, diff and sync refused what it wrote (the child "is not in the
    registry"), so the meta-template could never be synced."""
    scale = _scale_template(admin)
    assert sync_cli("sync", registry)[0] == 0
    admin.post("/v1/job-templates/import", _mix(scale), status=201)
    exported = tmp_path / "exported"
    code, out, err = sync_cli("export", exported)
    assert code == 0, out + err
    assert sorted(path.name for path in exported.iterdir()) == sorted({name for name, _ in ALL} | {"mix"})

    code, out, err = ufdl("validate", exported)
    assert code == 0, out + err
    assert out == (f"mix/1.yaml:13: note: specific.nodes.b: template '{scale}' version 1 is a Scale job type's, "
                   f"which lives on the server: this graph is not checked offline (diff and sync check it against "
                   f"the server's templates)\n")
    assert "4 template(s): valid, 1 graph(s) not checked offline" in err
    code, out, err = sync_cli("diff", exported, "--prune")
    assert code == 0 and "identical mix/1.yaml" in out, out + err
    code, out, err = sync_cli("sync", exported, "--prune")
    assert code == 0, out + err
    assert templates(engine) == ALL | {("mix", 1), (scale, 1)}


def test_a_registrys_meta_template_finds_a_scale_job_types_template_on_the_server(sync_cli, ufdl, registry, engine,
                                                                                 admin):
    """diff and sync look it up among the server's templates: a missing one is a problem of the file, and
    nothing is applied; it must be named with its version (the server's newest differs between servers)."""
    scale = _scale_template(admin)
    (registry / "mix").mkdir()
    for child, version, problem in (("seed-job-type-99999", 1, "no template 'seed-job-type-99999' version 1"),
                                    (scale, 2, f"no template '{scale}' version 2")):
        (registry / "mix" / "1.yaml").write_text(yaml.safe_dump(_mix(child, version), sort_keys=False))
        assert ufdl("validate", registry)[0] == 0
        for command in ("diff", "sync"):
            code, out, err = sync_cli(command, registry)
            assert code == 1 and f"mix/1.yaml:13: specific.nodes.b: {problem}" in out, (command, out, err)
        assert templates(engine) == {(scale, 1)}

    unversioned = _mix(scale)
    del unversioned["specific"]["nodes"]["b"]["version"]
    (registry / "mix" / "1.yaml").write_text(yaml.safe_dump(unversioned, sort_keys=False))
    for command in ("validate", "diff", "sync"):
        code, out, err = (ufdl if command == "validate" else sync_cli)(command, registry)
        assert code == 1 and (f"mix/1.yaml:13: specific.nodes.b: template '{scale}' is a Scale job type's, which "
                              f"lives on the server: name its version") in out, (command, out, err)

    (registry / "mix" / "1.yaml").write_text(yaml.safe_dump(_mix(scale), sort_keys=False))
    outer = {**_mix(scale), "name": "outer", "specific": {"nodes": {"inner": {"name": "mix", "version": 1}},
                                                          "dependencies": []}}
    (registry / "outer").mkdir()
    (registry / "outer" / "1.yaml").write_text(yaml.safe_dump(outer, sort_keys=False))
    code, out, err = ufdl("validate", registry)
    assert code == 0 and "outer/1.yaml:10: note: specific.nodes.inner: template 'mix' version 1 is not checked " \
                         "offline either: this graph is not checked offline" in out, out + err
    assert sync_cli("diff", registry)[0] == 3
    code, out, err = sync_cli("sync", registry)
    assert code == 0 and "create    mix/1.yaml" in out and "create    outer/1.yaml" in out, out + err
    assert templates(engine) == ALL | {("mix", 1), ("outer", 1), (scale, 1)}
    # The graph was checked on import: a Scale job type's template may not be pruned, nor its users' children.
    shutil.rmtree(registry / "outer")
    code, out, err = sync_cli("sync", registry, "--prune")
    assert code == 0 and out == "prune     outer/1\n", out + err
    assert templates(engine) == ALL | {("mix", 1), (scale, 1)}


def test_an_export_writes_a_meta_template_whose_child_was_deleted_and_says_it_does_not_validate(
        sync_cli, ufdl, registry, engine, admin, tmp_path):
    """It cannot be recreated elsewhere, but left out of the export, a sync --prune of it on this very server
    deleted it. Written, with a warning and exit 1: the registry fails validate (and sync) until someone
    reinstates the child or deletes the meta-template too. The deleted child is not exported: a sync would
    reinstate it."""
    assert sync_cli("sync", registry)[0] == 0
    [count] = admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": "word-count"}]}).json
    admin.delete(f"/v1/job-templates/{count['pk']}")
    exported = tmp_path / "exported"
    code, out, err = sync_cli("export", exported)
    assert code == 1, out + err
    assert sorted(str(path.relative_to(exported)) for path in exported.rglob("*.yaml")) == [
        "shell-then-count/1.yaml", "shell/1.yaml"]
    assert (f"warning: shell-then-count/1.yaml: specific.nodes.count: its child word-count/1 is deleted on the "
            f"server: written all the same (left out, a sync --prune of {exported} would delete shell-then-count/1 "
            f"here), but without the child's file a registry does not validate: reinstate the child (then export "
            f"again), or delete shell-then-count/1 too\n") in err
    assert "1 meta-template(s) with a deleted child" in err
    code, out, err = ufdl("validate", exported)
    assert code == 1 and "template 'word-count' version 1 is not in the registry" in out
    code, out, err = sync_cli("sync", exported, "--prune")
    assert code == 1, out + err
    assert templates(engine) == {("shell", 1), ("shell-then-count", 1)}

    admin.delete(f"/v1/job-templates/{count['pk']}/reinstate")
    code, out, err = sync_cli("export", exported)
    assert code == 0 and "warning" not in err, out + err
    assert ufdl("validate", exported)[0] == 0
    assert sync_cli("sync", exported, "--prune")[0] == 0
    assert templates(engine) == ALL


def test_an_export_warns_of_a_meta_template_whose_scale_child_was_deleted(sync_cli, registry, engine, admin,
                                                                          tmp_path):
    scale = _scale_template(admin)
    assert sync_cli("sync", registry)[0] == 0
    admin.post("/v1/job-templates/import", _mix(scale), status=201)
    # As a database of before the v6 API kept its templates (DELETE is 409 now) may hold one.
    from sqlalchemy import update
    from ufdl_pyramid.models.meta import utcnow
    with engine.begin() as connection:
        connection.execute(update(JobTemplate).where(JobTemplate.name == scale).values(deletion_time=utcnow()))
    code, out, err = sync_cli("export", tmp_path / "exported")
    assert code == 1 and f"warning: mix/1.yaml: specific.nodes.b: its child {scale}/1 is deleted" in err, out + err


def test_prune_keeps_the_children_of_templates_that_stay(sync_cli, registry, engine, tmp_path):
    assert sync_cli("sync", registry)[0] == 0
    only_meta_missing = tmp_path / "partial"
    shutil.copytree(registry, only_meta_missing)
    shutil.rmtree(only_meta_missing / "shell-then-count")
    _add_job(engine, "shell-then-count", "PENDING")
    code, out, err = sync_cli("sync", only_meta_missing, "--prune")
    assert code == 0
    assert templates(engine) == ALL


def test_prune_follows_meta_templates_down_to_their_children(sync_cli, registry, engine, tmp_path):
    """A template that stays keeps its children and theirs (a meta-template's meta-template); a pruned
    meta-template's children not otherwise kept go with it."""
    outer = {"name": "outer", "version": 1, "description": "", "scope": "public", "domain": None,
             "licence": "Apache-2.0", "specific": {"nodes": {"inner": {"name": "shell-then-count", "version": 1}},
                                                   "dependencies": []}}
    (registry / "outer").mkdir()
    (registry / "outer" / "1.yaml").write_text(yaml.safe_dump(outer, sort_keys=False))
    assert sync_cli("sync", registry)[0] == 0
    only_shell = tmp_path / "only-shell"
    (only_shell / "shell").mkdir(parents=True)
    shutil.copy(registry / "shell" / "1.yaml", only_shell / "shell" / "1.yaml")

    _add_job(engine, "outer", "PENDING")
    code, out, err = sync_cli("sync", only_shell, "--prune")
    assert code == 0, out + err
    assert "keep      word-count/1 (not in the registry, but a child of shell-then-count/1, which stays)" in out
    assert templates(engine) == ALL | {("outer", 1)}

    with Session(engine) as db, db.begin():
        db.scalar(select(Job)).status = "COMPLETED"
    code, out, err = sync_cli("sync", only_shell, "--prune")
    assert code == 0, out + err
    assert templates(engine) == {("shell", 1)}


def test_a_deleted_job_keeps_no_template_from_being_pruned(sync_cli, registry, engine, admin, tmp_path):
    assert sync_cli("sync", registry)[0] == 0
    extra = tmp_path / "extra"
    (extra / "busy").mkdir(parents=True)
    document = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
    (extra / "busy" / "1.yaml").write_text(yaml.safe_dump({**document, "name": "busy"}, sort_keys=False))
    assert sync_cli("sync", extra)[0] == 0
    [busy] = admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": "busy"}]}).json
    job = admin.post(f"/v1/job-templates/{busy['pk']}/create-job", {
        "input_values": {"input": {"value": "x", "type": "str"}},
        "parameter_values": {"command": {"value": "cat", "type": "str"}}}, status=201).json
    assert "keep      busy/1" in sync_cli("diff", registry, "--prune")[1]
    admin.delete(f"/v1/jobs/{job['pk']}")
    code, out, err = sync_cli("sync", registry, "--prune")
    assert code == 0 and "prune     busy/1" in out, out + err
    assert templates(engine) == ALL


def test_prune_with_a_registry_of_no_templates_is_refused(sync_cli, registry, engine, tmp_path):
    """An empty directory (a wrong path, a checkout gone wrong) would soft-delete every template."""
    assert sync_cli("sync", registry)[0] == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    settings_only = tmp_path / "settings-only"
    settings_only.mkdir()
    (settings_only / "registry.yaml").write_text("licences: [Apache-2.0]\n")
    for directory in (empty, settings_only):
        for command in (("sync", directory, "--prune"), ("sync", directory, "--prune", "--dry-run"),
                        ("diff", directory, "--prune")):
            code, out, err = sync_cli(*command)
            assert code == 1 and err.endswith("the registry holds no templates: --prune would delete every "
                                              "template (refused)\n"), (command, out, err)
    assert templates(engine) == ALL
    assert sync_cli("sync", empty)[0] == 0  # without --prune: nothing to do
    assert templates(engine) == ALL


def test_the_sync_endpoint_refuses_prune_with_a_registry_of_no_templates(admin, registry, engine):
    admin.post("/v1/job-templates/import", yaml.safe_load((registry / "shell" / "1.yaml").read_text()), status=201)
    answer = admin.post("/v1/job-templates/sync", {"files": {"registry.yaml": "domains: [ic]\n"}, "prune": True},
                        status=400).json
    assert answer["detail"] == "the registry holds no templates: --prune would delete every template (refused)"
    assert templates(engine) == {("shell", 1)}


def test_export_writes_the_latest_active_version_and_those_meta_templates_use(sync_cli, registry, admin, tmp_path):
    assert sync_cli("sync", registry)[0] == 0
    # shell-then-count uses shell 1; no meta-template uses upper. Version 3 of each is deleted below.
    for name, version in (("shell", 2), ("shell", 3), ("upper", 1), ("upper", 2), ("upper", 3)):
        document = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
        document.update(name=name, version=version, description=f"version {version}")
        (registry / name).mkdir(exist_ok=True)
        (registry / name / f"{version}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    assert sync_cli("sync", registry)[0] == 0
    for name in ("shell", "upper"):
        [third] = admin.post("/v1/job-templates/list", {"expressions": [
            {"type": "exact", "field": "name", "value": name}, {"type": "exact", "field": "version", "value": 3}]}).json
        admin.delete(f"/v1/job-templates/{third['pk']}")
    exported = tmp_path / "exported"
    code, out, err = sync_cli("export", exported)
    assert code == 0, out + err
    files = sorted(str(path.relative_to(exported)) for path in exported.rglob("*.yaml"))
    assert files == ["shell-then-count/1.yaml", "shell/1.yaml", "shell/2.yaml", "upper/2.yaml", "word-count/1.yaml"]
    assert "description: version 2" in (exported / "upper" / "2.yaml").read_text()
    every = tmp_path / "every"
    assert sync_cli("export", every, "--all-versions")[0] == 0
    assert sorted(str(path.relative_to(every)) for path in every.rglob("*.yaml")) == [
        "shell-then-count/1.yaml", "shell/1.yaml", "shell/2.yaml", "upper/1.yaml", "upper/2.yaml", "word-count/1.yaml"]


def test_an_export_into_an_earlier_one_rewrites_the_files_that_differ_and_only_those(ufdl, registry, tmp_path):
    assert ufdl("sync", registry)[0] == 0
    exported = tmp_path / "exported"
    assert ufdl("export", exported)[0] == 0
    (exported / "shell" / "1.yaml").write_text("edited by hand\n")
    code, out, err = ufdl("export", exported)
    assert (code, out) == (0, "wrote     shell/1.yaml\n")
    assert "3 template(s) exported, 1 file(s) written" in err
    assert (exported / "shell" / "1.yaml").read_text() == (registry / "shell" / "1.yaml").read_text()


def test_an_export_names_each_file_it_cannot_write_and_writes_the_others(ufdl, registry, tmp_path):
    assert ufdl("sync", registry)[0] == 0
    exported = tmp_path / "exported"
    (exported / "shell" / "1.yaml").mkdir(parents=True)  # a folder where a file goes
    (exported / "shell" / "1.yaml" / "notes").write_text("mine\n")
    (exported / "word-count").write_text("a file where a folder goes\n")
    code, out, err = ufdl("export", exported)
    assert code == 1, out + err
    assert out.splitlines() == ["PROBLEM   shell/1.yaml (cannot write: Is a directory)",
                                "wrote     shell-then-count/1.yaml",
                                "PROBLEM   word-count/1.yaml (cannot write: File exists)"], out
    assert err.splitlines()[-1] == "3 template(s) exported, 1 file(s) written, 2 could not be written"
    assert (exported / "shell-then-count" / "1.yaml").read_text() == \
        (registry / "shell-then-count" / "1.yaml").read_text()
    assert (exported / "shell" / "1.yaml" / "notes").read_text() == "mine\n"


def test_an_interrupted_export_leaves_no_half_written_file(ufdl, ini, registry, tmp_path):
    """The disk filling up half-way through a file: the file is as it was, and no temporary file stays."""
    import resource
    import signal
    assert ufdl("sync", registry)[0] == 0
    exported = tmp_path / "exported"
    assert ufdl("export", exported)[0] == 0
    (exported / "shell" / "1.yaml").write_text("edited by hand\n")
    (exported / "word-count" / "1.yaml").unlink()
    before = sorted(path.relative_to(exported) for path in exported.rglob("*"))

    def small_files_only():  # writing past 400 bytes fails with EFBIG (shell/1.yaml holds 585)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (400, 400))

    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ufdl"), "-c", ini, "templates",
                           "export", str(exported)], capture_output=True, text=True, timeout=60,
                          preexec_fn=small_files_only)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (exported / "shell" / "1.yaml").read_text() == "edited by hand\n"
    assert done.stdout.splitlines() == ["PROBLEM   shell/1.yaml (cannot write: File too large)",
                                        "PROBLEM   word-count/1.yaml (cannot write: File too large)"]
    assert sorted(path.relative_to(exported) for path in exported.rglob("*")) == before


def test_an_export_says_which_files_of_the_directory_it_did_not_write(ufdl, registry, tmp_path, admin):
    """They stay (a sync of the directory would create them again), and it said nothing of them."""
    assert ufdl("sync", registry)[0] == 0
    exported = tmp_path / "exported"
    assert ufdl("export", exported)[0] == 0
    count = admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": "shell-then-count"}]}).json[0]
    admin.delete(f"/v1/job-templates/{count['pk']}")
    (exported / "registry.yaml").write_text("licences: [Apache-2.0]\n")
    code, out, err = ufdl("export", exported)
    assert (code, out) == (0, "kept      shell-then-count/1.yaml (not exported: left as it was)\n"), out
    assert "1 other file(s) left as they were" in err


# Start-up and remote

def test_the_server_syncs_the_registry_at_start_up(engine, registry, caplog):
    caplog.set_level("INFO", logger="ufdl_pyramid.registry_config")
    make_test_app(engine, **{"ufdl.templates_registry": str(registry)})
    assert templates(engine) == ALL
    assert "3 created" in caplog.text
    make_test_app(engine, **{"ufdl.templates_registry": str(registry)})
    assert "0 created (none), 3 identical" in caplog.text


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server_url(wsgi_app):
    server = make_server("127.0.0.1", 0, wsgi_app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_remote_diff_sync_export(ufdl, registry, engine, admin, server_url, tmp_path):
    remote = ("--url", server_url, "--token", admin.token)
    assert ufdl("diff", registry, *remote)[0] == 3
    code, out, err = ufdl("sync", registry, *remote)
    assert code == 0, out + err
    assert templates(engine) == ALL
    code, out, err = ufdl("sync", registry, *remote)
    assert (code, out) == (0, "")
    assert ufdl("diff", registry, *remote)[0] == 0
    exported = tmp_path / "remote-export"
    assert ufdl("export", exported, *remote)[0] == 0
    for path in ("shell/1.yaml", "word-count/1.yaml", "shell-then-count/1.yaml"):
        assert (exported / path).read_text() == (registry / path).read_text()


def test_a_remote_export_shows_its_progress_as_sync_does(ufdl, registry, admin, server_url, tmp_path, monkeypatch):
    """It reads the templates one request each: a long export says how far it got."""
    shell = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
    for number in range(20):
        (registry / f"copy-{number}").mkdir()
        (registry / f"copy-{number}" / "1.yaml").write_text(yaml.safe_dump({**shell, "name": f"copy-{number}"}))
    assert ufdl("sync", registry)[0] == 0

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, err = ufdl("export", tmp_path / "exported", "--url", server_url, "--token", admin.token)
    assert code == 0, out + terminal.getvalue()
    assert f"\rexporting [{'#' * 30}] 23/23\n" in terminal.getvalue()


def test_a_local_diff_shows_its_progress_as_sync_does(ufdl, registry, engine, monkeypatch):
    """A diff imports every new template, as a sync, before it rolls back: it took as long, and said nothing."""
    shell = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
    for number in range(20):
        (registry / f"copy-{number}").mkdir()
        (registry / f"copy-{number}" / "1.yaml").write_text(yaml.safe_dump({**shell, "name": f"copy-{number}"}))

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, err = ufdl("diff", registry)
    assert code == 3, out + terminal.getvalue()
    assert f"\rchecking [{'#' * 30}] 23/23\n" in terminal.getvalue()
    assert templates(engine) == set()


def test_remote_sync_reports_misplaced_files_before_sending(ufdl, registry, admin, server_url, engine):
    (registry / "notes.txt").write_text("not a template")
    code, out, err = ufdl("sync", registry, "--url", server_url, "--token", admin.token)
    assert code == 1
    assert "notes.txt: unexpected file" in out
    assert "sending" not in err
    assert templates(engine) == set()


def test_a_remote_diff_compares_after_normalising(ufdl, registry, admin, server_url):
    remote = ("--url", server_url, "--token", admin.token)
    assert ufdl("sync", registry, *remote)[0] == 0
    # Same content in another form (key order, quoting): identical, not a conflict as a text comparison says.
    document = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
    (registry / "shell" / "1.yaml").write_text(yaml.safe_dump(dict(reversed(document.items())), default_style='"'))
    code, out, err = ufdl("diff", registry, *remote)
    assert code == 0, out + err
    assert "identical shell/1.yaml" in out


def test_the_sync_endpoint(admin, alice, registry):
    files = {f"{path.parent.name}/{path.name}": path.read_text() for path in registry.glob("*/*.yaml")}
    alice.post("/v1/job-templates/sync", {"files": files}, status=403)
    admin.post("/v1/job-templates/sync", {"files": "shell/1.yaml"}, status=400)
    answer = admin.post("/v1/job-templates/sync", {"files": files, "dry_run": True}).json
    assert (sorted(answer["create"]), answer["applied"]) == (sorted(files), False)
    assert admin.post("/v1/job-templates/list", {}).json == []
    assert admin.post("/v1/job-templates/sync", {"files": files}).json["applied"] is True
    assert sorted(admin.post("/v1/job-templates/sync", {"files": files}).json["identical"]) == sorted(files)
    broken = {**files, "shell/2.yaml": files["shell/1.yaml"]}
    answer = admin.post("/v1/job-templates/sync", {"files": broken}, status=400).json
    assert answer["problems"] == [{"path": "shell/2.yaml", "line": 2,
                                   "message": "version: 1 does not agree with the file name (2)"}]


def test_a_registry_file_name_with_a_trailing_newline_is_no_version_file(ufdl, admin, registry):
    """'$' matched before a final newline: 'shell/2.yaml\\n' was read as version 2 of shell."""
    files = {f"{path.parent.name}/{path.name}": path.read_text() for path in registry.glob("*/*.yaml")}
    second = files["shell/1.yaml"].replace("version: 1", "version: 2")
    answer = admin.post("/v1/job-templates/sync", {"files": {**files, "shell/2.yaml\n": second}}, status=400).json
    assert [(problem["path"], problem["message"].split(":")[0]) for problem in answer["problems"]] == [
        ("shell/2.yaml\n", "unexpected file")]
    (registry / "shell" / "2.yaml\n").write_text(second)
    code, out, err = ufdl("validate", registry)
    assert code == 1 and "unexpected file" in out, out


def test_the_sync_endpoint_has_its_own_size_limit(engine, admin, registry):
    app = webtest.TestApp(make_test_app(engine, **{"ufdl.max_registry_size": "2K"}))
    headers = {"Authorization": f"Bearer {admin.token}"}
    files = {"shell/1.yaml": (registry / "shell" / "1.yaml").read_text()}
    assert app.post_json("/v1/job-templates/sync", {"files": files, "dry_run": True}, headers=headers).status_int == 200
    files["word-count/1.yaml"] = "#" * 2048
    answer = app.post_json("/v1/job-templates/sync", {"files": files}, headers=headers, status=413).json
    assert "limit of 2048 bytes" in answer["detail"]


def test_progress_is_a_line_per_tenth_off_a_terminal_and_only_for_long_runs():
    short, long = io.StringIO(), io.StringIO()
    progress = Progress("importing", short)
    for done in range(1, 100):
        progress(done, 99)
    progress = Progress("importing", long)
    for done in range(1, 1001):
        progress(done, 1000)
    assert short.getvalue() == ""
    assert long.getvalue().splitlines() == ["importing: 1/1000"] + [f"importing: {n}/1000"
                                                                    for n in range(100, 1001, 100)]
    # From 500 files on, as the README says.
    boundary = io.StringIO()
    progress = Progress("importing", boundary)
    for done in range(1, 501):
        progress(done, 500)
    assert boundary.getvalue().splitlines() == ["importing: 1/500"] + [f"importing: {n}/500"
                                                                       for n in range(50, 501, 50)]


def test_cli_failures_are_one_line(ufdl, registry, admin, tmp_path):
    import http.server
    import threading

    occupied = tmp_path / "a-file"
    occupied.write_text("in the way")
    code, out, err = ufdl("export", occupied)
    assert code == 1 and err.startswith("ufdl: cannot write") and "Traceback" not in err

    class NotUfdl(http.server.BaseHTTPRequestHandler):  # a proxy's page, another service on the port
        def do_POST(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotUfdl)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for url in (f"http://127.0.0.1:{server.server_port}", "http://[::1"):
            code, out, err = ufdl("sync", registry, "--url", url, "--token", admin.token)
            assert code == 1 and err.splitlines()[-1].startswith("ufdl: ") and "Traceback" not in err, err
    finally:
        server.shutdown()


@pytest.mark.parametrize("status, answer", [
    (200, b"[]"), (200, b'"ok"'), (200, b"{}"), (200, b'{"create": 1}'), (200, b'[{"pk": 1}]'),
    (400, b'{"problems": [1]}'), (409, b'{"plan": {}}'), (404, b"<html>Not Found</html>"),
])
def test_a_remote_command_says_when_the_answer_is_not_a_ufdl_servers(ufdl, registry, tmp_path, status, answer):
    """Another service's JSON (a list, an object of other fields) was read as a plan, a list of templates or of
    problems: a KeyError, TypeError or AttributeError, and a traceback."""
    import http.server

    class OtherService(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtherService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        for command in (("diff", registry), ("sync", registry), ("export", tmp_path / "exported")):
            if command[0] == "export" and answer == b"[]":
                continue  # a server without templates
            code, out, err = ufdl(*command, "--url", url, "--token", "a-token")
            expected = f"ufdl: {url}: the answer is not a ufdl server's" if status != 404 else "ufdl: POST /v1/"
            assert (code, out) == (1, "") and err.splitlines()[-1].startswith(expected), (command, out, err)
            assert err.endswith(" (is this a ufdl server?)\n") and "Traceback" not in err, err
    finally:
        server.shutdown()
        server.server_close()


def test_a_remote_command_without_a_token_says_what_it_needs(ufdl, registry, server_url, tmp_path):
    for command in (("diff", registry), ("sync", registry), ("export", tmp_path / "exported")):
        code, out, err = ufdl(*command, "--url", server_url)
        assert (code, err) == (1, "ufdl: --url needs --token or --username (an administrator's)\n"), err


def test_credentials_without_url_are_a_usage_error_not_a_local_run(ufdl, registry, engine, tmp_path):
    """``--token`` (or ``--username``) with ``--url`` left out was ignored: the command synced (or exported) the
    INI's database, exit 0, instead of the server the credentials were meant for."""
    for command in (("diff", registry), ("sync", registry, "--prune"), ("export", tmp_path / "exported")):
        for credentials in (("--token", "a-token"), ("--username", "admin", "--password", "password123")):
            code, out, err = ufdl(*command, *credentials)
            assert (code, out) == (2, ""), (command, out, err)
            assert err.startswith(f"ufdl: {credentials[0]}") and "without --url" in err and err.count("\n") == 1
    assert templates(engine) == set()
    assert not (tmp_path / "exported").exists()


def test_a_remote_command_logs_in_with_a_username(ufdl, registry, engine, admin, server_url, tmp_path,
                                                  monkeypatch):
    # A pipeline keeps a password in its secrets, not an access token that expires within the hour.
    code, out, err = ufdl("sync", registry, "--url", server_url, "--username", "admin", "--password", "password123")
    assert code == 0, out + err
    assert templates(engine) == ALL
    monkeypatch.setenv("UFDL_PASSWORD", "password123")
    assert ufdl("export", tmp_path / "exported", "--url", server_url, "--username", "admin")[0] == 0
    assert (tmp_path / "exported" / "shell" / "1.yaml").read_text() == (registry / "shell" / "1.yaml").read_text()
    code, out, err = ufdl("diff", registry, "--url", server_url, "--username", "admin", "--password", "wrong")
    assert code == 1 and err.startswith(f"ufdl: cannot log in at {server_url} as admin: ") and err.count("\n") == 1
    code, out, err = ufdl("diff", registry, "--url", "ftp://x", "--username", "admin")
    assert (code, err) == (1, "ufdl: cannot log in at ftp://x: not an http(s) URL: 'ftp://x'\n")
    with pytest.raises(SystemExit) as usage:
        ufdl("diff", registry, "--url", server_url, "--username", "admin", "--token", admin.token)
    assert usage.value.code == 2


def test_a_name_starting_with_a_dot_is_refused(admin):
    # A name is a folder of the registry: hidden (or '.', '..') it would not be read back, or land outside.
    shell = {"name": "x", "version": 1, "scope": "public", "licence": "MIT",
             "specific": {"job_type": "Process<str, str>", "executor_class": "x.Y", "required_packages": "",
                          "parameters": {}}}
    admin.post("/v1/job-templates/import", shell, status=201)
    for name in (".hidden", "..", "."):
        admin.post("/v1/job-templates/import", {**shell, "name": name}, status=400)


def test_an_unversioned_child_is_the_registrys_version_even_when_a_newer_one_is_pruned(sync_cli, registry, engine):
    assert sync_cli("sync", registry)[0] == 0
    # The server gets shell v2, which the registry does not have; a new meta-template names shell without a
    # version: in the registry that is v1. Pruning v2 in the same sync must not leave the meta-job on v2.
    (registry / "shell" / "2.yaml").write_text((registry / "shell" / "1.yaml").read_text().replace(
        "version: 1", "version: 2", 1))
    assert sync_cli("sync", registry)[0] == 0
    (registry / "shell" / "2.yaml").unlink()
    meta = yaml.safe_load((registry / "shell-then-count" / "1.yaml").read_text())
    meta["name"] = "unversioned"
    del meta["specific"]["nodes"]["shell"]["version"]
    (registry / "unversioned").mkdir()
    (registry / "unversioned" / "1.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    code, out, err = sync_cli("sync", registry, "--prune")
    assert code == 0, out + err
    with Session(engine) as db:
        stored = db.scalar(select(JobTemplate).where(JobTemplate.name == "unversioned", JobTemplate.active()))
        assert stored.spec["nodes"]["shell"]["version"] == 1
    assert sync_cli("diff", registry)[0] == 0  # and the next diff finds nothing to do


def test_an_unversioned_child_is_the_registrys_newest_whatever_newer_ones_the_server_has(sync_cli, registry,
                                                                                          engine, admin):
    """Resolved when the registry is read: validate checked the meta-template against shell 1, so sync must
    not take the server's shell 2 (not in the registry, not pruned)."""
    assert sync_cli("sync", registry)[0] == 0
    shell = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
    admin.post("/v1/job-templates/import", {**shell, "version": 2, "description": "the server's own"}, status=201)
    meta = yaml.safe_load((registry / "shell-then-count" / "1.yaml").read_text())
    meta["name"] = "unversioned"
    del meta["specific"]["nodes"]["shell"]["version"]
    (registry / "unversioned").mkdir()
    (registry / "unversioned" / "1.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    code, out, err = sync_cli("diff", registry)
    assert code == 3 and out.splitlines()[0] == "create    unversioned/1.yaml", out + err
    code, out, err = sync_cli("sync", registry)
    assert code == 0, out + err
    with Session(engine) as db:
        stored = db.scalar(select(JobTemplate).where(JobTemplate.name == "unversioned"))
        assert stored.spec["nodes"]["shell"]["version"] == 1
    assert sync_cli("diff", registry)[0] == 0


# What a registry directory may hold

def _validate_in_a_subprocess(registry) -> subprocess.CompletedProcess:
    """``ufdl templates validate`` in its own process: a read that blocks fails the test instead of hanging it."""
    ufdl_script = os.path.join(os.path.dirname(sys.executable), "ufdl")
    return subprocess.run([ufdl_script, "templates", "validate", str(registry)], capture_output=True, text=True,
                          timeout=60)


def test_links_to_outside_the_registry_fifos_and_devices_are_refused(registry, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(registry / "shell" / "1.yaml", outside / "1.yaml")
    (registry / "shell" / "2.yaml").symlink_to(outside / "1.yaml")  # a valid template: it would pass unseen
    (registry / "linked").symlink_to(outside, target_is_directory=True)
    os.mkfifo(registry / "shell" / "3.yaml")  # reading it would wait for a writer forever
    (registry / "null").mkdir()
    (registry / "null" / "1.yaml").symlink_to("/dev/null")
    (registry / "word-count" / "2.yaml").symlink_to("1.yaml")  # inside the registry: read (and checked)
    done = _validate_in_a_subprocess(registry)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    problems = done.stdout.splitlines()
    assert "shell/2.yaml: a symbolic link to outside the registry: refused" in problems
    assert "linked: a symbolic link to outside the registry: refused" in problems
    assert "shell/3.yaml: not a regular file (a FIFO, device or socket): refused" in problems
    assert "null/1.yaml: a symbolic link to outside the registry: refused" in problems
    assert "word-count/2.yaml:2: version: 1 does not agree with the file name (2)" in problems
    assert len(problems) == 5, problems


def test_a_fifo_inside_the_registry_is_refused_unread(registry):
    os.mkfifo(registry / "shell" / "3.yaml")
    (registry / "shell" / "4.yaml").symlink_to("3.yaml")
    done = _validate_in_a_subprocess(registry)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "shell/3.yaml: not a regular file (a FIFO, device or socket): refused",
        "shell/4.yaml: not a regular file (a FIFO, device or socket): refused"]


def test_a_file_over_8_mib_is_refused(ufdl, registry):
    big = registry / "shell" / "2.yaml"
    big.write_text((registry / "shell" / "1.yaml").read_text().replace("version: 1", "version: 2", 1)
                   + "# padding\n" * (8 * 1024 * 1024 // 10))
    assert big.stat().st_size > 8 * 1024 * 1024
    code, out, err = ufdl("validate", registry)
    assert (code, out) == (1, f"shell/2.yaml: {big.stat().st_size} bytes: larger than the 8 MiB a registry file "
                              f"may hold\n"), out + err
    big.write_text(big.read_text()[:8 * 1024 * 1024 - 100])  # just under the limit: read
    code, out, err = ufdl("validate", registry)
    assert code == 0, out + err


def _denied(listing, denied: str):
    def listing_but(path="."):
        if os.path.basename(os.fspath(path)) == denied:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return listing(path)
    return listing_but


def test_a_directory_that_cannot_be_listed_is_a_problem(ufdl, registry, monkeypatch):
    (registry / "locked").mkdir()
    (registry / "locked").chmod(0)
    try:
        if os.geteuid() == 0:  # root lists it anyway: make the listing fail as it fails for anyone else
            for name in ("listdir", "scandir"):
                monkeypatch.setattr(os, name, _denied(getattr(os, name), "locked"))
        code, out, err = ufdl("validate", registry)
    finally:
        (registry / "locked").chmod(0o755)
    assert (code, out) == (1, "locked: cannot list: Permission denied\n"), out + err
    assert "Traceback" not in err


# A prune racing a create-job (PostgreSQL: SQLite runs one writer at a time)

def _registry_files(directory) -> dict[str, str]:
    return {str(path.relative_to(directory)): path.read_text() for path in directory.rglob("*.yaml")}


def _busy_template(admin, registry) -> int:
    """A template on the server that the registry does not have: ``sync --prune`` deletes it unless it has jobs."""
    shell = yaml.safe_load((registry / "shell" / "1.yaml").read_text())
    return admin.post("/v1/job-templates/import", {**shell, "name": "busy"}, status=201).json["pk"]


CREATE_BUSY_JOB = {"input_values": {"input": {"value": "x", "type": "str"}},
                   "parameter_values": {"command": {"value": "cat", "type": "str"}}}


def _jobs_on_deleted_templates(engine) -> list:
    with Session(engine) as db:
        return db.execute(select(Job.id, JobTemplate.name).join(JobTemplate, Job.template_id == JobTemplate.id)
                          .where(Job.active(), JobTemplate.deletion_time.is_not(None))).all()


@pytest.mark.parametrize("first", ["create-job", "prune"])
def test_a_prune_racing_a_create_job_leaves_no_job_on_a_deleted_template(on_postgresql, monkeypatch, first,
                                                                       wsgi_app, engine, admin, bob, registry):
    """create-job share-locks its template, a prune locks those it would delete before counting their jobs:
    whichever comes second waits for the first to commit, then sees its outcome. Before, the job's foreign key
    took a lock that the prune's update did not conflict with: a job was created on a template deleted at the
    same moment. On PostgreSQL a create-job goes through its express lane, whose one statement inserts the job
    from its template's row share-locked: it waits for the prune too (when the prune is first); a create-job
    paused before its commit is the full stack's (the lane has no such moment)."""
    from test_job_concurrency import wait_until_done_or_blocked
    from ufdl_pyramid.services.job_creation import JobCreator
    from ufdl_pyramid.services.template_registry import RegistrySync

    if first == "create-job":
        wsgi_app = make_test_app(engine, **{"ufdl.express_lanes": "false"})
    busy = _busy_template(admin, registry)
    paused, go = threading.Event(), threading.Event()

    def pausing(method):
        def paused_before_commit(*args, **kwargs):
            result = method(*args, **kwargs)
            paused.set()
            assert go.wait(60)
            return result
        return paused_before_commit

    if first == "create-job":
        monkeypatch.setattr(JobCreator, "create", pausing(JobCreator.create))
    else:
        monkeypatch.setattr(RegistrySync, "apply", pausing(RegistrySync.apply))
    answers = {}

    def create_job():
        answers["create-job"] = webtest.TestApp(wsgi_app).post_json(
            f"/v1/job-templates/{busy}/create-job", CREATE_BUSY_JOB, headers=bob.headers(), expect_errors=True)

    def prune():
        answers["prune"] = webtest.TestApp(wsgi_app).post_json(
            "/v1/job-templates/sync", {"files": _registry_files(registry), "prune": True}, headers=admin.headers(),
            expect_errors=True)

    threads = {"create-job": threading.Thread(target=create_job), "prune": threading.Thread(target=prune)}
    second = "prune" if first == "create-job" else "create-job"
    threads[first].start()
    try:
        assert paused.wait(60)
        threads[second].start()
        wait_until_done_or_blocked(engine, threads[second])
    finally:
        go.set()
        for thread in threads.values():
            thread.join(60)
    assert answers["prune"].status_int == 200, answers["prune"].text
    if first == "create-job":
        assert answers["create-job"].status_int == 201, answers["create-job"].text
        assert answers["prune"].json["keep"] == {"busy/1": "1 active job(s)"}, answers["prune"].json
    else:
        assert answers["prune"].json["prune"] == ["busy/1"], answers["prune"].json
        assert answers["create-job"].status_int == 400, answers["create-job"].text
        assert "is deleted" in answers["create-job"].json["detail"]
    assert _jobs_on_deleted_templates(engine) == []
