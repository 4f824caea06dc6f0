"""Run a training recipe unchanged as one process or as N processes under ``torchrun``.

    python -m lmguide.recipes.distilled_austen --out DIR                          # one process
    torchrun --nproc_per_node 2 -m lmguide.recipes.distilled_austen --out DIR     # two CPU processes
    torchrun --nproc_per_node 8 -m lmguide.recipes.distilled_austen --out DIR     # eight GPUs

A recipe uses this module in six places::

    run = distributed.init()                      # rank, world size, device; gloo on CPU, nccl on GPUs
    model = distributed.wrap(model, run)          # DistributedDataParallel when world size > 1
    batch = distributed.shard(global_batch, run)  # this rank's rows of the step's global batch
    loss_all = distributed.mean(loss, run)        # the global batch's loss, the same on every rank
    if run.is_main: save(distributed.unwrap(model))   # rank 0 alone logs, evaluates and writes files
    distributed.close(run)

Every rank draws the *same* global batch from the same seeded generator and keeps its own
slice, and DistributedDataParallel averages the gradients of equal slices, so N processes take
exactly the steps one process takes with the same global batch (up to float rounding).
For a dataset that is read in order instead, :func:`sampler` gives each rank a disjoint share.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class Run:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, evaluates and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(backend: str | None = None, device: str | None = None) -> Run:
    """Join the process group torchrun set up (``RANK``, ``WORLD_SIZE`` ... in the environment).

    Without torchrun (or with one process) nothing is initialised and the run is rank 0 of 1.
    ``backend`` defaults to nccl when CUDA GPUs exist and gloo otherwise; ``device`` to this
    rank's GPU, or the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        where = torch.device("cuda", local_rank)
    else:
        where = torch.device(device or "cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if use_cuda else "gloo")
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return Run(rank=rank, world_size=world_size, local_rank=local_rank, device=where)


def close(run: Run) -> None:
    """Leave the process group (a no-op for a single process)."""
    if run.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, run: Run) -> torch.nn.Module:
    """Move ``model`` to this rank's device; wrap it in DistributedDataParallel when distributed."""
    model = model.to(run.device)
    if not run.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [run.device.index] if run.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    return getattr(model, "module", model)


def shard(batch: torch.Tensor, run: Run) -> torch.Tensor:
    """This rank's equal, contiguous slice of a global batch (rows = dimension 0)."""
    rows = batch.shape[0]
    if rows % run.world_size:
        raise ValueError(f"the global batch ({rows} rows) must divide evenly among {run.world_size} "
                         f"processes; choose a batch size that is a multiple of {run.world_size}")
    per_rank = rows // run.world_size
    return batch[run.rank * per_rank:(run.rank + 1) * per_rank].to(run.device)


def sampler(dataset, run: Run, shuffle: bool = True, seed: int = 0):
    """A ``DistributedSampler``: each rank reads its own share of ``dataset``, one process reads all.

    Call ``sampler.set_epoch(epoch)`` at the start of each epoch so that shuffles differ.
    """
    from torch.utils.data import DistributedSampler

    return DistributedSampler(dataset, num_replicas=run.world_size, rank=run.rank, shuffle=shuffle,
                              seed=seed, drop_last=False)


def mean(value, run: Run) -> float:
    """The mean of ``value`` over all ranks (a float; the same on every rank)."""
    t = torch.as_tensor(value, dtype=torch.float64).detach().to(
        run.device if run.device.type == "cuda" else "cpu").clone()
    if run.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= run.world_size
    return t.item()


def barrier(run: Run) -> None:
    """Wait until every rank gets here (e.g. while rank 0 evaluates or saves)."""
    if run.distributed:
        dist.barrier()


def log(run: Run, message: str) -> None:
    """Print on rank 0 only (through tqdm, so a progress bar is not broken)."""
    if run.is_main:
        from tqdm.auto import tqdm

        tqdm.write(message)


def progress(iterable, run: Run, **kwargs):
    """A tqdm progress bar on rank 0; the other ranks iterate silently."""
    from tqdm.auto import tqdm

    kwargs["disable"] = kwargs.get("disable", False) or not run.is_main
    return tqdm(iterable, **kwargs)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (avx512_bf16 or AMX), where autocast pays."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def bf16_supported(device: torch.device) -> bool:
    """bfloat16 autocast is fast here: a GPU that supports it, or a CPU with bf16 instructions."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def autocast(run: Run, enabled: bool = True):
    """bfloat16 autocast on this rank's device where it is fast; otherwise plain float32."""
    if enabled and bf16_supported(run.device):
        return torch.autocast(run.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
