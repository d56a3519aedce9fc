"""The README's "Writing a plugin with an executor" example, built from the README itself: its module written
into tmp_path with a ``*.dist-info`` declaring the entry point, discovered by ``load_plugins``, and run
against a RecordingContext."""
import importlib
import re
import sys
from pathlib import Path

import pytest

from ufdl_pyramid.executors import ExecutionError, RecordingContext
from ufdl_pyramid.plugins import load_plugins

README = Path(__file__).resolve().parents[2] / "README.md"


def example(file_name: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [block for block in blocks if block.startswith(f"# {file_name}\n")
             and ("ufdl_upper" in block or "Upper" in block)]
    assert len(found) == 1, f"the README has no single example {file_name}"
    return found[0]


@pytest.fixture
def installed(tmp_path, monkeypatch):
    (tmp_path / "ufdl_upper.py").write_text(example("ufdl_upper.py"))
    setup = example("setup.py")
    entry_point = re.search(r'"ufdl_pyramid": \["(\w+) = (\w+)"\]', setup)
    version = re.search(r'version="([^"]+)"', setup).group(1)
    info = tmp_path / f"ufdl_upper-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: ufdl-upper\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[ufdl_pyramid]\n{entry_point.group(1)} = {entry_point.group(2)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("ufdl_upper", None)


def test_the_readme_plugin_is_discovered_and_runs(installed):
    registry = load_plugins(strict=True)
    upper = registry.executors["ufdl_upper.Upper"]
    info = next(plugin for plugin in registry.plugins if plugin.name == "upper")
    assert (info.distribution, info.executors) == ("ufdl-upper", ("ufdl_upper.Upper",))

    context = RecordingContext({"input": "hello"})
    upper().execute(context)
    assert context.outputs == {("output", "BLOB"): b"HELLO"}
    assert context.progress_reports == [(0.5, {"step": "converting"})]

    with pytest.raises(ExecutionError, match="nothing to upper-case"):
        upper().execute(RecordingContext({"input": ""}))


def test_the_readme_template_for_it_imports_and_makes_jobs(admin, bob):
    import yaml

    [document] = [block for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
                  if block.startswith("# upper/1.yaml\n")]
    response = admin.request("POST", "/v1/job-templates/import", body=document.encode(),
                             content_type="application/yaml", status=201).json
    assert response["executor_class"] == "ufdl_upper.Upper" == yaml.safe_load(document)["specific"]["executor_class"]
    job = bob.post(f"/v1/job-templates/{response['pk']}/create-job",
                   {"input_values": {"input": {"value": "hello", "type": "str"}}}, status=201).json
    assert job["status"] == "PENDING"
