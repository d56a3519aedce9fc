"""The entry point ``core_types``: hands the standard types to ufdl-pyramid."""
from ufdl_pyramid.plugins import hookimpl

from . import standard_types


@hookimpl
def ufdl_register_types():
    return standard_types()
