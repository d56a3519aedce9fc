"""Plugins: the hooks a plugin distribution implements, and loading every installed plugin into one registry.

Plugins are found through the entry-point group ``ufdl_pyramid``; each entry point names an object (usually a
module) with ``@hookimpl`` functions. A plugin that fails to import is reported and skipped, unless
``ufdl.plugins.strict`` is set; a misspelled hook or a name claimed twice always stops the server, naming the
plugins involved. No Pyramid here: the app, the CLI and the tests all call ``load_plugins``.
"""
import importlib
import importlib.metadata
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pluggy

from .types import AnyType, Contract, TypeDefinitionError, TypeRegistry, UFDLType

GROUP = "ufdl_pyramid"
hookspec = pluggy.HookspecMarker(GROUP)
hookimpl = pluggy.HookimplMarker(GROUP)

log = logging.getLogger(__name__)


class HookSpecs:
    """The hooks. Each is called once per plugin at start-up; a plugin implements any of them."""

    @hookspec
    def ufdl_register_types(self) -> list[type[UFDLType]]:
        """Type classes to add to the type system; contracts are types too (``Contract`` subclasses)."""

    @hookspec
    def ufdl_register_executors(self) -> list[type]:
        """Executor classes, known by their dotted names (``module.QualifiedName``)."""

    @hookspec
    def ufdl_register_notifiers(self) -> dict[str, Callable]:
        """Notifiers by name: callables that tell people about jobs."""


HOOK_NAMES = tuple(name for name in vars(HookSpecs) if name.startswith("ufdl_"))


class PluginError(Exception):
    """The plugins cannot be loaded as installed: the server refuses to start."""


@dataclass(frozen=True)
class PluginInfo:
    """One plugin: where it comes from, what it registered, or why it was skipped."""

    name: str
    distribution: str | None  # None for plugin objects registered directly (tests)
    version: str | None
    types: tuple[str, ...] = ()
    contracts: tuple[str, ...] = ()
    executors: tuple[str, ...] = ()
    notifiers: tuple[str, ...] = ()
    error: str | None = None  # why it was skipped; then it registered nothing

    @property
    def label(self) -> str:
        """How error messages name the plugin: its entry point and its distribution."""
        source = f"{self.distribution} {self.version}" if self.distribution else "registered directly"
        return f"plugin {self.name!r} ({source})"

    def json(self) -> dict:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "types": list(self.types), "contracts": list(self.contracts), "executors": list(self.executors),
                "notifiers": list(self.notifiers), "error": self.error}


@dataclass(frozen=True)
class PluginRegistry:
    """Everything the loaded plugins registered, by name."""

    plugins: tuple[PluginInfo, ...]
    types: Mapping[str, type[UFDLType]]
    executors: Mapping[str, type]
    notifiers: Mapping[str, Callable]
    manager: pluggy.PluginManager = field(repr=False, compare=False)

    @property
    def load_errors(self) -> tuple[PluginInfo, ...]:
        return tuple(plugin for plugin in self.plugins if plugin.error is not None)

    def type_registry(self) -> TypeRegistry:
        """A new TypeRegistry holding every plugin type (and ``Any``, which every registry holds)."""
        registry = TypeRegistry()
        for cls in self.types.values():
            registry.register(cls)
        return registry

    def json(self) -> list[dict]:
        return [plugin.json() for plugin in self.plugins]


def load_plugins(strict: bool, extra: Iterable[object] = ()) -> PluginRegistry:
    """Load the plugins installed under the entry-point group, then ``extra`` plugin objects (tests use these)."""
    manager = pluggy.PluginManager(GROUP)
    manager.add_hookspecs(HookSpecs)
    loader = _Loader(manager, strict)
    for entry_point, distribution in _entry_points():
        loader.load_entry_point(entry_point, distribution)
    for plugin in extra:
        loader.register(plugin, PluginInfo(getattr(plugin, "__name__", None) or type(plugin).__name__, None, None))
    loader.check_hooks()
    return loader.collect()


def _entry_points() -> list[tuple[importlib.metadata.EntryPoint, importlib.metadata.Distribution]]:
    """The group's entry points, sorted by name and distribution so that the loading order (and so the messages)
    does not depend on directory listings. A distribution found twice (on sys.path twice, or also as a source
    checkout's egg-info) counts once: the first found is the one Python imports."""
    found = {}
    for distribution in importlib.metadata.distributions():
        for entry_point in distribution.entry_points.select(group=GROUP):
            key = (entry_point.name, _normalised(distribution.metadata["Name"] or ""))
            found.setdefault(key, (entry_point, distribution))
    return [found[key] for key in sorted(found)]


def _normalised(distribution_name: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution_name).lower()


class _Loader:
    """The state of one ``load_plugins`` call: the manager, and where each registered plugin came from."""

    def __init__(self, manager: pluggy.PluginManager, strict: bool):
        self.manager = manager
        self.strict = strict
        self.infos: dict[str, PluginInfo] = {}  # by plugin name, registered or skipped, in load order

    def load_entry_point(self, entry_point, distribution) -> None:
        info = PluginInfo(entry_point.name, distribution.metadata["Name"], distribution.version)
        known = self.infos.get(info.name)
        if known is not None:
            raise PluginError(f"{known.label} and {info.label} use the same entry-point name; rename one")
        try:
            plugin = entry_point.load()
        except Exception as error:  # whatever a plugin's import raises, it is that plugin's failure
            self.skip(info, f"cannot import {entry_point.value!r}: {type(error).__name__}: {error}", error)
            return
        self.register(plugin, info)

    def register(self, plugin: object, info: PluginInfo) -> None:
        if info.name in self.infos:
            raise PluginError(f"{self.infos[info.name].label} and {info.label} have the same name")
        try:
            self.manager.register(plugin, name=info.name)
        except (ValueError, pluggy.PluginValidationError) as error:
            reason = "; ".join(str(error).splitlines())  # pluggy's message spans lines; ours is one
            raise PluginError(f"{info.label} cannot be registered: {reason}") from None
        self.infos[info.name] = info

    def skip(self, info: PluginInfo, reason: str, error: Exception) -> None:
        if self.strict:
            raise PluginError(f"{info.label} failed to load: {reason} (ufdl.plugins.strict is set)") from error
        log.warning("%s skipped: %s", info.label, reason)
        if self.manager.has_plugin(info.name):
            self.manager.unregister(name=info.name)
        self.infos[info.name] = PluginInfo(info.name, info.distribution, info.version, error=reason)

    def check_hooks(self) -> None:
        """A hook implementation without a spec is a misspelling: name the plugin and the hooks that exist."""
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            label = self.infos[self.manager.get_name(error.plugin)].label
            problem = str(error).split(" in plugin ")[0]  # "unknown hook 'name'"; the plugin's repr is noise
            raise PluginError(f"{label}: {problem} (the hooks are {', '.join(HOOK_NAMES)})") from None

    def collect(self) -> PluginRegistry:
        claims = _Claims()
        for name, info in list(self.infos.items()):
            if info.error is not None:
                continue
            try:
                offered = self.call_hooks(name)
            except Exception as error:  # a hook that raises is that plugin's failure, like a failed import
                self.skip(info, f"a hook raised {type(error).__name__}: {error}", error)
                continue
            self.infos[name] = claims.add(info, *offered)
        return PluginRegistry(tuple(self.infos.values()), claims.types, claims.executors, claims.notifiers,
                              self.manager)

    def call_hooks(self, name: str) -> tuple[list, list, dict]:
        # Each plugin's implementations are called one by one (not through the hook caller, which merges every
        # plugin's answers) so that what is registered, and every error, is attributed to its plugin.
        results = {}
        for hook in HOOK_NAMES:
            implementations = [impl for impl in getattr(self.manager.hook, hook).get_hookimpls()
                               if impl.plugin_name == name]
            results[hook] = implementations[0].function() if implementations else None
        return (results["ufdl_register_types"] or [], results["ufdl_register_executors"] or [],
                results["ufdl_register_notifiers"] or {})


class _Claims:
    """Names claimed so far, by type, executor and notifier; a name claimed twice stops the server."""

    def __init__(self):
        self.types: dict[str, type[UFDLType]] = {}
        self.executors: dict[str, type] = {}
        self.notifiers: dict[str, Callable] = {}
        self.owners: dict[tuple[str, str], PluginInfo] = {}
        self.validator = TypeRegistry()

    def add(self, info: PluginInfo, types, executors, notifiers) -> PluginInfo:
        if not isinstance(types, (list, tuple)) or not isinstance(executors, (list, tuple)):
            raise PluginError(f"{info.label}: ufdl_register_types and ufdl_register_executors must return lists")
        if not isinstance(notifiers, Mapping):
            raise PluginError(f"{info.label}: ufdl_register_notifiers must return a dict of names to callables")
        type_names, contract_names = [], []
        for cls in types:
            self.add_type(info, cls)
            (contract_names if issubclass(cls, Contract) else type_names).append(cls.name)
        executor_names = [self.add_executor(info, cls) for cls in executors]
        for name, notifier in notifiers.items():
            if not isinstance(name, str) or not name or not callable(notifier):
                raise PluginError(f"{info.label}: notifier {name!r} must be a non-empty name mapped to a callable")
            self.claim(info, "notifier", name)
            self.notifiers[name] = notifier
        return PluginInfo(info.name, info.distribution, info.version, tuple(type_names), tuple(contract_names),
                          tuple(executor_names), tuple(notifiers))

    def add_type(self, info: PluginInfo, cls) -> None:
        if not (isinstance(cls, type) and issubclass(cls, UFDLType)):
            raise PluginError(f"{info.label}: ufdl_register_types returned {cls!r}, which is not a UFDLType class")
        if getattr(cls, "name", None) == AnyType.name:
            raise PluginError(f"{info.label}: the type name 'Any' belongs to the server's top type")
        name = cls.__dict__.get("name")
        if isinstance(name, str):  # else the validator says what is wrong with the definition
            self.claim(info, "type", name)
        try:
            self.validator.register(cls)
        except TypeDefinitionError as error:
            raise PluginError(f"{info.label}: {error}") from None
        _check_importable(info, cls)
        self.types[cls.name] = cls

    def add_executor(self, info: PluginInfo, cls) -> str:
        if not isinstance(cls, type):
            raise PluginError(f"{info.label}: ufdl_register_executors returned {cls!r}, which is not a class")
        _check_importable(info, cls)
        name = f"{cls.__module__}.{cls.__qualname__}"
        self.claim(info, "executor", name)
        self.executors[name] = cls
        return name

    def claim(self, info: PluginInfo, kind: str, name) -> None:
        owner = self.owners.get((kind, name))
        if owner is not None:
            both = f"both {owner.label} and {info.label}" if owner is not info else f"{info.label} twice"
            raise PluginError(f"The {kind} name {name!r} is registered by {both}")
        self.owners[(kind, name)] = info


def _check_importable(info: PluginInfo, cls: type) -> None:
    """The job-types table and the executors refer to classes by module and qualified name: they must import
    back to the same class (so: defined at the top level of a module, not inside a function)."""
    try:
        found = importlib.import_module(cls.__module__)
    except Exception:  # a module that cannot be imported by its own name cannot be imported back either
        found = None
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    if found is not cls:
        raise PluginError(f"{info.label}: {cls.__module__}.{cls.__qualname__} cannot be imported back by that "
                          "name; define the class at the top level of a module")
