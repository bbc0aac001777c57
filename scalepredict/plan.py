"""From a sweep config to run specs: budgets -> IsoFLOP sets of model shapes -> tokens, steps and hyperparameters.

One recipe for every run (method.md section 4): each run's schedule is sized to its own token budget, warmup is
short (about the parameter count in tokens, at most 10% of the run), the peak learning rate follows
lr ~ N^(-1/3) (OLMo's ladder, Bhagia et al. 2024), AdamW beta2 = 0.99 at small batch sizes (Porian et al. 2024).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from .errors import InputError
from .flops import Shape

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class DataConfig:
    source: str = "stdlib"  # stdlib | text | tokens | synthetic
    path: str | None = None
    vocab_size: int | None = None  # required for source = "tokens"; 256 (bytes) otherwise
    dtype: str = "uint16"  # token files: uint16 or uint32
    size: int = 400_000  # synthetic corpus bytes
    seed: int = 0
    val_tokens: int = 65_536  # held-out tokens every run's final loss is measured on


@dataclass
class ModelConfig:
    seq_len: int = 128
    aspect: float = 32.0  # target d_model / n_layer (Kaplan et al. 2020 found 20-200 about equally good)
    min_layers: int = 1  # 2 keeps every model able to form induction heads (Olsson et al. 2022)
    head_dim: int = 32
    mlp_ratio: int = 4
    shape_rule: str = "closest"  # closest | monotone (see shape_for)
    width_multiple: int = 8  # d_model is a multiple of this (64 on GPUs: whole 64-wide heads for tensor cores)


@dataclass
class SweepConfig:
    budgets: list = field(default_factory=list)  # explicit FLOP budgets, or use min/max/count
    min: float | None = None
    max: float | None = None
    count: int = 5
    sizes_per_budget: int = 3  # the IsoFLOP set at each budget
    size_step: float = 2.0  # params ratio between neighbouring sizes in a set
    tokens_per_param: float = 20.0  # centre of each set: the compute-optimal guess (Hoffmann et al. 2022)
    targets: list = field(default_factory=list)  # budgets to predict at the end (FLOPs)
    seed: int = 0
    repeats: int = 2  # extra seeds of the compute-optimal guess at each repeat_at budget: the noise floor
    repeat_at: list = field(default_factory=lambda: [0])  # budget positions (0 the smallest, -1 the largest)
    min_steps: int = 50  # a run shorter than this is not a meaningful point
    bracket: int = 2  # sizes a sweep may add to a set whose best run is at its smallest or largest size (0: none)


@dataclass
class TrainConfig:
    batch_size: int = 16  # sequences per step
    lr: float = 3e-3  # peak learning rate at lr_ref_params
    lr_ref_params: float = 1e5
    lr_exponent: float = -1 / 3  # lr ~ N^(-1/3) (OLMo-core's ladder)
    beta1: float = 0.9
    beta2: float = 0.99  # 0.99 at small batches (Porian et al. 2024)
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    schedule: str = "cosine"  # cosine | wsd
    final_lr_frac: float = 0.1  # decay to 10% of peak
    wsd_decay_frac: float = 0.2  # warmup-stable-decay: the last 20% of steps decay linearly
    warmup_max_frac: float = 0.1
    log_interval: int = 10
    checkpoint_seconds: float = 60.0
    device: str = "auto"
    compile: str = "auto"  # auto: torch.compile on CUDA only
    threads: int = 0  # CPU threads (0: torch's default)


@dataclass
class Config:
    name: str = "sweep"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    source: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return d

    def digest(self) -> str:
        """Hash of the values that differ from the defaults: a later version that adds a setting (with a default
        that keeps the old behaviour) still resumes the sweeps of an earlier one."""
        d = self.as_dict()
        for name in ("data", "model", "sweep", "train"):
            default = asdict(type(getattr(self, name))())
            d[name] = {DIGEST_NAMES.get(k, k): v for k, v in d[name].items() if default.get(k, object()) != v}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


DIGEST_NAMES = {"repeats": "repeat_smallest"}  # renamed settings hash under their old names: old sweeps resume
RENAMED = {"repeat_smallest": "repeats (with repeat_at = [0] for the smallest budget only)"}


# The range of every numeric setting that has one, checked when a config is read (after the types, and after
# every number is checked to be finite): (test, what the error says the value must be).
_POSITIVE = (lambda v: v > 0, "> 0")
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_AT_LEAST_0 = (lambda v: v >= 0, ">= 0")
_FRACTION = (lambda v: 0 <= v <= 1, "between 0 and 1")
_BETA = (lambda v: 0 <= v < 1, "in [0, 1)")
RANGES = {
    "DataConfig": {"size": _AT_LEAST_1, "val_tokens": _AT_LEAST_1, "vocab_size": (lambda v: v >= 2, ">= 2")},
    "ModelConfig": {"aspect": _POSITIVE, "mlp_ratio": _AT_LEAST_1},
    "SweepConfig": {"min": _POSITIVE, "max": _POSITIVE, "count": _AT_LEAST_1, "tokens_per_param": _POSITIVE,
                    "min_steps": _AT_LEAST_1},
    "TrainConfig": {"batch_size": _AT_LEAST_1, "lr": _POSITIVE, "lr_ref_params": _POSITIVE, "beta1": _BETA,
                    "beta2": _BETA, "weight_decay": _AT_LEAST_0, "grad_clip": _POSITIVE, "final_lr_frac": _FRACTION,
                    "wsd_decay_frac": (lambda v: 0 < v <= 1, "in (0, 1]"), "warmup_max_frac": _FRACTION,
                    "log_interval": _AT_LEAST_1, "checkpoint_seconds": _AT_LEAST_0, "threads": _AT_LEAST_0},
}
OPTIONAL_NUMBERS = {"vocab_size": int, "min": float, "max": float}  # settings whose default is None


def _section(cls, values, where):
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a table")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(names))
    renamed = [f"{k} is now {RENAMED[k]}" for k in unknown if k in RENAMED]
    if renamed:
        raise InputError(f"{where}: {'; '.join(renamed)}")
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    obj = cls()
    for k, v in values.items():
        default = getattr(obj, k)
        if default is None and k in OPTIONAL_NUMBERS:
            default = OPTIONAL_NUMBERS[k]()  # 0 or 0.0: the type the setting takes
        if isinstance(default, bool) or (isinstance(default, (int, float)) and not isinstance(v, (int, float))):
            if not (isinstance(default, float) and isinstance(v, int)) and type(v) is not type(default):
                raise InputError(f"{where}.{k}: expected a number, got {v!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if type(v) is float and isinstance(default, int):
                raise InputError(f"{where}.{k}: expected a whole number, got {v!r}")
            if not math.isfinite(v):
                raise InputError(f"{where}.{k}: must be a finite number, got {v!r}")
            test, need = RANGES.get(cls.__name__, {}).get(k, (None, ""))
            if test and not test(v):
                raise InputError(f"{where}.{k}: must be {need}, got {v!r}")
        setattr(obj, k, float(v) if isinstance(default, float) and isinstance(v, int) else v)
    return obj


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
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{p}: not valid TOML ({e})") from None
    unknown = sorted(set(raw) - {"name", "data", "model", "sweep", "train"})
    if unknown:
        raise InputError(f"{p}: unknown key(s) {', '.join(unknown)} (known: name, data, model, sweep, train)")
    cfg = Config(
        name=str(raw.get("name", p.stem)),
        data=_section(DataConfig, raw.get("data", {}), f"{p}: [data]"),
        model=_section(ModelConfig, raw.get("model", {}), f"{p}: [model]"),
        sweep=_section(SweepConfig, raw.get("sweep", {}), f"{p}: [sweep]"),
        train=_section(TrainConfig, raw.get("train", {}), f"{p}: [train]"),
        source=str(p),
    )
    _validate(cfg, p)
    return cfg


def _validate(cfg: Config, p):
    s, t, m = cfg.sweep, cfg.train, cfg.model
    if not s.budgets and not (s.min and s.max):
        raise InputError(f"{p}: [sweep] needs budgets = [...] or min, max and count")
    if s.min is not None and s.max is not None and not (0 < s.min < s.max):
        raise InputError(f"{p}: [sweep] needs 0 < min < max, got min={s.min:g} max={s.max:g}")
    if not isinstance(s.budgets, list) or not isinstance(s.targets, list) or any(
            isinstance(b, bool) or not isinstance(b, (int, float)) or not (0 < b < math.inf)
            for b in s.budgets + s.targets):
        raise InputError(f"{p}: [sweep] budgets and targets must be lists of positive finite numbers (FLOPs)")
    if s.sizes_per_budget < 1 or s.size_step <= 1:
        raise InputError(f"{p}: [sweep] needs sizes_per_budget >= 1 and size_step > 1")
    n_budgets = len(budgets(cfg))
    if s.repeats < 0 or not isinstance(s.repeat_at, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and -n_budgets <= i < n_budgets for i in s.repeat_at):
        raise InputError(f"{p}: [sweep] needs repeats >= 0 and repeat_at a list of budget positions in "
                         f"{-n_budgets}..{n_budgets - 1} (0 the smallest, -1 the largest), got repeats={s.repeats} "
                         f"repeat_at={s.repeat_at!r}")
    if s.bracket < 0:
        raise InputError(f"{p}: [sweep] bracket must be 0 or more, got {s.bracket}")
    if cfg.model.shape_rule not in ("closest", "monotone"):
        raise InputError(f"{p}: [model] shape_rule must be closest or monotone, got {cfg.model.shape_rule!r}")
    if t.schedule not in ("cosine", "wsd"):
        raise InputError(f"{p}: [train] schedule must be cosine or wsd, got {t.schedule!r}")
    if t.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"{p}: [train] device must be auto, cpu or cuda, got {t.device!r}")
    if m.min_layers < 1:
        raise InputError(f"{p}: [model] min_layers must be at least 1")
    if m.seq_len < 8 or m.head_dim < 8:
        raise InputError(f"{p}: [model] seq_len and head_dim must be at least 8")
    if m.width_multiple < 8 or m.width_multiple % 8:
        raise InputError(f"{p}: [model] width_multiple must be a positive multiple of 8, got {m.width_multiple}")


# ----------------------------------------------------------------------------------------------------------------


def shape_for(target_params: float, vocab_size: int, m: ModelConfig) -> Shape:
    """The documented shape rule. d_model is a multiple of `width_multiple` (8 by default). `closest`: among shapes
    with d_model / n_layer within a factor 2 of `aspect` and at least `min_layers` layers, the one whose parameter
    count is closest (in log) to the target, with a small penalty for straying from `aspect`. `monotone`: depth
    first, from the target alone (n_layer = round((N / (12 aspect^2))^(1/3)), since N ~ 12 n_layer d_model^2 with
    d_model = aspect * n_layer), at least `min_layers`; then the d_model (at least head_dim) whose parameter count
    is closest to the target. Depth and width never shrink as the target grows, so the sizes of an IsoFLOP set form
    one family instead of jumping between depths (closest may give 2 layers to a smaller model and 1 to a larger).
    Heads: d_model // head_dim (at least 1, dividing d_model)."""
    if m.shape_rule == "monotone":
        layers = max(1, m.min_layers, round((target_params / (12 * m.aspect**2)) ** (1 / 3)))
        w = m.width_multiple
        return min((_shape(layers, d, vocab_size, m) for d in range(w * math.ceil(m.head_dim / w), 8193, w)),
                   key=lambda s: abs(math.log(s.params / target_params)))
    best, best_score = None, math.inf
    for n_layer in range(max(1, m.min_layers), 65):
        for k in range(1, 8192 // m.width_multiple + 1):
            d = m.width_multiple * k
            ratio = d / n_layer
            if not (m.aspect / 2 <= ratio <= m.aspect * 2):
                continue
            s = _shape(n_layer, d, vocab_size, m)
            score = abs(math.log(s.params / target_params)) + 0.05 * abs(math.log(ratio / m.aspect))
            if score < best_score:
                best, best_score = s, score
    return best


def _shape(n_layer: int, d: int, vocab_size: int, m: ModelConfig) -> Shape:
    n_head = max(1, d // m.head_dim)
    while d % n_head:
        n_head -= 1
    return Shape(n_layer, d, n_head, vocab_size, m.seq_len, m.mlp_ratio)


@dataclass
class RunSpec:
    id: str
    budget: float
    shape: Shape
    tokens: int
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    seed: int

    @property
    def batch_tokens(self) -> int:
        return self.batch_size * self.shape.seq_len

    @property
    def compute(self) -> float:
        return self.shape.train_flops(self.tokens)

    def as_dict(self) -> dict:
        return {"run": self.id, "budget": self.budget, "compute": self.compute,
                "compute_6nd": self.shape.flops_6nd(self.tokens), "params": self.shape.params,
                "params_total": self.shape.params_total, "tokens": self.tokens, "steps": self.steps,
                "n_layer": self.shape.n_layer, "d_model": self.shape.d_model, "n_head": self.shape.n_head,
                "seq_len": self.shape.seq_len, "batch_tokens": self.batch_tokens, "lr": self.lr,
                "warmup_steps": self.warmup_steps, "seed": self.seed}


def budgets(cfg: Config) -> list[float]:
    s = cfg.sweep
    if s.budgets:
        return sorted(float(b) for b in s.budgets)
    return list(np.geomspace(s.min, s.max, s.count))


def lr_for(params: float, t: TrainConfig) -> float:
    return t.lr * (params / t.lr_ref_params) ** t.lr_exponent


def plan(cfg: Config, vocab_size: int = 256) -> list[RunSpec]:
    """Run specs, smallest budget first. Raises InputError for budgets too small for the smallest model."""
    s, t, m = cfg.sweep, cfg.train, cfg.model
    specs: list[RunSpec] = []
    smallest = shape_for(1.0, vocab_size, m)
    batch_tokens = t.batch_size * m.seq_len
    ladder = budgets(cfg)
    for bi, budget in enumerate(ladder):
        # centre: N with tokens = r * N, i.e. budget = flops_per_token(N) * r * N ~ 6 r N^2
        centre = math.sqrt(budget / (6.0 * s.tokens_per_param))
        # the IsoFLOP set: sizes_per_budget distinct shapes around the centre, size_step apart. Where the shape rule
        # maps two targets to one shape (below the smallest model) or a size is too big for min_steps, the set is
        # topped up with the next sizes outward (larger first), so every budget keeps its full set where it can.
        n = s.sizes_per_budget
        base = list(np.arange(n) - (n - 1) / 2)
        extra = [base[-1] + k for k in range(1, n + 1)] + [base[0] - k for k in range(1, n + 1)]
        seen, chosen = set(), []
        for off in base + extra:
            if len(chosen) == n:
                break
            shape = shape_for(centre * s.size_step**off, vocab_size, m)
            key = (shape.n_layer, shape.d_model)
            if key in seen:
                continue
            seen.add(key)
            spec = _spec(cfg, bi, budget, shape)
            if spec is None:
                if off == base[0] or shape == smallest:
                    raise InputError(
                        f"{cfg.source}: budget {budget:.3g} FLOPs is too small: the {shape.params:,}-parameter model "
                        f"gets {int(budget // (shape.train_flops_per_token * batch_tokens))} steps of {batch_tokens} "
                        f"tokens (min_steps {s.min_steps}); the smallest model needs "
                        f"{smallest.train_flops_per_token * batch_tokens * s.min_steps:.3g} FLOPs")
                continue
            chosen.append(spec)
        specs += sorted(chosen, key=lambda sp: sp.shape.params)
        if not chosen:
            raise InputError(f"{cfg.source}: budget {budget:.3g} FLOPs leaves no model with {s.min_steps} steps")
    if s.repeats:
        # repeat the compute-optimal guess (the likely frontier model; else the set's middle size) of each
        # repeat_at budget with other seeds: the seed-to-seed noise floor of the frontier. Noise grows with the
        # budget on small sweeps (one seed decides which size wins a set), so one repeat in the middle of the
        # range measures it where the fit leans, for a fraction of the cost of the largest budget.
        for bi in sorted({p % len(ladder) for p in s.repeat_at}, reverse=True):
            centre = compute_optimal_run(cfg, [sp for sp in specs if sp.budget == ladder[bi]], vocab_size)
            at = specs.index(centre) + 1
            stem = centre.id.rsplit("-s", 1)[0]
            specs[at:at] = [replace(centre, seed=s.seed + 1 + k, id=f"{stem}-s{s.seed + 1 + k}")
                            for k in range(s.repeats)]
    return specs


def compute_optimal_run(cfg: Config, at_budget: list[RunSpec], vocab_size: int = 256) -> RunSpec:
    """Of one budget's IsoFLOP set, the run of the compute-optimal guess (the shape rule at N = sqrt(C / (6 r))),
    else the set's middle size: the budget's likely frontier model, which repeated seeds and the LR probe train."""
    budget = at_budget[0].budget
    guess = shape_for(math.sqrt(budget / (6.0 * cfg.sweep.tokens_per_param)), vocab_size, cfg.model)
    return next((sp for sp in at_budget if sp.shape == guess), at_budget[len(at_budget) // 2])


def budget_index(run_id: str) -> int | None:
    """The budget position in a planned run's id (b<index>-L<layers>d<width>-s<seed>...), None for other names."""
    head = run_id.split("-", 1)[0]
    return int(head[1:]) if head[:1] == "b" and head[1:].isdigit() else None


def _spec(cfg: Config, bi: int, budget: float, shape: Shape) -> RunSpec | None:
    """The run of `shape` at the bi-th budget: as many steps as the budget buys, or None if under min_steps."""
    s, t = cfg.sweep, cfg.train
    batch_tokens = t.batch_size * shape.seq_len
    steps = int(budget // (shape.train_flops_per_token * batch_tokens))
    if steps < s.min_steps:
        return None
    warmup = max(1, min(round(shape.params / batch_tokens), round(t.warmup_max_frac * steps)))
    return RunSpec(id=f"b{bi}-L{shape.n_layer}d{shape.d_model}-s{s.seed}", budget=float(budget), shape=shape,
                   tokens=steps * batch_tokens, steps=steps, batch_size=t.batch_size, lr=lr_for(shape.params, t),
                   warmup_steps=warmup, seed=s.seed)


def bracket_spec(cfg: Config, bi: int, budget: float, tried: list[Shape], side: str,
                 vocab_size: int = 256) -> RunSpec | None:
    """The next size beyond the `side` ("largest" or "smallest") edge of an IsoFLOP set whose shapes are `tried`:
    the shape rule at size_step^k times the edge size (k = 1, 2, 3: the first shape not yet tried that lies beyond
    the edge), with the set's recipe. None where there is none: below the smallest shape, or too big for min_steps."""
    m, step = cfg.model, cfg.sweep.size_step
    edge = max(tried, key=lambda sh: sh.params) if side == "largest" else min(tried, key=lambda sh: sh.params)
    keys = {(sh.n_layer, sh.d_model) for sh in tried}
    for k in (1, 2, 3):
        shape = shape_for(edge.params * (step**k if side == "largest" else step**-k), vocab_size, m)
        beyond = shape.params > edge.params if side == "largest" else shape.params < edge.params
        if beyond and (shape.n_layer, shape.d_model) not in keys:
            return _spec(cfg, bi, budget, shape)
    return None


def lr_at(step: int, spec: RunSpec, t: TrainConfig) -> float:
    """Warmup, then cosine to final_lr_frac of peak over the run's own steps (or warmup-stable-decay)."""
    peak, floor = spec.lr, spec.lr * t.final_lr_frac
    if step < spec.warmup_steps:
        return peak * (step + 1) / spec.warmup_steps
    if t.schedule == "wsd":
        decay_start = int(spec.steps * (1 - t.wsd_decay_frac))
        if step < decay_start:
            return peak
        frac = (step - decay_start) / max(1, spec.steps - decay_start)
        return peak + (floor - peak) * frac
    frac = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(frac, 1.0)))
