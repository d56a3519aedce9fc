"""A stand-in for the docker client, for tests on a machine without a Docker engine.

``run --rm --name NAME [-v HOST:CONTAINER[:ro|:rw]] ... [-e VARIABLE=VALUE] ... [--env-file FILE]
[--mount type=volume,...] [--cpus N] [--memory Nm] IMAGE ARGS...`` runs ARGS as a local command (it replaces this
process, so its exit status and process group are the container's), with every container path in the variables
and the arguments mapped back to its host path; the image is given to it as FAKE_DOCKER_IMAGE. The environment
file is read as docker reads it (``NAME=VALUE`` lines, ``#`` comments, a bare ``NAME`` from the client's
environment), and refused unless only its owner may read it; a volume mount, ``--cpus`` and ``--memory`` are
checked for form and otherwise ignored. ``rm -f NAME`` does nothing. When FAKE_DOCKER_LOG names a file, each
call's arguments are appended to it as a JSON line. Anything else is refused with status 125, as docker refuses
what it cannot run."""
import csv
import json
import os
import re
import stat
import sys


def refuse(message: str) -> int:
    print(f"fake docker: {message}", file=sys.stderr)
    return 125


def main(arguments: list[str]) -> int:
    if os.environ.get("FAKE_DOCKER_LOG"):
        with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
            log.write(json.dumps(arguments) + "\n")
    if len(arguments) == 3 and arguments[:2] == ["rm", "-f"]:
        return 0
    if arguments[:2] != ["run", "--rm"]:
        return refuse(f"unsupported call {arguments[:2]}")
    paths, variables, index = {}, {}, 2
    while index < len(arguments) and arguments[index].startswith("-"):
        if index + 1 >= len(arguments):
            return refuse(f"{arguments[index]} without a value")
        option, value = arguments[index:index + 2]
        index += 2
        if option == "-v":
            host, container, *mode = value.split(":")
            if mode not in ([], ["ro"], ["rw"]) or not os.path.isabs(host) or not container.startswith("/"):
                return refuse(f"bad volume {value!r}")
            paths[container] = host
        elif option == "-e":
            variable, equals, text = value.partition("=")
            if not equals:
                return refuse(f"bad variable {value!r}")
            variables[variable] = text
        elif option == "--env-file":
            if stat.S_IMODE(os.stat(value).st_mode) & 0o077:
                return refuse(f"the environment file {value} may be read by others")
            with open(value, encoding="utf-8") as file:
                for line in file.read().split("\n"):
                    line = line.lstrip()
                    if line and not line.startswith("#"):
                        variable, equals, text = line.partition("=")
                        if equals:
                            variables[variable] = text
                        elif variable in os.environ:
                            variables[variable] = os.environ[variable]
        elif option == "--mount":
            [fields] = csv.reader([value])
            if "type=volume" not in fields or not any(field.startswith("target=/") for field in fields):
                return refuse(f"bad mount {value!r}")
        elif option == "--cpus":
            if not re.fullmatch(r"[0-9]+(\.[0-9]{1,9})?", value):
                return refuse(f"bad --cpus {value!r}")
        elif option == "--memory":
            if not re.fullmatch(r"[0-9]+m", value):
                return refuse(f"bad --memory {value!r}")
        elif option != "--name":
            return refuse(f"unsupported option {option}")
    if index + 1 >= len(arguments):
        return refuse("an image and a command are needed (the fake runs no image's own command)")
    image, command = arguments[index], arguments[index + 1:]

    def host(text: str) -> str:
        for container in sorted(paths, key=len, reverse=True):
            text = text.replace(container, paths[container])
        return text

    environment = {**os.environ, **{name: host(value) for name, value in variables.items()},
                   "FAKE_DOCKER_IMAGE": image}
    try:
        os.execvpe(command[0], [host(word) for word in command], environment)
    except OSError as error:
        print(f"fake docker: cannot run {command[0]!r}: {error}", file=sys.stderr)
        return 127  # as docker answers a command the container cannot find


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
