"""The entry point ``example_executors``: hands the example executors to ufdl-pyramid."""
from ufdl_pyramid.plugins import hookimpl

from . import ShellExecutor, WordCounter


@hookimpl
def ufdl_register_executors():
    return [ShellExecutor, WordCounter]
