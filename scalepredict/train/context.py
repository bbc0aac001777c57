"""What every step of a sweep (or an LR probe) needs to know: its config, data, folder, device and how to launch
and report. One object, passed instead of a dozen positional arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..files import SweepFolder


@dataclass
class SweepContext:
    cfg: Config
    corpus: object  # train.data.Corpus
    folder: SweepFolder
    device: str
    echo: object = print
    jobs: int = 1  # runs at once (CPU)
    keep_state: bool = False  # keep each run's state.pt after it finishes
    launcher: str = "local"  # local | submitit | slurm

    def __post_init__(self):
        if not isinstance(self.folder, SweepFolder):
            self.folder = SweepFolder(Path(self.folder))

    @property
    def out(self) -> Path:
        return self.folder.path
