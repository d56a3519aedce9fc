"""A stand-in for the docker client, for tests on a machine without a Docker engine.

``run --rm --name NAME [-v HOST:CONTAINER[:ro]] ... [-e VARIABLE=VALUE] ... IMAGE ARGS...`` runs ARGS as a local
command (it replaces this process, so its exit status and process group are the container's), with every
container path in the variables and the arguments mapped back to its host path; the image is given to it as
FAKE_DOCKER_IMAGE. ``rm -f NAME`` does nothing. When FAKE_DOCKER_LOG names a file, each call's arguments are
appended to it as a JSON line. Anything else is refused with status 125, as docker refuses what it cannot run."""
import json
import os
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
            if mode not in ([], ["ro"]) or not os.path.isabs(host) or not container.startswith("/"):
                return refuse(f"bad volume {value!r}")
            paths[container] = host
        elif option == "-e":
            variable, equals, text = value.partition("=")
            if not equals:
                return refuse(f"bad variable {value!r}")
            variables[variable] = text
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
