from .root import root_factory  # noqa: F401
