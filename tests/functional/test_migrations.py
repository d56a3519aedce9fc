"""The migrations build exactly the schema the models describe, keep the data they find, and ``ufdl db
revision`` writes the next one."""
import json
import pathlib
import re
import sqlite3

import pytest
import webtest
from sqlalchemy import delete, select, text, update

from ufdl_pyramid.cli import main as ufdl
from ufdl_pyramid.errors import Conflict
from ufdl_pyramid.models import Base, JobTemplate, JobType, TemplateTypeReference, get_engine
from ufdl_pyramid.services import schema
from ufdl_pyramid.testing import TEST_SETTINGS, ApiClient, UserFactory, make_test_app
from job_helpers import CONSUME, PIPELINE, PRODUCE, register

MANIFESTS = pathlib.Path(__file__).parent / "seed_manifests"


def cli_ini(path: pathlib.Path, url: str) -> pathlib.Path:
    """An INI for the ``ufdl`` command naming the database ``url`` (``%`` escaped by the caller)."""
    path.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = {url}\n"
                    f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n")
    return path


def test_the_models_and_the_migrations_agree(engine, tmp_path, capsys):
    """Autogenerating against the migrated test database finds nothing to do (on either database)."""
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    ini = cli_ini(tmp_path / "cli.ini", url)
    assert ufdl(["-c", str(ini), "db", "revision", "-m", "nothing changed", "--dir", str(tmp_path)]) == 0
    assert "review it before committing" in capsys.readouterr().out
    [written] = tmp_path.glob("*_nothing_changed.py")
    text = written.read_text()
    newest = re.search(r"^down_revision = '(\d{4})'$", text, re.MULTILINE).group(1)  # the newest shipped
    assert written.name == f"{int(newest) + 1:04d}_nothing_changed.py"
    assert "op." not in text, text


def test_a_revision_writes_what_the_models_changed_and_empty_writes_nothing(tmp_path, capsys):
    """Against a database whose schema lacks a table the models have (a model change not migrated yet)."""
    database = tmp_path / "behind.sqlite"
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{database}"})
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE job_event_retention"))
    engine.dispose()
    ini = cli_ini(tmp_path / "cli.ini", f"sqlite:///{database}")
    for name, flags in (("found", []), ("empty", ["--empty"])):
        folder = tmp_path / name
        folder.mkdir()
        assert ufdl(["-c", str(ini), "db", "revision", "-m", name, "--dir", str(folder), *flags]) == 0
        [written] = folder.glob(f"*_{name}.py")
        assert ("op.create_table('job_event_retention'" in written.read_text()) == (name == "found")


def test_a_revision_against_a_database_not_at_the_newest_schema_is_refused(tmp_path, capsys):
    database = tmp_path / "old.sqlite"
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{database}"})
    schema.upgrade(engine, "0004")
    engine.dispose()
    ini = cli_ini(tmp_path / "cli.ini", f"sqlite:///{database}")
    assert ufdl(["-c", str(ini), "db", "revision", "-m", "too early", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ufdl: ") and "not up to date" in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("*_too_early.py"))


def counts(engine) -> dict:
    with engine.connect() as connection:
        return {table: connection.scalar(text(f"SELECT count(*) FROM {table}"))
                for table in ("jobs", "job_outputs", "job_events", "nodes")} | {
            "current jobs": connection.scalar(text("SELECT count(current_job_id) FROM nodes"))}


def populate(engine, tmp_path) -> ApiClient:
    """A pipeline job whose step is running on a node, with events and an output; the admin who made it."""
    app = webtest.TestApp(make_test_app(engine, **{"ufdl.storage.path": str(tmp_path / "outputs")}))
    admin = UserFactory(engine, app).login("admin", admin=True)
    for document in (PRODUCE, CONSUME, PIPELINE):
        admin.post("/v1/job-templates/import", document, status=201)
    pipeline = admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": "pipeline"}]}).json[0]["pk"]
    admin.post(f"/v1/job-templates/{pipeline}/create-job",
               {"input_values": {"first:input": {"value": "words", "type": "str"}}}, status=201)
    steps = {"expressions": [{"type": "isnull", "field": "parent", "invert": True}]}
    step = admin.post("/v1/jobs/list", steps).json[0]
    node = register(admin)
    node.get(f"/v1/jobs/{step['pk']}/acquire")
    node.post(f"/v1/jobs/{step['pk']}/start", {})
    node.request("POST", f"/v1/jobs/{step['pk']}/outputs/output/BLOB", body=b"bytes", status=201)
    return admin


def test_going_down_to_0004_and_up_again_keeps_every_row(tmp_path):
    """0005 renamed a column of jobs by rebuilding the table on SQLite: dropping the old one (foreign keys on)
    deleted every job's outputs and events and a meta-job's steps, and the upgrade said it succeeded."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/populated.sqlite"})
    schema.upgrade(engine)
    populate(engine, tmp_path)
    populated = counts(engine)
    assert populated == {"jobs": 2, "job_outputs": 1, "job_events": 4, "nodes": 1, "current jobs": 1}

    schema.downgrade(engine, "0004")
    assert counts(engine) == populated
    schema.upgrade(engine)
    assert counts(engine) == populated
    engine.dispose()


def test_going_down_to_0001_and_up_again_keeps_the_nodes(tmp_path):
    """0002's downgrade dropped the jobs but left a node's current job naming one: the upgrade back was refused
    (rows point at no row: nodes -> jobs on SQLite, a ForeignKeyViolation on PostgreSQL)."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/populated.sqlite"})
    schema.upgrade(engine)
    populate(engine, tmp_path)
    schema.downgrade(engine, "0001")
    schema.upgrade(engine)
    assert counts(engine) == {"jobs": 0, "job_outputs": 0, "job_events": 0, "nodes": 1, "current jobs": 0}
    engine.dispose()


def every_row(engine) -> dict:
    with engine.connect() as connection:
        tables = connection.scalars(text(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('sqlite_sequence', "
            "'alembic_version')")).all()
        return {table: connection.execute(text(f'SELECT * FROM "{table}" ORDER BY rowid')).all()
                for table in tables}


def sqlite_schema(engine) -> dict:
    """Per table: its columns, foreign keys and indexes (a partial one's WHERE included), as SQLite reads them."""
    found = {}
    with engine.connect() as connection:
        def pragma(statement):
            return connection.exec_driver_sql(statement).all()

        for table in connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'")).all():
            indexes = set()
            for _, name, unique, origin, partial in pragma(f'PRAGMA index_list("{table}")'):
                columns = tuple(row[2] for row in pragma(f'PRAGMA index_info("{name}")'))
                sql = connection.scalar(text("SELECT sql FROM sqlite_master WHERE name = :name"), {"name": name})
                # A UNIQUE constraint's index is numbered by its place in the table: only its columns count.
                indexes.add((name if origin == "c" else origin, unique, partial, columns, sql))
            found[table] = {
                "columns": pragma(f'PRAGMA table_info("{table}")'),
                "foreign keys": sorted(row[2:] for row in pragma(f'PRAGMA foreign_key_list("{table}")')),
                "indexes": indexes}
    return found


def autoincrement_tables(engine) -> set:
    with engine.connect() as connection:
        return set(connection.scalars(text(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'")).all())


def test_0009_gives_sqlite_tables_autoincrement_keeping_every_row_and_link(tmp_path):
    """Rebuilding a table drops the old one: with foreign keys on, that deleted the rows pointing at it (a job's
    events and outputs, its steps) or set them to null (a node's current job)."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/old.sqlite"})
    schema.upgrade(engine)
    admin = populate(engine, tmp_path)
    schema.downgrade(engine, "0008")
    assert autoincrement_tables(engine) == {"job_events"}  # only it had AUTOINCREMENT before
    rows, before = every_row(engine), sqlite_schema(engine)
    assert len(rows["jobs"]) == 2 and len(rows["job_outputs"]) == 1 and len(rows["job_events"]) == 4

    schema.upgrade(engine, "0009")
    assert every_row(engine) == rows
    assert sqlite_schema(engine) == before
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again for the app
    # Every model that generates its ids has them: the migrated database agrees.
    assert autoincrement_tables(engine) == {
        table.name for table in Base.metadata.sorted_tables if table.dialect_options["sqlite"]["autoincrement"]}

    schema.upgrade(engine)
    # The newest job is the meta-job's step: deleting the meta-job for good deletes it too.
    [meta] = admin.post("/v1/jobs/list", {"expressions": [{"type": "isnull", "field": "parent"}]}).json
    admin.delete(f"/v1/jobs/{meta['pk']}/hard")
    template = admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": "produce"}]}).json[0]["pk"]
    job = admin.post(f"/v1/job-templates/{template}/create-job",
                     {"input_values": {"input": {"value": "words", "type": "str"}}}, status=201).json
    assert job["pk"] > max(row.id for row in rows["jobs"])
    engine.dispose()


def test_an_upgrade_that_would_leave_rows_pointing_at_no_row_is_rolled_back_whole(tmp_path):
    """The migrations run with SQLite's foreign keys off: what they leave is checked before anything commits."""
    database = tmp_path / "dangling.sqlite"
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{database}"})
    schema.upgrade(engine, "0007")
    engine.dispose()
    with sqlite3.connect(database) as connection:  # a plain connection: foreign keys off
        connection.execute("INSERT INTO refresh_tokens (user_id, token_hash, created_at, expires_at) "
                           "VALUES (42, 'x', '2026-12-04 00:00:00', '2026-12-05 00:00:00')")
    with pytest.raises(Conflict, match=r"rolled back: rows point at no row: refresh_tokens row 1 -> users$"):
        schema.upgrade(engine)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0007"
        assert connection.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = 'seed_job_types'")) == 0
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_upgrades_started_at_once_on_one_sqlite_file_all_succeed(tmp_path):
    """Each read the version in a deferred transaction, then wrote: those that lost the race failed at once
    with "database is locked" (PostgreSQL's advisory lock serialises them)."""
    import subprocess
    import sys

    ufdl_command = str(pathlib.Path(sys.executable).with_name("ufdl"))
    ini = tmp_path / "upgrade.ini"
    for round_number in range(3):
        database = tmp_path / f"round{round_number}.sqlite"
        cli_ini(ini, f"sqlite:///{database}")
        upgrades = [subprocess.Popen([ufdl_command, "-c", str(ini), "db", "upgrade"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True) for _ in range(4)]
        ended = [(upgrade.wait(timeout=120), upgrade.stderr.read()) for upgrade in upgrades]
        assert all(code == 0 for code, _ in ended), ended
        engine = get_engine({"sqlalchemy.url": f"sqlite:///{database}"})
        assert schema.is_current(engine)
        engine.dispose()


def test_upgrading_a_database_a_newer_release_migrated_is_one_line(tmp_path, monkeypatch, capsys):
    """Its revision is unknown here: alembic's CommandError was a traceback."""
    database = tmp_path / "newer.sqlite"
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{database}"})
    schema.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    ini = cli_ini(tmp_path / "newer.ini", f"sqlite:///{database}")
    assert ufdl(["-c", str(ini), "db", "upgrade"]) == 1
    assert capsys.readouterr().err == ("ufdl: Can't locate revision identified by '9999' (a newer ufdl-pyramid "
                                       "migrated this database: run that one)\n")


def template_rows(engine, name: str) -> dict:
    """Per version of the template: its spec, its parameters and the type names it references."""
    with engine.connect() as connection:
        found = {}
        for template in connection.execute(select(JobTemplate.id, JobTemplate.version, JobTemplate.spec,
                                                  JobTemplate.parameters).where(JobTemplate.name == name)):
            referenced = set(connection.scalars(
                select(JobType.name).join(TemplateTypeReference, TemplateTypeReference.job_type_id == JobType.id)
                .where(TemplateTypeReference.template_id == template.id)))
            found[template.version] = (template.spec, template.parameters, referenced)
        return found


def test_0010_gives_old_job_type_templates_their_seed_parameters(engine, admin, spec_input):
    """Templates made before seed_image and seed_manifest existed had none, and create-job refused their jobs.
    On the session's database (SQLite or PostgreSQL): its schema at 0009 is the newest one's."""
    post = json.loads((MANIFESTS / "spec_add_seed_image.json").read_text())
    job_type = admin.post("/v6/job-types/", post, status=201).json
    changed = {**post, "docker_image": "test-1.0.0-seed:1.0.1"}  # a second revision, another image
    admin.patch("/v6/job-types/test/1.0.0/", {"docker_image": changed["docker_image"]}, status=200)
    hand_made = {"name": "hand-made", "version": 1, "scope": "public", "licence": "MIT", "specific": {
        "job_type": "Process<JSON, JSON>", "executor_class": "ufdl_seed.SeedExecutor", "required_packages": "",
        "parameters": {}}}
    admin.post("/v1/job-templates/import", hand_made, status=201)
    name = f"seed-job-type-{job_type['id']}"
    made_now = template_rows(engine, name)  # as the code makes them today

    schema.downgrade(engine, "0009")
    try:
        with engine.begin() as connection:  # the revisions' templates as they were made before
            old = {"job_type": "Process<JSON, JSON>", "executor_class": "ufdl_seed.SeedExecutor",
                   "required_packages": "", "parameters": {}}
            connection.execute(update(JobTemplate).where(JobTemplate.name == name).values(spec=old, parameters={}))
            connection.execute(delete(TemplateTypeReference).where(TemplateTypeReference.job_type_id.in_(
                select(JobType.id).where(JobType.name == "str"))))
        templates = {row["version"]: row["pk"] for row in admin.post("/v1/job-templates/list", {"expressions": [
            {"type": "exact", "field": "name", "value": name}]}).json}
        job = {"input_values": {"input": {"value": spec_input, "type": "JSON"}}}
        refused = admin.post(f"/v1/job-templates/{templates[1]}/create-job", job, status=400).json
        assert "the parameter 'seed_image' must name the Seed image" in refused["detail"]
    finally:
        schema.upgrade(engine)

    assert template_rows(engine, name) == made_now
    for version, image in ((1, post["docker_image"]), (2, changed["docker_image"])):
        parameters = admin.get(f"/v1/job-templates/{templates[version]}/get-all-parameters").json
        assert parameters["seed_image"]["default"]["value"] == image
        assert parameters["seed_manifest"]["default"]["value"] == post["manifest"]
        created = admin.post(f"/v1/job-templates/{templates[version]}/create-job", job, status=201).json
        assert created["template"]["pk"] == templates[version]
    # A template no revision links to is left as it was: its jobs are still refused, saying why.
    assert template_rows(engine, "hand-made")[1][1] == {}
    hand_made_pk = admin.post("/v1/job-templates/list", {"expressions": [
        {"type": "exact", "field": "name", "value": "hand-made"}]}).json[0]["pk"]
    refused = admin.post(f"/v1/job-templates/{hand_made_pk}/create-job", job, status=400).json
    assert "the parameter 'seed_image' must name the Seed image" in refused["detail"]


def test_0011_gives_existing_revisions_their_manifests_memory_and_gpus(tmp_path):
    from test_scale_job_types import SPEC_POST  # its manifest asks 244 MiB

    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/seed.sqlite"})
    schema.upgrade(engine)
    admin = populate(engine, tmp_path)
    without = {**SPEC_POST, "manifest": {**SPEC_POST["manifest"], "job": {
        **SPEC_POST["manifest"]["job"], "name": "no-memory", "resources": {"scalar": [
            {"name": "cpus", "value": 1}, {"name": "gpus", "value": 2}]}}}}
    for document in (SPEC_POST, without):
        admin.post("/v6/job-types/", document, status=201)
    schema.downgrade(engine, "0010")
    with engine.connect() as connection:
        assert not {"needed_mem_mib", "needed_gpus"} & {row[1] for row in connection.exec_driver_sql(
            "PRAGMA table_info(seed_job_type_revisions)")}
    assert "seed_job_type_revisions" in autoincrement_tables(engine)  # dropped in place, not rebuilt

    schema.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT needed_mem_mib, needed_gpus FROM seed_job_type_revisions ORDER BY id")
                                  ).all() == [(244, None), (None, 2)]
    engine.dispose()


def test_0012_gives_existing_revisions_their_manifests_cores_and_keeps_every_node_link(tmp_path):
    from test_scale_job_types import SPEC_POST  # its manifest asks 1.5 cores

    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/seed.sqlite"})
    schema.upgrade(engine)
    admin = populate(engine, tmp_path)  # a step running on a node
    admin.post("/v6/job-types/", SPEC_POST, status=201)
    rows = every_row(engine)
    schema.downgrade(engine, "0011")
    with engine.connect() as connection:
        assert not {"cpus", "gpus"} & {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(nodes)")}
    # Dropped in place, not rebuilt: a rebuild would lose AUTOINCREMENT and null the jobs' node.
    assert {"nodes", "seed_job_type_revisions"} <= autoincrement_tables(engine)
    assert every_row(engine)["jobs"] == rows["jobs"]

    schema.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT needed_cpus FROM seed_job_type_revisions")).all() == [(1.5,)]
        assert connection.execute(text("SELECT cpus, gpus FROM nodes")).all() == [(None, None)]
    assert every_row(engine)["jobs"] == rows["jobs"]
    engine.dispose()


def test_0013_tells_existing_job_type_templates_what_their_input_holds(tmp_path):
    from test_scale_job_types import SPEC_POST, template_of

    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path}/seed.sqlite"})
    schema.upgrade(engine)
    admin = populate(engine, tmp_path)
    template = template_of(admin, admin.post("/v6/job-types/", SPEC_POST, status=201).json)
    made_now = admin.get(f"/v1/job-templates/{template['pk']}/get-inputs").json
    assert made_now["input"]["help"].startswith("The inputs of test 1.0.0, a JSON object by name: INPUT_TEXT")
    others = {row["pk"]: row["inputs"] for row in admin.post("/v1/job-templates/list").json}
    schema.downgrade(engine, "0012")
    assert admin.get(f"/v1/job-templates/{template['pk']}/get-inputs").json == {
        "input": {"types": ["JSON"], "help": "The value to process."}}  # as made before
    schema.upgrade(engine)
    assert admin.get(f"/v1/job-templates/{template['pk']}/get-inputs").json == made_now
    assert {row["pk"]: row["inputs"] for row in admin.post("/v1/job-templates/list").json} == others
    engine.dispose()
