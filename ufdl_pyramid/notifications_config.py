"""Start-up for notifications: a `Notifier` from the settings and the plugins' notifier kinds, listening on the
request sessions so that it sends after each commit (``registry["ufdl.notifier"]``)."""
from .errors import InvalidInput
from .services.notifications import KINDS, Notifier, SmtpConfig, actions_schema
from .services.validation import compile_schema, validate
from .settings import SettingsError


def includeme(config):
    settings = config.get_settings()
    plugins = config.registry.get("ufdl.plugins")
    plugin_notifiers = dict(plugins.notifiers) if plugins is not None else {}
    defaults = settings.get("ufdl.notifications.defaults") or {}
    # Checked at start-up as create-job checks a job's own (the plugins' kinds allowed too): a typo would
    # otherwise surface as notifications silently not sent.
    try:
        validate(compile_schema(actions_schema((*KINDS, *plugin_notifiers))), defaults)
    except InvalidInput as error:
        raise SettingsError(f"setting ufdl.notifications.defaults: {error.detail}") from None
    notifier = Notifier(defaults=defaults, smtp=SmtpConfig.from_settings(settings),
                        plugin_notifiers=plugin_notifiers)
    config.registry["ufdl.notifier"] = notifier
    notifier.install(config.registry["db.session_factory"])


def send_what_is_left(app) -> None:
    """``ufdl serve`` calls this as a server process stops: the notifications still waiting go out first."""
    notifier = app.registry.get("ufdl.notifier")
    if notifier is not None:
        notifier.outbox.close()
