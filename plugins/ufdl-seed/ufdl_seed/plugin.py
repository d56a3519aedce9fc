"""The entry point ``seed``: hands the Seed executor to ufdl-pyramid."""
from ufdl_pyramid.plugins import hookimpl

from . import SeedExecutor


@hookimpl
def ufdl_register_executors():
    return [SeedExecutor]
