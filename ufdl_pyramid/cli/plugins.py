"""``ufdl plugins list``: the installed plugins, what each registered, and those that failed to load."""
from ..plugins import load_plugins

_REGISTERED = ("types", "contracts", "executors", "notifiers")


def register(areas) -> None:
    area = areas.add_parser("plugins", help="installed plugins")
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list plugins, what they registered and their load errors")
    listing.set_defaults(handler=run_list)


def run_list(args, environment) -> int:
    registry = load_plugins(environment.setting("ufdl.plugins.strict"))  # no database: no INI needed
    if not registry.plugins:
        print("no plugins installed (entry-point group 'ufdl_pyramid')")
    for plugin in registry.plugins:
        print(f"{plugin.name}\t{plugin.distribution} {plugin.version}")
        if plugin.error is not None:
            print(f"  error: {plugin.error}")
            continue
        for kind in _REGISTERED:
            print(f"  {kind}: {', '.join(getattr(plugin, kind)) or '-'}")
    return 0
