"""Start-up for notifications: a `Notifier` from the settings and the plugins' notifier kinds, listening on the
request sessions so that it sends after each commit (``registry["ufdl.notifier"]``)."""
from .services.notifications import Notifier, SmtpConfig


def includeme(config):
    settings = config.get_settings()
    plugins = config.registry.get("ufdl.plugins")
    notifier = Notifier(defaults=settings.get("ufdl.notifications.defaults") or {},
                        smtp=SmtpConfig.from_settings(settings),
                        plugin_notifiers=dict(plugins.notifiers) if plugins is not None else {})
    config.registry["ufdl.notifier"] = notifier
    notifier.install(config.registry["db.session_factory"])


def send_what_is_left(app) -> None:
    """``ufdl serve`` calls this as a server process stops: the notifications still waiting go out first."""
    notifier = app.registry.get("ufdl.notifier")
    if notifier is not None:
        notifier.outbox.close()
