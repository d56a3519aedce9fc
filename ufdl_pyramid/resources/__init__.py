from .root import root_factory

__all__ = ["root_factory"]
