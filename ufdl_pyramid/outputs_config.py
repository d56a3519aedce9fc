"""Start-up for job outputs: the storage at ``registry["ufdl.storage"]`` (from ``ufdl.storage.path``), blob
clean-up after commits, and no retry copy of upload bodies."""
import logging

from .request_kinds import is_output_upload
from .services.outputs import BlobCleanup
from .settings import SettingsError
from .storage import storage_from_settings

log = logging.getLogger(__name__)

def upload_attempts(request):
    """pyramid_retry copies a request's whole body before the first attempt when it may retry; an output
    upload is streamed to storage instead, so it runs once (a conflict then answers 409)."""
    return 1 if is_output_upload(request) else None


def includeme(config):
    settings = config.get_settings()
    storage = storage_from_settings(settings)
    # A storage path that cannot be written stops the start, rather than failing every upload with a 500.
    try:
        removed = storage.prepare()
    except OSError as error:
        raise SettingsError(f"setting ufdl.storage.path: cannot store outputs there: {error}") from None
    if removed:
        log.info("removed %d temporary file(s) of uploads interrupted by a crash", removed)
    config.registry["ufdl.storage"] = storage
    BlobCleanup(storage).install(config.registry["db.session_factory"])
    previous = config.maybe_dotted(settings.get("retry.activate_hook"))
    if previous is None:
        settings["retry.activate_hook"] = upload_attempts
    else:
        settings["retry.activate_hook"] = lambda request: upload_attempts(request) or previous(request)
