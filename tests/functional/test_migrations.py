"""The migrations build exactly the schema the models describe, and ``ufdl db revision`` writes the next one."""
import re

from ufdl_pyramid.cli import main as ufdl
from ufdl_pyramid.testing import TEST_SETTINGS


def test_the_models_and_the_migrations_agree(engine, tmp_path, capsys):
    """Autogenerating against the migrated test database finds nothing to do (on either database)."""
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    ini = tmp_path / "cli.ini"
    ini.write_text(f"[app:main]\nuse = egg:ufdl-pyramid\nsqlalchemy.url = {url}\n"
                   f"ufdl.auth.secret = {TEST_SETTINGS['ufdl.auth.secret']}\n")
    assert ufdl(["-c", str(ini), "db", "revision", "-m", "nothing changed", "--dir", str(tmp_path)]) == 0
    assert "review it before committing" in capsys.readouterr().out
    [written] = tmp_path.glob("*_nothing_changed.py")
    text = written.read_text()
    newest = re.search(r"^down_revision = '(\d{4})'$", text, re.MULTILINE).group(1)  # the newest shipped
    assert written.name == f"{int(newest) + 1:04d}_nothing_changed.py"
    assert "op." not in text, text
