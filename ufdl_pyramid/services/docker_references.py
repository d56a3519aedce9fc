"""Docker image references, as the distribution reference grammar (github.com/distribution/reference) writes
them: ``[registry[:port]/]path[:tag][@digest]``.

A job type's image is passed to ``docker run ... IMAGE ARGS`` as an argument: anything else (``--privileged``,
``-v/:/host``, a word with spaces) would be read by docker as an option or split into several. The server
checks a job type's ``docker_image`` with it, and the Seed executor the ``seed_image`` it is told to run.
"""
import re

# The grammar's regular expressions, in Python's syntax (its \w is ASCII here: Go's is).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# \A and \Z: Python's $ also matches before a final newline ("ubuntu\n").
_REFERENCE = re.compile(rf"\A(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?\Z")

MAX_NAME_LENGTH = 255  # the grammar's limit on the name (registry and path)
MAX_LENGTH = 1000  # longer is refused unread: a name, a tag and a sha512 digest fit in a third of it

IMAGE_REFERENCE = ("a Docker image reference, [registry[:port]/]path[:tag][@digest]: path components of "
                   "lowercase letters and digits joined by '.', '_', '__' or '-', no leading '-', no whitespace, "
                   f"at most {MAX_NAME_LENGTH} characters before the tag")


def is_image_reference(text) -> bool:
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return False
    match = _REFERENCE.match(text)
    return match is not None and len(match.group("name")) <= MAX_NAME_LENGTH
