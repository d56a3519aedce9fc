"""A stand-in for the docker client, for tests on a machine without a Docker engine. Its "containers" are JSON
files in ``fake-containers`` next to this script.

``create --pull never --log-driver none --name NAME [-v HOST:CONTAINER[:ro|:rw]] ... [-e VARIABLE=VALUE] ...
[--env-file FILE] [--mount type=volume,...] [--cpus N] [--memory Nm] [--shm-size Nm] [--gpus N] [--user U] IMAGE
ARGS...`` checks the options and records the container (a name taken is refused); ``start --attach NAME`` runs its
ARGS as a local command (in this process group, so killing the client's group kills it), with every container path
in the variables and the arguments mapped back to its host path, the image given to it as FAKE_DOCKER_IMAGE, and
records its exit status, which ``inspect --format {{.State.ExitCode}} NAME`` prints (as docker's, a command that
cannot run is 127, and ``start`` answers 1). The environment file is read as docker reads it (``NAME=VALUE`` lines,
``#`` comments, a bare ``NAME`` from the client's environment), and refused unless only its owner may read it; a
volume mount and the limits are checked for form and otherwise ignored. ``rm -f -v NAME`` removes the record.
``image inspect IMAGE`` finds every image, unless FAKE_DOCKER_PULL_SECONDS is set: then none, and ``pull IMAGE``
takes that long. When FAKE_DOCKER_LOG names a file, each call's arguments are appended to it as a JSON line.
Anything else is refused with status 125, as docker refuses what it cannot run."""
import csv
import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

CONTAINERS = Path(__file__).resolve().with_name("fake-containers")


def refuse(message: str) -> int:
    print(f"fake docker: {message}", file=sys.stderr)
    return 125


def main(arguments: list[str]) -> int:
    if os.environ.get("FAKE_DOCKER_LOG"):
        with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
            log.write(json.dumps(arguments) + "\n")
    if len(arguments) == 4 and arguments[:3] == ["rm", "-f", "-v"]:
        (CONTAINERS / arguments[3]).unlink(missing_ok=True)
        return 0
    if arguments[:3] == ["inspect", "--format", "{{.State.ExitCode}}"] and len(arguments) == 4:
        try:
            print(json.loads((CONTAINERS / arguments[3]).read_text())["exit_code"])
        except FileNotFoundError:
            return refuse(f"no such container: {arguments[3]}")
        return 0
    if len(arguments) == 3 and arguments[:2] == ["image", "inspect"]:
        return 1 if os.environ.get("FAKE_DOCKER_PULL_SECONDS") else 0
    if len(arguments) == 2 and arguments[0] == "pull":
        time.sleep(float(os.environ.get("FAKE_DOCKER_PULL_SECONDS", "0")))
        return 0
    if len(arguments) == 3 and arguments[:2] == ["start", "--attach"]:
        return start(arguments[2])
    if arguments[:6] != ["create", "--pull", "never", "--log-driver", "none", "--name"] or len(arguments) < 7:
        return refuse(f"unsupported call {arguments[:6]}")
    return create(arguments[6], arguments[7:])


def create(name: str, arguments: list[str]) -> int:
    paths, variables, index = {}, {}, 0
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
        elif option in ("--memory", "--shm-size"):
            if not re.fullmatch(r"[0-9]+m", value):
                return refuse(f"bad {option} {value!r}")
        elif option == "--user":
            if not re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
                return refuse(f"bad --user {value!r}")
        elif option == "--gpus":
            if not re.fullmatch(r"[1-9][0-9]*", value):
                return refuse(f"bad --gpus {value!r}")
        elif option == "--network":
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
                return refuse(f"bad --network {value!r}")
        else:
            return refuse(f"unsupported option {option}")
    if index + 1 >= len(arguments):
        return refuse("an image and a command are needed (the fake runs no image's own command)")
    CONTAINERS.mkdir(exist_ok=True)
    try:
        with open(CONTAINERS / name, "x") as record:
            json.dump({"paths": paths, "variables": variables, "image": arguments[index],
                       "command": arguments[index + 1:], "exit_code": 0}, record)
    except FileExistsError:
        return refuse(f"the container name {name!r} is already in use")
    print(name)
    return 0


def start(name: str) -> int:
    record = CONTAINERS / name
    try:
        container = json.loads(record.read_text())
    except FileNotFoundError:
        return refuse(f"no such container: {name}")
    paths, command = container["paths"], container["command"]

    def host(text: str) -> str:
        for path in sorted(paths, key=len, reverse=True):
            text = text.replace(path, paths[path])
        return text

    environment = {**os.environ, **{variable: host(value) for variable, value in container["variables"].items()},
                   "FAKE_DOCKER_IMAGE": container["image"]}
    try:
        status = subprocess.run([host(word) for word in command], env=environment).returncode
    except OSError as error:
        print(f"fake docker: cannot run {command[0]!r}: {error}", file=sys.stderr)
        status, container["exit_code"] = 1, 127  # the daemon's status for a command not found; start's is 1
    else:
        container["exit_code"] = status
    record.write_text(json.dumps(container))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
