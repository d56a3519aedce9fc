"""What the commands share: the INI's settings, an engine, and a transaction scope."""
import configparser
import os
from contextlib import contextmanager
from functools import cached_property

import transaction
from plaster.exceptions import PlasterError
from pyramid.paster import get_appsettings, setup_logging

from ..errors import InvalidInput
from ..models import get_engine, get_session_factory, get_tm_session
from ..settings import SETTINGS_BY_NAME, SettingsError, load_setting, load_settings


DEFAULT_CONFIG = "development.ini"


class CliEnvironment:
    def __init__(self, config_path: str, given: bool = True):
        self.config_path = config_path
        self.given = given  # with -c (else the default, which may not be there)

    @cached_property
    def raw_settings(self) -> dict:
        """The INI's ``[app:main]`` as written (logging set up from it)."""
        if not os.path.exists(self.config_path):
            raise FileNotFoundError(f"no configuration file {self.config_path!r} (give one with -c)")
        if os.path.isdir(self.config_path):
            raise SettingsError(f"cannot read {self.config_path}: a directory, not an INI file")
        try:
            setup_logging(self.config_path)
            return get_appsettings(self.config_path)
        except (configparser.Error, LookupError) as error:  # no [app:main], a line outside any section, ...
            # They were tracebacks; their text spans lines.
            reason = f"no {error.args[0]!r} in it" if isinstance(error, KeyError) else " ".join(str(error).split())
            raise SettingsError(f"cannot read {self.config_path}: {reason}") from None
        except UnicodeDecodeError as error:  # a file saved in Latin-1, a binary file given by mistake
            raise SettingsError(f"cannot read {self.config_path}: not UTF-8 text ({error.reason})") from None
        except PlasterError:  # plaster picks the loader by the file's extension: a .conf or none had no loader
            raise SettingsError(f"cannot read {self.config_path}: an INI file's name must end in .ini") from None

    @cached_property
    def settings(self) -> dict:
        return load_settings(self.raw_settings)

    def setting(self, name: str):
        """One setting, for a command that needs no database: from the environment or the INI, whose other
        settings may be missing (production.ini's database URL and secret come from the environment), or
        which may be missing itself unless given with -c."""
        raw = self.raw_settings if self.given or os.path.exists(self.config_path) else {}
        return load_setting(SETTINGS_BY_NAME[name], raw)

    @cached_property
    def engine(self):
        return get_engine(self.settings)  # a URL it cannot use is a SettingsError

    @contextmanager
    def session(self):
        """A session whose work is committed at the end of the block, or rolled back on error."""
        manager = transaction.TransactionManager(explicit=True)
        with manager:
            yield get_tm_session(get_session_factory(self.engine), manager)


def password_of(args) -> str:
    """``--password``, else the UFDL_PASSWORD environment variable (which keeps it out of the process list)."""
    password = args.password or os.environ.get("UFDL_PASSWORD")
    if not password:
        raise InvalidInput("give the password with --password or the UFDL_PASSWORD environment variable")
    return utf8_text(password, "the password")


def utf8_text(value: str, what: str) -> str:
    """``value``, if it is UTF-8 text: bytes that are not (a Latin-1 terminal) reach Python as lone surrogates,
    which no database, hash or JSON body can take (a UnicodeEncodeError and a traceback)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not UTF-8 text (is the terminal's encoding UTF-8?)") from None
    return value
