"""The Seed executor: runs the Seed image of a Scale job type's revision (its template's ``seed_image`` and
``seed_manifest`` parameters) with docker (create, then start), as the Seed standard's interface says.

Templates name it ``ufdl_seed.SeedExecutor``: the class lives in a submodule but is known (and imported back)
by the package's name."""
from .executor import SeedExecutor

SeedExecutor.__module__ = __name__

__all__ = ["SeedExecutor"]
