"""Trains the tiny pair with DDP on CPU processes (gloo), recording per rank what each step trained on.

Run by tests/test_ddp.py in one of two ways:
- under torchrun, as `torchrun ... yoloseg train` runs: `python -m torch.distributed.run --nproc_per_node N
  tests/ddp_script.py DET SEG PROJECT OUT`;
- as `yoloseg train --device 0,1` runs on GPUs, through Ultralytics' DDP launcher, forced onto 2 CPU processes:
  `python tests/ddp_script.py DET SEG PROJECT OUT launch`;
- without DDP: `python tests/ddp_script.py DET SEG PROJECT OUT`.
Flags after OUT: `fail-on-rank-1` makes rank 1 meet bad input when training starts; `fake-gain` gives each rank
other validation metrics for `--ratio gain` (rank 0's favour segmentation, rank 1's detection); `exact` trains without
augmentation, each dataset in one batch, so that the order the sampler draws images in changes nothing; `key=value`
passes a training option (e.g. `schedule=joint`).
Each rank writes OUT/rank{R}.json: the model wrapper, the world size, and per step the epoch, task and image files.
Ranks are read from the environment at run time: the launcher's workers get this class pickled by value, with the
module's globals as they were in the launching process.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist
from ultralytics.cfg import parse_key_value_pair

from yoloseghw import YOLOSeg
from yoloseghw.engine.trainer import DetSegTrainer
from yoloseghw.utils.console import print_error
from yoloseghw.utils.errors import UserInputError

DET, SEG, PROJECT, OUT = sys.argv[1:5]
LAUNCH = "launch" in sys.argv[5:]
FAIL_ON_RANK_1 = "fail-on-rank-1" in sys.argv[5:]
FAKE_GAIN = "fake-gain" in sys.argv[5:]
EXACT = {
    "batch": 8,
    "nbs": 8,
    "warmup_epochs": 0,
    "mosaic": 0,
    "fliplr": 0,
    "hsv_h": 0,
    "hsv_s": 0,
    "hsv_v": 0,
    "translate": 0,
    "scale": 0,
}


class RecordingTrainer(DetSegTrainer):
    """DetSegTrainer that records each step's task and images (pickled by value into the launcher's workers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if LAUNCH and "LOCAL_RANK" not in os.environ:  # what Ultralytics decides for device=0,1: launch 2 workers
            self.ddp, self.world_size = True, 2
        self.record = {"steps": []}

    def preprocess_batch(self, batch: dict) -> dict:
        files = [Path(f).name for f in batch["im_file"]]
        n_det = batch.get("n_det")  # a joint batch: its first n_det images are the detection ones
        self.record["steps"].append({"epoch": self.epoch, "task": batch["task"], "files": files, "n_det": n_det})
        return super().preprocess_batch(batch)

    def _setup_train(self) -> None:
        super()._setup_train()
        world = dist.get_world_size() if dist.is_initialized() else 0
        self.record.update(wrapper=type(self.model).__name__, world_size=world)
        if FAIL_ON_RANK_1 and dist.get_rank() == 1:
            raise UserInputError("--det: images/train/0003.jpg: image file is truncated")

    def _finished_metrics(self) -> list[dict[str, float]]:
        if not FAKE_GAIN:
            return super()._finished_metrics()
        rank = dist.get_rank() if dist.is_initialized() else 0
        return [{"det": 0.0, "seg": 0.3} if rank == 0 else {"det": 0.3, "seg": 0.0}] * self.epoch

    def _do_train(self) -> None:
        super()._do_train()
        rank = dist.get_rank() if dist.is_initialized() else -1
        Path(OUT, f"rank{rank}.json").write_text(json.dumps(self.record))


def main() -> None:
    """Train as `yoloseg train` does, bad input ending in one line and exit code 2."""
    options = {"epochs": 2, "imgsz": 64, "batch": 4, "device": "cpu", "seed": 0, "plots": False}
    if "exact" in sys.argv[5:]:
        options.update(EXACT)
    options.update(parse_key_value_pair(flag) for flag in sys.argv[5:] if "=" in flag)
    YOLOSeg("yolo26n").train(det=DET, seg=SEG, project=PROJECT, name="ddp", trainer=RecordingTrainer, **options)


if __name__ == "__main__":
    try:
        main()
    except UserInputError as e:
        print_error(str(e))
        sys.exit(2)
