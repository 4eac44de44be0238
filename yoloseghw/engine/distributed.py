"""torch.distributed for the trainer: joining the process group of a torchrun launch, and sharing rank 0's results.

Two launches reach the same DDP training (`DetSegTrainer` under DDP):
- `yoloseg train --device 0,1`: Ultralytics' launcher (`torch.distributed.run` over a pickled trainer) starts one
  worker per GPU; the launching process prepares the run folder first.
- `torchrun ... yoloseg train ...` (several nodes, or CPU processes over gloo): every process runs the command, so
  rank 0 prepares the run folder and the others wait for it (`on_rank_zero`).
Ultralytics sees one process as no DDP at all (its RANK is -1 when WORLD_SIZE is 1); a torchrun launch of one process
still takes the DDP path here (process group, DistributedSampler, DDP wrapper), so ranks are read from torchrun's
environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from ultralytics.utils import RANK
from ultralytics.utils.torch_utils import TORCH_2_13, get_torch_device_backend

from yoloseghw.utils.console import ERROR_PREFIX, print_error
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.ultralytics import ddp_launcher

T = TypeVar("T")
TIMEOUT = timedelta(hours=3)  # Ultralytics' DDP timeout: rank 0 validates while the others wait


def local_rank() -> int:
    """This process's rank on its node under torchrun (or Ultralytics' launcher, which runs torchrun); else -1."""
    return int(os.environ.get("LOCAL_RANK", -1))


def launched_by_torchrun() -> bool:
    return local_rank() != -1


def world_size() -> int:
    """Processes in the launch, over all nodes (torchrun's WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def is_cpu(device: str | torch.device) -> bool:
    return str(device).lower().startswith("cpu") or (str(device) == "" and not torch.cuda.is_available())


def local_cuda_index(device: str) -> int:
    """This process's GPU: the LOCAL_RANK-th of `--device 0,1,...` (all GPUs of the node when not given)."""
    devices = [d for d in str(device).split(",") if d.strip()] or [str(i) for i in range(torch.cuda.device_count())]
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if len(devices) != per_node:
        raise UserInputError(
            f"--device {device or '(all GPUs)'}: {len(devices)} GPU(s) for {per_node} processes on this node; give "
            "torchrun --nproc-per-node the number of GPUs in --device"
        )
    return int(devices[local_rank()])


def join_process_group(device: str) -> None:
    """Join the process group of this torchrun launch once: NCCL on GPUs, gloo on the CPU (Ultralytics' choice)."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    if is_cpu(device):
        backend = "gloo"
    else:
        torch.cuda.set_device(local_cuda_index(device))
        backend = "nccl" if dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT, rank=int(os.environ["RANK"]), world_size=world_size())


def on_rank_zero(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 only (it writes the run folder) and give every rank its result; bad input found there is
    raised on every rank, so no rank waits for one that stopped."""
    result: Any = None
    error: str | None = None
    if RANK in {-1, 0}:
        try:
            result = fn()
        except UserInputError as e:
            error = str(e)
    if dist.is_initialized():
        shared = [(result, error)]
        dist.broadcast_object_list(shared, src=0)
        result, error = shared[0]
    if error is not None:
        raise UserInputError(error)
    return result


class HostDDP(DistributedDataParallel):
    """DistributedDataParallel that also wraps a CPU model: Ultralytics passes `device_ids=[device.index]`, which
    torch accepts for one GPU only."""

    def __init__(self, module: torch.nn.Module, device_ids: list | None = None, **kwargs: Any):
        on_cpu = next(module.parameters()).device.type == "cpu"
        super().__init__(module, device_ids=None if on_cpu else device_ids, **kwargs)


def run_launcher(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """`subprocess.run` for Ultralytics' DDP launcher. The workers' output passes through, except that a worker's
    one-line error ends it: that line is raised here (once), and the tracebacks of the ranks torchrun then stops, and
    torchrun's own report, are left out."""
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1) as launcher:
        error = None
        for line in launcher.stderr:
            if error is None and line.startswith(ERROR_PREFIX):
                error = line[len(ERROR_PREFIX) :].strip()
            elif error is None:
                sys.stderr.write(line)
    if error is not None:
        raise UserInputError(error)
    if check and launcher.returncode:
        raise subprocess.CalledProcessError(launcher.returncode, cmd)
    return subprocess.CompletedProcess(cmd, launcher.returncode)


def launch_workers(trainer: Any, train: Callable[[], Any]) -> Any:
    """`train()` (Ultralytics' BaseTrainer.train) for several GPUs: its launcher starts one worker per GPU through
    `run_launcher`. The run folder, which holds the pair yaml the workers read, is kept (the launcher empties a new
    run's folder unless it resumes); a worker stopped by bad input ends this with its one line."""
    resume, trainer.resume = trainer.resume, True
    try:
        with ddp_launcher(run_launcher):
            return train()
    except subprocess.CalledProcessError as e:
        raise UserInputError(
            f"DDP training stopped: torchrun exited with code {e.returncode} (the workers' output is above)"
        ) from None
    finally:
        trainer.resume = resume


def train_as_rank(train: Callable[[], Any]) -> Any:
    """`train()` in a torchrun process: bad input ends this rank with its one line and exit code 2 (torchrun then
    stops the other ranks)."""
    try:
        return train()
    except UserInputError as e:
        print_error(f"{e} (rank {RANK})")
        raise SystemExit(2) from None


def setup_ddp(trainer: Any, base: Callable[[], None]) -> None:
    """Ultralytics' DDP set-up (`base`) on GPUs; gloo on the CPU; and only this rank's GPU when `yoloseg train` under
    torchrun joined the process group already (to share the run folder)."""
    if trainer.device.type != "cpu" and not dist.is_initialized():
        return base()
    join_process_group(trainer.args.device)
    if trainer.device.type != "cpu":
        trainer.device = torch.device("cuda", local_cuda_index(trainer.args.device))
        trainer.accelerator = get_torch_device_backend(trainer.device)


def one_process_ddp(trainer: Any) -> bool:
    """Whether this is a torchrun launch of one process, which Ultralytics does not treat as DDP (it needs
    world_size > 1) and yoloseg still trains through DDP."""
    return launched_by_torchrun() and trainer.world_size == 1


def wrap_model(trainer: Any) -> None:
    """Wrap the trainer's model in DDP as Ultralytics wraps it for several processes (for `one_process_ddp`)."""
    compiled = bool(trainer.args.compile)
    options = {"forward_sync_buffers" if TORCH_2_13 else "broadcast_buffers": False, "static_graph": compiled}
    trainer.model = HostDDP(trainer.model, [trainer.device.index], find_unused_parameters=not compiled, **options)
