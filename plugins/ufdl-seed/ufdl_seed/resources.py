"""The manifest's scalar resources: what the job is allocated, given to the container as ``ALLOCATED_<NAME>``
(the standard's variable injection), and those docker can give a container applied (``cpus``, ``mem``,
``sharedMem``, ``gpus``).

A resource's amount is its ``value`` plus its ``inputMultiplier`` times the MiB of the job's input files, as the
standard computes it. The server gives a job only to a node that registered its ``mem``, ``cpus`` and ``gpus``
values (or did not say); beyond that (an ``inputMultiplier``'s share, a node that did not say) docker refuses a
limit beyond the machine's, and the job fails with its message."""
import math
from pathlib import Path

from .interface import SeedInterface

# Docker refuses a memory limit under 6 MiB, and the kernel a CPU quota under 1 ms per 100 ms period (the
# container fails to start): a smaller ask gets that much rather than a failed job.
DOCKER_MIN_MEMORY_MIB = 6
DOCKER_MIN_CPUS = 0.01


def input_mib(input_dir: Path) -> float:
    """The size of the downloaded input files, in MiB."""
    return sum(path.stat().st_size for path in input_dir.rglob("*") if path.is_file()) / 2**20


def allocations(interface: SeedInterface, input_size_mib: float) -> dict[str, float]:
    return {resource.name: resource.value + resource.input_multiplier * input_size_mib
            for resource in interface.resources}


def allocated_environment(allocated: dict[str, float]) -> dict[str, str]:
    """``ALLOCATED_`` and the name upper-cased, ``-`` as ``_`` (as Scale injects them, and as Seed validation
    checks them for collisions); the amount in the shortest form (``1.5``, ``244``)."""
    return {f"ALLOCATED_{name.upper().replace('-', '_')}": _amount(amount) for name, amount in allocated.items()}


def limit_options(allocated: dict[str, float]) -> list[str]:
    """``--cpus``, ``--memory`` (MiB), ``--shm-size`` (MiB: the size of ``/dev/shm``, 64 MiB by default) and
    ``--gpus`` (a whole number: docker gives whole GPUs) for a positive ``cpus``, ``mem``, ``sharedMem`` and
    ``gpus``; the others are not limits docker sets on a container (``disk``, custom ones): given as variables
    only."""
    options = []
    if allocated.get("cpus", 0) > 0:
        options += ["--cpus", format(max(round(allocated["cpus"], 3), DOCKER_MIN_CPUS), "f").rstrip("0").rstrip(".")]
    if allocated.get("mem", 0) > 0:
        options += ["--memory", f"{max(math.ceil(allocated['mem']), DOCKER_MIN_MEMORY_MIB)}m"]
    if allocated.get("sharedMem", 0) > 0:
        options += ["--shm-size", f"{math.ceil(allocated['sharedMem'])}m"]
    if allocated.get("gpus", 0) > 0:
        options += ["--gpus", str(math.ceil(allocated["gpus"]))]
    return options


def _amount(amount: float) -> str:
    return str(int(amount)) if float(amount).is_integer() else repr(float(amount))
