"""Which shard of a run this process is, read from the launcher's environment, and which device it uses.

Launchers announce a process's place in the environment; each launcher is one row of a table
(:data:`PROCESS_CONVENTIONS`, :data:`ARRAY_CONVENTIONS`), in order of precedence:

* torchrun (also multi-node ``--nnodes``) and ``accelerate launch``: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``;
* Slurm ``srun``: ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` (else ``SLURM_NTASKS``), ``SLURM_LOCALID``;
* Open MPI ``mpirun``: ``OMPI_COMM_WORLD_RANK``, ``OMPI_COMM_WORLD_SIZE``, ``OMPI_COMM_WORLD_LOCAL_RANK``;
* MPICH / Intel MPI (PMI): ``PMI_RANK``, ``PMI_SIZE``, ``MPI_LOCALRANKID``;
* Slurm job arrays (each array task one shard): ``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN`` over
  ``SLURM_ARRAY_TASK_STEP``, of ``SLURM_ARRAY_TASK_COUNT`` (else ``(MAX - MIN) / STEP + 1``) tasks.

The first process row whose variables are set gives the process rank and count; a job array multiplies on top
(array task ``a`` of ``A``, each running ``N`` processes: rank ``a * N + r`` of ``A * N``).

Under torchrun inside a Slurm allocation both ``RANK`` and ``SLURM_PROCID`` are set; torchrun's row comes first,
so its global rank wins.  A bare process in an ``sbatch`` script with ``--ntasks > 1`` sees ``SLURM_PROCID=0`` and
``SLURM_NTASKS``; start it with ``srun`` (the README's example does), or it computes only its share.

Device: ``$OMNIEVAL_DEVICE`` if set, else ``cuda:<local rank modulo the visible devices>`` when CUDA is available
(``CUDA_VISIBLE_DEVICES`` is honoured by CUDA itself: with one visible GPU per process that is ``cuda:0``), else
``cpu``.  Models and metrics use :func:`resolve_device` on their ``device`` option: none given means that
default, and a bare ``cuda`` means this process's GPU.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from omnieval.errors import ConfigError

DEVICE_ENV = "OMNIEVAL_DEVICE"
SHARDING_ENV = "OMNIEVAL_SHARDING"
#: present on machines with an NVIDIA (or ROCm) driver; without them CUDA cannot be available
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")


@dataclass(frozen=True)
class ProcessConvention:
    """Environment variables one launcher sets: the first present name of each tuple is used."""

    launcher: str
    rank: tuple[str, ...]
    world_size: tuple[str, ...]
    local_rank: tuple[str, ...]


#: process launchers, in order of precedence (see the module docstring)
PROCESS_CONVENTIONS: tuple[ProcessConvention, ...] = (
    ProcessConvention("torchrun", ("RANK",), ("WORLD_SIZE",), ("LOCAL_RANK",)),
    ProcessConvention("slurm", ("SLURM_PROCID",), ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"), ("SLURM_LOCALID",)),
    ProcessConvention("openmpi", ("OMPI_COMM_WORLD_RANK",), ("OMPI_COMM_WORLD_SIZE",), ("OMPI_COMM_WORLD_LOCAL_RANK",)),
    ProcessConvention("pmi", ("PMI_RANK",), ("PMI_SIZE",), ("MPI_LOCALRANKID",)),
)


@dataclass(frozen=True)
class ArrayConvention:
    """A job-array scheduler: each array task is one shard (index, count or min/max/step)."""

    launcher: str
    index: str
    count: str
    min: str
    max: str
    step: str


ARRAY_CONVENTIONS: tuple[ArrayConvention, ...] = (
    ArrayConvention("slurm-array", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN",
                    "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP"),
)


@dataclass(frozen=True)
class Placement:
    """This process's shard: ``rank`` of ``world_size`` (0 of 1 without a launcher), its local rank on the node,
    and the launchers that said so (empty: none)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = ""

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world_size} ({self.launcher or 'no launcher'})"


def _int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "")
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer") from None


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, int] | None:
    for name in names:
        value = _int(env, name)
        if value is not None:
            return name, value
    return None


def _process(env: Mapping[str, str]) -> tuple[int, int, int, str]:
    for conv in PROCESS_CONVENTIONS:
        rank, world, local = _first(env, conv.rank), _first(env, conv.world_size), _first(env, conv.local_rank)
        if rank is None and world is None and local is None:
            continue
        rank = rank or (conv.rank[0], 0)
        world = world or (conv.world_size[0], 1)
        if not 0 <= rank[1] < world[1]:
            raise ConfigError(f"{rank[0]}={rank[1]} and {world[0]}={world[1]}: need 0 <= {rank[0]} < {world[0]}")
        return rank[1], world[1], local[1] if local else 0, conv.launcher
    return 0, 1, 0, ""


def _array(env: Mapping[str, str]) -> tuple[int, int, str]:
    for conv in ARRAY_CONVENTIONS:
        index = _int(env, conv.index)
        if index is None:
            continue
        low, step = _int(env, conv.min) or 0, _int(env, conv.step) or 1
        count = _int(env, conv.count)
        high = _int(env, conv.max)
        if count is None:
            if high is None:
                raise ConfigError(f"{conv.index} is set but neither {conv.count} nor {conv.max}: cannot tell how many "
                                  f"array tasks share the run")
            count = (high - low) // step + 1
        if step < 1 or (index - low) % step or not 0 <= (index - low) // step < count:
            raise ConfigError(f"{conv.index}={index} does not fit the array ({conv.min}={low}, {conv.count}={count}, "
                              f"{conv.step}={step})")
        return (index - low) // step, count, conv.launcher
    return 0, 1, ""


def placement(env: Mapping[str, str] | None = None) -> Placement:
    """This process's :class:`Placement` from ``env`` (default ``os.environ``); bad values are a ConfigError.
    ``OMNIEVAL_SHARDING=off`` makes the process do all the work whatever the launcher says (e.g. a job array whose
    tasks each evaluate a different model); the local rank still picks its device."""
    env = os.environ if env is None else env
    rank, world, local, launcher = _process(env)
    if env.get(SHARDING_ENV, "").strip().lower() in ("off", "0", "false", "no"):
        return Placement(local_rank=local, launcher=f"{launcher or 'no launcher'}, {SHARDING_ENV}=off")
    a_rank, a_count, array = _array(env)
    names = "+".join(n for n in (array, launcher) if n)
    return Placement(rank=a_rank * world + rank, world_size=a_count * world, local_rank=local, launcher=names)


def default_device(env: Mapping[str, str] | None = None) -> str:
    """``$OMNIEVAL_DEVICE``, else ``cuda:<local rank % visible devices>`` when CUDA is available, else ``cpu``."""
    env = os.environ if env is None else env
    if env.get(DEVICE_ENV):
        return resolve_device(env[DEVICE_ENV], env)
    import torch

    return resolve_device("cuda", env) if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None, env: Mapping[str, str] | None = None) -> str:
    """The device to use for a ``device`` option: ``None`` or ``"auto"`` -> :func:`default_device`; a bare
    ``"cuda"`` -> this process's GPU, ``cuda:<local rank % visible devices>`` (so ``device=cuda`` under a launcher
    does not put every process on GPU 0); anything else as given."""
    if device is None or device == "auto":
        return default_device(env)
    if device != "cuda":
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return f"cuda:{placement(env).local_rank % count}" if count else "cuda"


def device_type(device: str | None, env: Mapping[str, str] | None = None) -> str:
    """``"cpu"``, ``"cuda"``, ... of :func:`resolve_device` -- without importing torch when the device is spelled
    out or the machine has no GPU driver (a model identity is computed before anything loads)."""
    env = os.environ if env is None else env
    given = device if device not in (None, "auto") else env.get(DEVICE_ENV) or None
    if given is not None:
        return str(given).split(":")[0]
    if not any(os.path.exists(p) for p in GPU_DRIVER_FILES):
        return "cpu"
    return resolve_device(None, env).split(":")[0]
