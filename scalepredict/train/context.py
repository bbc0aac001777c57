"""What every step of a sweep (or an LR probe) needs to know: its config, data, folder, device and how to launch
and report. One object, passed instead of a dozen positional arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config


@dataclass
class SweepContext:
    cfg: Config
    corpus: object  # train.data.Corpus
    out: Path
    device: str
    echo: object = print
    jobs: int = 1  # runs at once (CPU)
    keep_state: bool = False  # keep each run's state.pt after it finishes
    launcher: str = "local"  # local | submitit

    @property
    def runs_path(self) -> Path:
        return self.out / "runs.jsonl"

    def run_dir(self, run_id: str) -> Path:
        return self.out / "runs" / run_id
