"""load_plugins with plugin objects registered directly: what is collected, and every way a plugin can be wrong.

The installed core-types plugin is always loaded too; the classes below live at the top level of this module
because the registry insists that classes import back by their module and qualified name.
"""
import importlib.metadata
from types import ModuleType

import pytest

from ufdl_pyramid.plugins import HOOK_NAMES, PluginError, hookimpl, load_plugins
from ufdl_pyramid.types import Contract, ContractSlot, TypeParameter, UFDLType


class Widget(UFDLType):
    name = "Widget"


class Build(Contract):
    name = "Build"
    parameters = (TypeParameter("T", "*"),)
    outputs = {"widget": ContractSlot(("Widget",), "The widget built.")}


class WidgetExecutor:
    pass


class OtherString(UFDLType):
    name = "str"


class Nameless(Widget):
    """Inherits Widget's name without defining its own: not a valid type definition."""


class Top(UFDLType):
    name = "Any"


def notify_by_mail(job):
    return job


def returning(value):
    def hook():
        return value
    return hookimpl(hook)


def raising(error: Exception):
    def hook():
        raise error
    return hookimpl(hook)


def plugin(name: str, **hooks) -> ModuleType:
    """A plugin object: a module whose attributes are hook implementations."""
    module = ModuleType(name)
    for hook, implementation in hooks.items():
        setattr(module, hook, implementation)
    return module


def widgets(name: str = "widgets") -> ModuleType:
    return plugin(name, ufdl_register_types=returning([Widget, Build]),
                  ufdl_register_executors=returning([WidgetExecutor]),
                  ufdl_register_notifiers=returning({"mail": notify_by_mail}))


def test_everything_a_plugin_registers_is_collected_and_attributed():
    registry = load_plugins(strict=True, extra=[widgets()])
    info = next(plugin for plugin in registry.plugins if plugin.name == "widgets")
    assert info.json() == {"name": "widgets", "distribution": None, "version": None, "types": ["Widget"],
                           "contracts": ["Build"], "executors": [f"{__name__}.WidgetExecutor"],
                           "notifiers": ["mail"], "error": None}
    assert info.label == "plugin 'widgets' (registered directly)"
    assert registry.types["Widget"] is Widget and registry.types["Build"] is Build
    assert registry.types["str"].__module__ == "ufdl_core_types.values"
    assert registry.executors[f"{__name__}.WidgetExecutor"] is WidgetExecutor  # besides the installed ones
    assert registry.notifiers == {"mail": notify_by_mail}
    assert registry.load_errors == ()
    assert registry.json() == [plugin.json() for plugin in registry.plugins]


def test_the_type_registry_holds_every_plugin_type():
    registry = load_plugins(strict=True, extra=[widgets()])
    types = registry.type_registry()
    assert str(types.resolve("Build<Array<Widget>>")) == "Build<Array<Widget>>"
    assert "Any" in types.names() and "Train" in types.names()
    assert registry.type_registry() is not types


def test_hooks_a_plugin_leaves_out_register_nothing():
    registry = load_plugins(strict=True, extra=[plugin("quiet", ufdl_register_notifiers=returning(None))])
    info = next(plugin for plugin in registry.plugins if plugin.name == "quiet")
    assert (info.types, info.contracts, info.executors, info.notifiers, info.error) == ((), (), (), (), None)


def test_a_hook_that_raises_skips_its_plugin_or_is_fatal_when_strict(caplog):
    broken = plugin("broken", ufdl_register_types=returning([Widget]),
                    ufdl_register_executors=raising(RuntimeError("no executors today")))
    registry = load_plugins(strict=False, extra=[broken])
    (failed,) = registry.load_errors
    assert failed.name == "broken" and failed.error == "a hook raised RuntimeError: no executors today"
    assert failed.types == () and "Widget" not in registry.types
    assert not registry.manager.has_plugin("broken")
    assert "Train" in registry.types
    assert "plugin 'broken' (registered directly) skipped" in caplog.text
    with pytest.raises(PluginError, match="plugin 'broken' .* failed to load: a hook raised RuntimeError: no "
                                          r"executors today \(ufdl.plugins.strict is set\)"):
        load_plugins(strict=True, extra=[broken])


def test_a_misspelled_hook_fails_naming_the_plugin_and_the_hooks():
    typo = plugin("typo", ufdl_register_typos=returning([Widget]))
    with pytest.raises(PluginError) as caught:
        load_plugins(strict=False, extra=[typo])
    message = str(caught.value)
    assert "plugin 'typo' (registered directly)" in message and "'ufdl_register_typos'" in message
    assert all(hook in message for hook in HOOK_NAMES)


def test_a_hook_with_arguments_the_spec_does_not_have_fails():
    @hookimpl
    def ufdl_register_types(request):
        return []

    with pytest.raises(PluginError, match="plugin 'greedy' .* cannot be registered: .*request"):
        load_plugins(strict=False, extra=[plugin("greedy", ufdl_register_types=ufdl_register_types)])


@pytest.mark.parametrize("hooks, message", [
    ({"ufdl_register_types": returning([OtherString])},
     "The type name 'str' is registered by both plugin 'core_types' (ufdl-core-types "
     f"{importlib.metadata.version('ufdl-core-types')}) and plugin 'dup' (registered directly)"),
    ({"ufdl_register_types": returning([Widget, Widget])},
     "The type name 'Widget' is registered by plugin 'dup' (registered directly) twice"),
    ({"ufdl_register_types": returning([Top])}, "the type name 'Any' belongs to the server's top type"),
    ({"ufdl_register_types": returning([Nameless])}, "must define its own 'name'"),
    ({"ufdl_register_types": returning([str])}, "returned <class 'str'>, which is not a UFDLType class"),
    ({"ufdl_register_types": returning(Widget)}, "must return lists"),
    ({"ufdl_register_executors": returning([notify_by_mail])}, "which is not a class"),
    ({"ufdl_register_notifiers": returning([notify_by_mail])}, "must return a dict"),
    ({"ufdl_register_notifiers": returning({"mail": "not callable"})}, "notifier 'mail' must be a non-empty name"),
])
def test_a_plugin_that_breaks_the_hook_contracts_stops_start_up(hooks, message):
    with pytest.raises(PluginError) as caught:
        load_plugins(strict=False, extra=[plugin("dup", **hooks)])
    assert message in str(caught.value)
    assert "plugin 'dup'" in str(caught.value)


def test_executor_and_notifier_names_are_unique_across_plugins():
    with pytest.raises(PluginError, match="The executor name .*WidgetExecutor' is registered by both plugin "
                                          "'one' .* and plugin 'two'"):
        load_plugins(strict=False, extra=[plugin("one", ufdl_register_executors=returning([WidgetExecutor])),
                                          plugin("two", ufdl_register_executors=returning([WidgetExecutor]))])
    with pytest.raises(PluginError, match="The notifier name 'mail' is registered by both"):
        load_plugins(strict=False, extra=[plugin("one", ufdl_register_notifiers=returning({"mail": print})),
                                          plugin("two", ufdl_register_notifiers=returning({"mail": print}))])


def test_two_plugins_with_one_name_fail():
    with pytest.raises(PluginError, match="plugin 'twin' .* and plugin 'twin' .* have the same name"):
        load_plugins(strict=False, extra=[plugin("twin"), plugin("twin")])


def test_classes_must_import_back_by_module_and_name():
    class Local(UFDLType):
        name = "Local"

    with pytest.raises(PluginError, match=r"test_plugin_loading.*Local cannot be imported back by that name; "
                                          "define the class at the top level of a module"):
        load_plugins(strict=False, extra=[plugin("local", ufdl_register_types=returning([Local]))])
