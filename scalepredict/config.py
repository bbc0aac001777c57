"""The sweep config: four dataclasses ([data], [model], [sweep], [train]), read from TOML and validated when built.

Every setting is declared once, with its default, its allowed range or values and the reason for them, through
`setting(...)`; `__post_init__` checks each field against its declaration (type, finite, range, choices) and
raises ConfigError naming the key. `load_config` adds the file and section to the message and turns it into the
InputError the command line prints as one line.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A setting out of its range or of the wrong type; the message starts with the key."""


def setting(default, *, kind=None, low=None, high=None, low_open=False, high_open=False, choices=None, why=""):
    """A config field: its default, its type (`kind`, default: the default's type), its range (low..high, either
    end open or absent), or its allowed `choices`, and the reason (`why`). None as default means optional."""
    meta = {"kind": kind or type(default), "low": low, "high": high, "low_open": low_open, "high_open": high_open,
            "choices": choices, "why": why}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _need(m) -> str:
    lo, hi = m["low"], m["high"]
    if lo is not None and hi is not None:
        if not m["low_open"] and not m["high_open"]:
            return f"between {lo:g} and {hi:g}"
        return f"in {'(' if m['low_open'] else '['}{lo:g}, {hi:g}{')' if m['high_open'] else ']'}"
    if lo is not None:
        return f"{'>' if m['low_open'] else '>='} {lo:g}"
    return f"{'<' if m['high_open'] else '<='} {hi:g}"


def _check(obj) -> None:
    """Check every declared field of a config section; integers given for a float setting become floats."""
    for f in fields(obj):
        m = f.metadata
        if not m:
            continue
        v, kind = getattr(obj, f.name), m["kind"]
        if v is None and f.default is None:
            continue  # optional, not given
        if kind in (int, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{f.name}: expected a number, got {v!r}")
            if kind is int and isinstance(v, float):
                raise ConfigError(f"{f.name}: expected a whole number, got {v!r}")
            if not math.isfinite(v):
                raise ConfigError(f"{f.name}: must be a finite number, got {v!r}")
            lo, hi = m["low"], m["high"]
            bad = (lo is not None and (v <= lo if m["low_open"] else v < lo)) or \
                  (hi is not None and (v >= hi if m["high_open"] else v > hi))
            if bad:
                raise ConfigError(f"{f.name}: must be {_need(m)}, got {v!r}")
            if kind is float and isinstance(v, int):
                setattr(obj, f.name, float(v))
        elif kind is str:
            if not isinstance(v, str):
                raise ConfigError(f"{f.name}: expected a string, got {v!r}")
            if m["choices"] and v not in m["choices"]:
                raise ConfigError(f"{f.name}: must be {' or '.join(m['choices'])}, got {v!r}")
        elif kind is bool and not isinstance(v, bool):
            raise ConfigError(f"{f.name}: expected true or false, got {v!r}")


@dataclass
class DataConfig:
    source: str = setting("stdlib", choices=("stdlib", "text", "tokens", "synthetic", "hf"),
                          why="stdlib: the Python standard library's source, present everywhere, no download; hf: a "
                              "Hugging Face dataset tokenized once (scalepredict prepare)")
    path: str | None = setting(None, kind=str, why="the text file or folder, or the token file(s)")
    vocab_size: int | None = setting(None, kind=int, low=2, why="required for token files; 256 (bytes) otherwise")
    dtype: str = setting("uint16", choices=("uint16", "uint32"), why="token files: nanoGPT's layout")
    size: int = setting(400_000, low=1, why="synthetic corpus bytes")
    seed: int = setting(0, why="synthetic corpus seed")
    val_tokens: int = setting(65_536, low=1, why="held-out tokens every run's final loss is measured on")
    dataset: str | None = setting(None, kind=str, why="hf: a hub dataset name, or local parquet/jsonl/arrow files: a "
                                                       "file, a folder or a glob")
    dataset_config: str | None = setting(None, kind=str, why="hf: the hub dataset's configuration (name)")
    split: str = setting("train", why="hf: the hub dataset's split to read (local files: all of them)")
    text_column: str = setting("text", why="hf: the column holding each document's text")
    tokenizer: str | None = setting(None, kind=str, why="hf: a tokenizer.json path, a transformers tokenizer name "
                                                         "or folder, or tiktoken:NAME (e.g. tiktoken:gpt2)")
    val_fraction: float = setting(0.005, low=0, high=1, low_open=True, high_open=True,
                                  why="hf: the share of documents held out for validation (split by document)")
    max_tokens: int | None = setting(None, kind=int, low=1, why="hf: stop after about this many tokens (a streamed "
                                                                "hub dataset need not be read whole)")
    cache: str | None = setting(None, kind=str, why="hf: where token files go (default $SCALEPREDICT_CACHE or "
                                                    "~/.cache/scalepredict/tokens)")

    def __post_init__(self):
        _check(self)
        if self.source == "hf" and not (self.dataset and self.tokenizer):
            raise ConfigError("dataset, tokenizer: source = \"hf\" needs both (a dataset name or files, and a "
                              "tokenizer)")


@dataclass
class ModelConfig:
    seq_len: int = setting(128, low=8, why="context length of every run")
    aspect: float = setting(32.0, low=0, low_open=True,
                            why="target d_model / n_layer (Kaplan et al. 2020 found 20-200 about equally good)")
    min_layers: int = setting(1, low=1, why="2 keeps every model able to form induction heads (Olsson et al. 2022)")
    head_dim: int = setting(32, low=8, why="width of one attention head")
    mlp_ratio: int = setting(4, low=1, why="hidden width of the MLP = mlp_ratio * d_model (GPT-2)")
    shape_rule: str = setting("closest", choices=("closest", "monotone"), why="see plan.shape_for")
    width_multiple: int = setting(8, low=8,
                                  why="d_model is a multiple of this (64 on GPUs: whole 64-wide heads for tensor cores)")
    vocab_multiple: int = setting(64, low=1, why="the model's vocabulary is the tokenizer's padded up to a multiple of "
                                                  "this (nanoGPT pads GPT-2's 50257 to 50304): whole tiles for the "
                                                  "output layer's matmul on GPUs; bytes (256) are a multiple already")

    def __post_init__(self):
        _check(self)
        if self.width_multiple % 8:
            raise ConfigError(f"width_multiple: must be a positive multiple of 8, got {self.width_multiple}")


@dataclass
class SweepConfig:
    budgets: list = setting([], why="explicit FLOP budgets, or use min/max/count")  # checked in Config.check
    min: float | None = setting(None, kind=float, low=0, low_open=True, why="smallest budget (FLOPs)")
    max: float | None = setting(None, kind=float, low=0, low_open=True, why="largest budget (FLOPs)")
    count: int = setting(5, low=1, why="budgets on a geometric range from min to max")
    sizes_per_budget: int = setting(3, low=1, why="the IsoFLOP set at each budget (Hoffmann et al. 2022, approach 2)")
    size_step: float = setting(2.0, low=1, low_open=True, why="params ratio between neighbouring sizes in a set")
    tokens_per_param: float = setting(20.0, low=0, low_open=True,
                                      why="centre of each set: the compute-optimal guess (Hoffmann et al. 2022)")
    targets: list = setting([], why="budgets to predict at the end (FLOPs)")
    seed: int = setting(0, why="seed of every planned run")
    repeats: int = setting(2, low=0, why="extra seeds of the compute-optimal guess at each repeat_at budget: the "
                                         "seed-to-seed noise floor of every interval")
    repeat_at: list = setting([0], why="budget positions to repeat (0 the smallest, -1 the largest)")
    min_steps: int = setting(50, low=1, why="a run shorter than this is not a meaningful point")
    bracket: int = setting(2, low=0, why="sizes a sweep may add to a set whose best run is at its smallest or "
                                         "largest size (0: none): approach 2 needs the minimum inside the set")

    def __post_init__(self):
        _check(self)

    def ladder(self) -> list[float]:
        """The budgets, smallest first."""
        import numpy as np

        if self.budgets:
            return sorted(float(b) for b in self.budgets)
        return [float(b) for b in np.geomspace(self.min, self.max, self.count)]


@dataclass
class TrainConfig:
    batch_size: int = setting(16, low=1, why="sequences per step")
    lr: float = setting(3e-3, low=0, low_open=True, why="peak learning rate at lr_ref_params")
    lr_ref_params: float = setting(1e5, low=0, low_open=True, why="the size at which the peak LR is `lr`")
    lr_exponent: float = setting(-1 / 3, why="lr ~ N^(-1/3) (OLMo's ladder, Bhagia et al. 2024)")
    beta1: float = setting(0.9, low=0, high=1, high_open=True, why="AdamW first moment")
    beta2: float = setting(0.99, low=0, high=1, high_open=True, why="0.99 at small batches (Porian et al. 2024)")
    weight_decay: float = setting(0.1, low=0, why="on matrices only")
    grad_clip: float = setting(1.0, low=0, low_open=True, why="global gradient norm")
    schedule: str = setting("cosine", choices=("cosine", "wsd", "constant"),
                            why="each run's schedule sized to its own tokens (Porian et al. 2024; docs/recipe.md); "
                                "constant: warmup, then the peak to the end (curve-law experiments)")
    final_lr_frac: float = setting(0.1, low=0, high=1, why="decay to 10% of peak")
    wsd_decay_frac: float = setting(0.2, low=0, high=1, low_open=True,
                                    why="warmup-stable-decay: the last 20% of steps decay linearly")
    warmup_max_frac: float = setting(0.1, low=0, high=1, why="warmup is about N tokens, at most this of the run")
    log_interval: int = setting(10, low=1, why="steps between log.jsonl lines")
    eval_interval: int = setting(0, low=0, why="steps between validation losses in log.jsonl (0: at the end only); "
                                               "a whole curve of them for `forecast` and the curve laws")
    checkpoint_seconds: float = setting(60.0, low=0, why="seconds between periodic checkpoints")
    device: str = setting("auto", choices=("auto", "cpu", "cuda"), why="auto: CUDA where there is one")
    compile: str = setting("auto", choices=("auto", "on", "off"),
                           why="torch.compile: auto on CUDA only (on a CPU it costs ~20 s per shape for ~6%)")
    threads: int = setting(0, low=0, why="CPU threads (0: torch's default)")
    command: str | None = setting(None, kind=str, why="your own trainer: a command line per run, with {placeholders} "
                                                      "(docs/own-trainer.md); default: scalepredict's own small GPT")
    log: str | None = setting(None, kind=str, why="command: the run's log, a path or glob under {run_dir} (default: "
                                                  "every file the run writes, its stdout included)")
    log_format: str = setting("auto", why="command: how its log is read (a format of `ingest`; auto: detected)")
    metric: str | None = setting(None, kind=str, why="command: the logged metric that is the run's final loss "
                                                     "(default: the reader's validation loss)")
    resume_flag: str = setting("", why="command: what {resume} becomes when a run is started again after an "
                                       "interruption (e.g. \"--resume\"); empty on a first start")

    def __post_init__(self):
        _check(self)
        if self.command is not None:
            check_template(self.command)


# what a [train] command template may name: the planned run's shape, budget and recipe, and where it writes
PLACEHOLDERS = {
    "run_id": "the run's id", "run_dir": "its folder (absolute)", "seed": "its seed", "budget": "its planned FLOPs",
    "n_layer": "layers", "d_model": "width", "n_head": "attention heads", "head_dim": "width of a head",
    "mlp_ratio": "MLP width / d_model", "vocab_size": "vocabulary (padded)", "seq_len": "context length",
    "batch_size": "sequences per step", "batch_tokens": "tokens per step", "steps": "optimizer steps",
    "tokens": "training tokens", "params": "non-embedding parameters (scalepredict's count)", "lr": "peak LR",
    "warmup_steps": "warmup steps", "min_lr": "the LR the schedule decays to", "final_lr_frac": "min_lr / lr",
    "schedule": "cosine or wsd", "weight_decay": "AdamW weight decay", "beta1": "AdamW beta1", "beta2": "AdamW beta2",
    "grad_clip": "gradient clipping norm", "device": "cpu or cuda", "train_bin": "the training token file",
    "val_bin": "the validation token file", "data_dir": "the folder of the token files", "resume": "[train] "
    "resume_flag when the run starts again after an interruption, else nothing",
}


def check_template(command: str) -> None:
    """A [train] command template: a non-empty command line whose {placeholders} are all known."""
    import string

    if not command.strip():
        raise ConfigError("command: empty; give the command line that trains one run")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(command) if f is not None}
    except ValueError as e:
        raise ConfigError(f"command: not a valid template ({e}); write a literal brace as {{{{ or }}}}") from None
    unknown = sorted(n for n in names if n.split(".")[0].split("[")[0] not in PLACEHOLDERS)
    if unknown:
        raise ConfigError(f"command: unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} (known: "
                          f"{', '.join('{' + k + '}' for k in PLACEHOLDERS)})")


SBATCH_OPTION = re.compile(r"^[a-z][a-z0-9_-]*$")
# sbatch options [launcher] sets through its own keys (or submitit sets): not accepted again under `sbatch`
OWN_SBATCH = {"partition", "time", "cpus-per-task", "gpus-per-node", "gres", "account", "qos", "mem", "array",
              "job-name", "output", "error", "signal", "nodes", "ntasks-per-node", "open-mode", "wckey"}


@dataclass
class LauncherConfig:
    """How `sweep` launches its runs. Not part of the config's digest: a sweep resumes on another partition, with
    another time limit or through another launcher."""
    kind: str = setting("local", choices=("local", "submitit", "slurm"),
                        why="local: this machine (--jobs); slurm: one SLURM job per run through submitit; submitit: "
                            "SLURM where sbatch is found, else one local process per run")
    partition: str | None = setting(None, kind=str, why="SLURM partition (default: the cluster's default)")
    time_min: int = setting(24 * 60, low=1, why="each job's time limit, minutes")
    cpus_per_run: int = setting(8, low=1, why="CPUs per job (also the run's torch threads unless [train] threads)")
    gpus_per_run: int | None = setting(None, kind=int, low=0, why="GPUs per job (default: 1 on CUDA, 0 on CPU)")
    mem_gb: float | None = setting(None, kind=float, low=0, low_open=True, why="memory per job, GB")
    account: str | None = setting(None, kind=str, why="SLURM account to charge")
    qos: str | None = setting(None, kind=str, why="SLURM quality of service")
    array: bool = setting(False, why="submit the pending runs as one job array instead of one job each")
    max_parallel: int = setting(0, low=0, why="job array: at most this many runs at once (0: no limit)")
    signal_delay_s: int = setting(120, low=0, why="SIGUSR2 this many seconds before the time limit: the run "
                                                  "checkpoints at its next step and the job requeues itself")
    poll_seconds: float = setting(15.0, low=0, low_open=True, why="seconds between looks at the queue")
    sbatch: dict = setting({}, why="further sbatch options, e.g. {constraint = \"a100\", exclusive = true}")
    setup: list = setting([], why="shell lines run in each job before the run, e.g. [\"module load cuda\"]")

    def __post_init__(self):
        _check(self)
        if not isinstance(self.sbatch, dict):
            raise ConfigError(f"sbatch: expected a table of sbatch options, got {self.sbatch!r}")
        for k, v in self.sbatch.items():
            if not SBATCH_OPTION.match(k):
                raise ConfigError(f"sbatch: {k!r} is not an sbatch option name (lower case, e.g. constraint)")
            if k.replace("_", "-") in OWN_SBATCH:
                raise ConfigError(f"sbatch: set {k!r} through [launcher]'s own keys (partition, time_min, "
                                  f"cpus_per_run, gpus_per_run, mem_gb, account, qos, array)")
            if isinstance(v, bool) and not v or not isinstance(v, (str, int, float, bool)):
                raise ConfigError(f"sbatch.{k}: expected a string, a number or true, got {v!r}")
        if not isinstance(self.setup, list) or not all(isinstance(x, str) for x in self.setup):
            raise ConfigError(f"setup: expected a list of shell lines, got {self.setup!r}")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "sweep": SweepConfig, "train": TrainConfig}
DIGEST_NAMES = {"repeats": "repeat_smallest"}  # renamed settings hash under their old names: old sweeps resume
RENAMED = {"repeat_smallest": "repeats (with repeat_at = [0] for the smallest budget only)"}


@dataclass
class Config:
    name: str = "sweep"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    source: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return d

    def digest(self) -> str:
        """Hash of the values that differ from the defaults: a later version that adds a setting (with a default
        that keeps the old behaviour) still resumes the sweeps of an earlier one."""
        d = self.as_dict()
        d.pop("launcher")  # where the runs train does not change them
        for name, cls in SECTIONS.items():
            default = asdict(cls())
            d[name] = {DIGEST_NAMES.get(k, k): v for k, v in d[name].items() if default.get(k, object()) != v}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def check(self) -> None:
        """The checks that involve several settings."""
        s = self.sweep
        if not s.budgets and not (s.min and s.max):
            raise ConfigError("[sweep] needs budgets = [...] or min, max and count")
        if s.min is not None and s.max is not None and not s.min < s.max:
            raise ConfigError(f"[sweep] needs 0 < min < max, got min={s.min:g} max={s.max:g}")
        if not isinstance(s.budgets, list) or not isinstance(s.targets, list) or any(
                isinstance(b, bool) or not isinstance(b, (int, float)) or not (0 < b < math.inf)
                for b in s.budgets + s.targets):
            raise ConfigError("[sweep] budgets and targets must be lists of positive finite numbers (FLOPs)")
        n = len(s.ladder())
        if not isinstance(s.repeat_at, list) or not all(isinstance(i, int) and not isinstance(i, bool) and -n <= i < n for i in s.repeat_at):
            raise ConfigError(f"[sweep] needs repeats >= 0 and repeat_at a list of budget positions in {-n}..{n - 1} "
                              f"(0 the smallest, -1 the largest), got repeats={s.repeats} repeat_at={s.repeat_at!r}")


def _section(cls, values, where):
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a table")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    renamed = [f"{k} is now {RENAMED[k]}" for k in unknown if k in RENAMED]
    if renamed:
        raise InputError(f"{where}: {'; '.join(renamed)}")
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    try:
        return cls(**values)
    except ConfigError as e:
        raise InputError(f"{where}.{e}") from None


def load_config(path: str | None) -> Config:
    """Read and validate a TOML sweep config. `path` may name a packaged config (`cpu-demo`)."""
    if path is None:
        path = "cpu-demo"
    p = Path(path)
    if not p.exists() and (CONFIG_DIR / f"{path}.toml").exists():
        p = CONFIG_DIR / f"{path}.toml"
    if not p.is_file():
        known = ", ".join(sorted(q.stem for q in CONFIG_DIR.glob("*.toml")))
        raise InputError(f"{path}: no such config file (packaged configs: {known})")
    try:
        raw = tomllib.loads(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text (byte {e.start}); a config is a TOML file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{p}: not valid TOML ({e})") from None
    unknown = sorted(set(raw) - {"name", "launcher", *SECTIONS})
    if unknown:
        raise InputError(f"{p}: unknown key(s) {', '.join(unknown)} (known: name, {', '.join(SECTIONS)}, launcher)")
    sections = {name: _section(cls, raw.get(name, {}), f"{p}: [{name}]")
                for name, cls in {**SECTIONS, "launcher": LauncherConfig}.items()}
    cfg = Config(name=str(raw.get("name", p.stem)), source=str(p), **sections)
    try:
        cfg.check()
    except ConfigError as e:
        raise InputError(f"{p}: {e}") from None
    return cfg
