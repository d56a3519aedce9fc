"""Example executors: ``ShellExecutor`` (template ``shell``) and ``WordCounter`` (template ``word-count``).

Templates name them ``ufdl_example_executors.ShellExecutor`` and ``ufdl_example_executors.WordCounter``: the
classes live in submodules but are known (and imported back) by the package's name."""
from .shell import ShellExecutor
from .words import WordCounter

ShellExecutor.__module__ = __name__
WordCounter.__module__ = __name__

__all__ = ["ShellExecutor", "WordCounter"]
