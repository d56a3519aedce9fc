"""The standard types, and the plugin that hands them to the server through the entry point ``core_types``."""
import importlib.metadata

from ufdl_core_types import Array, Train, plugin, standard_registry, standard_types
from ufdl_pyramid.plugins import GROUP, load_plugins
from ufdl_pyramid.types import Contract
from ufdl_pyramid.services.job_types import import_type_class

STANDARD_NAMES = ["str", "int", "float", "bool", "JSON", "Nothing", "BLOB", "Array", "Map", "PK", "Name", "Domain",
                  "Framework", "Licence", "Model", "Dataset", "JobOutput", "Contract", "Train", "Predict", "Process"]


def test_standard_registry_holds_the_standard_types_and_any():
    registry = standard_registry()
    names = registry.names()
    assert sorted(names) == sorted([*STANDARD_NAMES, "Any"])
    assert names == sorted(names)
    assert len(names) == len(standard_types()) + 1
    assert registry.get("Array") is Array
    assert "Array" in registry and "Nope" not in registry


def test_each_call_gives_a_fresh_registry():
    assert standard_registry() is not standard_registry()


def test_the_distribution_declares_the_entry_point():
    entry_points = importlib.metadata.distribution("ufdl-core-types").entry_points.select(group=GROUP)
    assert [(entry_point.name, entry_point.value) for entry_point in entry_points] == [
        ("core_types", "ufdl_core_types.plugin")]


def test_the_hook_registers_every_standard_type():
    assert plugin.ufdl_register_types() == standard_types()


def test_the_server_discovers_the_plugin():
    registry = load_plugins(strict=True)
    core = next(info for info in registry.plugins if info.name == "core_types")
    assert (core.distribution, core.version) == ("ufdl-core-types", importlib.metadata.version("ufdl-core-types"))
    assert core.error is None
    assert set(core.contracts) == {"Contract", "Train", "Predict", "Process"}
    assert set(core.types) | set(core.contracts) == set(STANDARD_NAMES)
    assert registry.types["Train"] is Train and registry.types["Contract"] is Contract
    assert set(STANDARD_NAMES) <= set(registry.type_registry().names())


def test_every_standard_type_imports_back_from_its_module_and_name():
    for cls in standard_types():
        assert import_type_class(cls.__module__, cls.__qualname__) is cls
