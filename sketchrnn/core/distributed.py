"""Data-parallel training under torchrun: which process this is, the process group, and the few
collectives the engine needs. Without torchrun (no WORLD_SIZE in the environment) every function
here answers as the single process it is, and nothing is initialised.

    torchrun --nproc-per-node 2 -m sketchrnn train data.npz --out run
        rank 0 ─┐  each draws the step's whole batch (a pure function of the step), keeps its
        rank 1 ─┘  1/world of the drawings, and DDP averages the gradients: one step of the batch
"""

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int = 0  # this process's index among all processes of the job
    world: int = 1  # how many processes train together
    local_rank: int = 0  # index on this machine: which GPU it drives

    @property
    def main(self) -> bool:
        """Rank 0 alone logs, validates, samples and writes checkpoints."""
        return self.rank == 0


def current() -> Group:
    """The group torchrun described in the environment, or the single process."""
    return Group(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def join(group: Group, device: torch.device) -> torch.device:
    """Initialise the process group (gloo on the CPU, NCCL on CUDA) once; return this rank's
    device (its own GPU under CUDA)."""
    if group.world == 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy)  # a run that ends by an exception still releases the group
    return device


def leave(group: Group) -> None:
    """End the job together: wait for every rank (rank 0 writes the last checkpoint after the
    others are done), then release the group while the interpreter is whole. A rank that exits
    alone, or tears gloo down from ``atexit``, aborted now and then ("terminate called without an
    active exception": 4 of 30 runs of a 2-rank job whose rank 0 finished a second later, 0 of 60
    with this)."""
    if group.world == 1 or not dist.is_initialized():
        return
    dist.barrier()
    _destroy()


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(items: int, group: Group) -> slice:
    """This rank's part of a batch of ``items`` along its batch axis; every rank's part is the same
    size, so the mean of the ranks' mean losses is the mean loss of the whole batch."""
    if items % group.world:
        raise ValueError(f"a batch of {items} does not split evenly over {group.world} processes; "
                         f"choose a batch size that is a multiple of {group.world}")
    return slice(group.rank, None, group.world)


def agree_max(values: list[float], group: Group, device: torch.device) -> list[float]:
    """Each value's maximum over the ranks (the clock, a stop request): every rank then takes the
    same branch, so none waits forever in a collective the others have left."""
    if group.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def gather(obj, group: Group) -> list:
    """Every rank's ``obj`` (RNG state, carried state), in rank order, on every rank."""
    if group.world == 1:
        return [obj]
    out = [None] * group.world
    dist.all_gather_object(out, obj)
    return out
