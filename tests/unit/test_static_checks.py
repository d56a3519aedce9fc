"""pyflakes over our code: an undefined name (a missing import) fails only on the path that reaches it, and
one such path (a worker's retry while the server was down) shipped broken."""
import io
from pathlib import Path

from pyflakes.api import checkRecursive
from pyflakes.reporter import Reporter

ROOT = Path(__file__).resolve().parents[2]


def test_pyflakes_finds_nothing():
    found, errors = io.StringIO(), io.StringIO()
    paths = [str(ROOT / name) for name in ("ufdl_pyramid", "plugins", "bench", "tests")]
    count = checkRecursive(paths, Reporter(found, errors))
    assert count == 0, found.getvalue() + errors.getvalue()
