"""From a sweep config to run specs: budgets -> IsoFLOP sets of model shapes -> tokens, steps and hyperparameters.

One recipe for every run (Porian et al. 2024; docs/recipe.md): each run's schedule is sized to its own token budget, warmup is
short (about the parameter count in tokens, at most 10% of the run), the peak learning rate follows
lr ~ N^(-1/3) (OLMo's ladder, Bhagia et al. 2024), AdamW beta2 = 0.99 at small batch sizes (Porian et al. 2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .config import Config, ModelConfig, TrainConfig
from .errors import InputError
from .flops import Shape

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
    w = m.width_multiple
    for n_layer in range(max(1, m.min_layers), 65):
        k_lo = max(1, math.ceil(m.aspect / 2 * n_layer / w - 1e-9))
        k_hi = min(8192 // w, int(m.aspect * 2 * n_layer / w + 1e-9))
        for k in range(k_lo, k_hi + 1):
            d = w * k
            ratio = d / n_layer
            if not (m.aspect / 2 <= ratio <= m.aspect * 2):
                continue
            s = _shape(n_layer, d, vocab_size, m)
            size_miss = math.log(s.params / target_params)
            score = abs(size_miss) + 0.05 * abs(math.log(ratio / m.aspect))
            if score < best_score:
                best, best_score = s, score
            elif size_miss > best_score:  # params grow with d: every wider shape of this depth scores worse
                break
        else:
            continue
        if k == k_lo and best is not None and size_miss > best_score:
            break  # the narrowest shape of this depth is already too large, and deeper ones are larger still
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
        return {"run": self.id, "budget": self.budget, "compute": self.compute, "compute_convention": "exact",
                "compute_6nd": self.shape.flops_6nd(self.tokens), "params": self.shape.params,
                "params_total": self.shape.params_total, "tokens": self.tokens, "steps": self.steps,
                "n_layer": self.shape.n_layer, "d_model": self.shape.d_model, "n_head": self.shape.n_head,
                "seq_len": self.shape.seq_len, "vocab_size": self.shape.vocab_size, "mlp_ratio": self.shape.mlp_ratio,
                "batch_tokens": self.batch_tokens, "lr": self.lr,
                "warmup_steps": self.warmup_steps, "seed": self.seed}


def budgets(cfg: Config) -> list[float]:
    return cfg.sweep.ladder()


def lr_for(params: float, t: TrainConfig) -> float:
    return t.lr * (params / t.lr_ref_params) ** t.lr_exponent


def model_vocab(vocab_size: int, m: ModelConfig) -> int:
    """The model's vocabulary: the tokenizer's, padded up to a multiple of [model] vocab_multiple."""
    return -(-int(vocab_size) // m.vocab_multiple) * m.vocab_multiple


def plan(cfg: Config, vocab_size: int = 256) -> list[RunSpec]:
    """Run specs, smallest budget first (the vocabulary padded by model_vocab). Raises InputError for budgets too
    small for the smallest model."""
    s, t, m = cfg.sweep, cfg.train, cfg.model
    vocab_size = model_vocab(vocab_size, m)
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
        base = [i - (n - 1) / 2 for i in range(n)]
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


def optimal_split(chin_fit, compute, cfg: Config, vocab_size: int = 256):
    """Compute-optimal params N* and tokens D* that spend `compute` exact training FLOPs (attention and output layer
    included, as the sweep counts them) on this recipe's shapes, by a chinchilla fit: N minimizing L(N, C / f(N)),
    with f(N) = 6N + 12 n_layer seq_len d_model the exact FLOPs per token of a shape of about N parameters at the
    config's aspect ratio (flops.py; n_layer = (N / (12 aspect^2))^(1/3), d_model = aspect n_layer). The 6ND
    allocation (laws.optimal_allocation) would spend 15-28% more than C on these small shapes."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    m = cfg.model

    def flops_per_token(n):
        layers = max(float(m.min_layers), (n / (12 * m.aspect**2)) ** (1 / 3))
        return 6 * n + 12 * layers * m.seq_len * (m.aspect * layers)

    law = chin_fit.law
    n_out, d_out = [], []
    for c in np.atleast_1d(np.asarray(compute, dtype=float)):
        n6, _ = law.derived["optimal_allocation"](chin_fit.values, c)

        def loss(logn, c=c):
            n = np.exp(logn)
            X = law.features(params=[n], tokens=[c / flops_per_token(n)])
            return float(chin_fit.log_predict(X)[0])

        lo = math.log(max(float(n6), 1.0)) - 4.0
        res = minimize_scalar(loss, bounds=(lo, lo + 8.0), method="bounded", options={"xatol": 1e-6})
        n = float(np.exp(res.x))
        n_out.append(n)
        d_out.append(c / flops_per_token(n))
    return np.array(n_out), np.array(d_out)


def compute_optimal_run(cfg: Config, at_budget: list[RunSpec], vocab_size: int = 256) -> RunSpec:
    """Of one budget's IsoFLOP set, the run of the compute-optimal guess (the shape rule at N = sqrt(C / (6 r))),
    else the set's middle size: the budget's likely frontier model, which repeated seeds and the LR probe train."""
    budget = at_budget[0].budget
    vocab_size = model_vocab(vocab_size, cfg.model)
    guess = shape_for(math.sqrt(budget / (6.0 * cfg.sweep.tokens_per_param)), vocab_size, cfg.model)
    return next((sp for sp in at_budget if sp.shape == guess), at_budget[len(at_budget) // 2])


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
    vocab_size = model_vocab(vocab_size, m)
    edge = max(tried, key=lambda sh: sh.params) if side == "largest" else min(tried, key=lambda sh: sh.params)
    keys = {(sh.n_layer, sh.d_model) for sh in tried}
    for k in (1, 2, 3):
        shape = shape_for(edge.params * (step**k if side == "largest" else step**-k), vocab_size, m)
        beyond = shape.params > edge.params if side == "largest" else shape.params < edge.params
        if beyond and (shape.n_layer, shape.d_model) not in keys:
            return _spec(cfg, bi, budget, shape)
    return None


def bracket_next(cfg: Config, known: list[RunSpec], planned: set, done: dict, vocab_size: int = 256) -> list:
    """The next bracketing runs: for each budget whose runs (planned and added) have all finished, where the lowest
    seed-mean loss is at the set's smallest or largest size (frontier.edge), the next size beyond that edge
    (bracket_spec), until [sweep] bracket sizes were added to that budget. Deterministic given the finished
    records, so a resumed sweep adds the same runs."""
    from .frontier import edge

    ladder = budgets(cfg)
    by_budget: dict[float, list] = {}
    for sp in known:
        by_budget.setdefault(sp.budget, []).append(sp)
    new, ids = [], {sp.id for sp in known}
    for budget, group in by_budget.items():
        if any(sp.id not in done for sp in group) or sum(sp.id not in planned for sp in group) >= cfg.sweep.bracket:
            continue
        losses: dict = {}
        for sp in group:
            rec = done[sp.id]
            if rec.get("status") == "ok" and isinstance(rec.get("loss"), (int, float)) and math.isfinite(rec["loss"]):
                losses.setdefault(sp.shape, []).append(rec["loss"])
        sizes = sorted(losses, key=lambda sh: sh.params)
        side = edge(sizes, [sum(losses[sh]) / len(losses[sh]) for sh in sizes])
        tried = sorted({sp.shape for sp in group}, key=lambda sh: sh.params)
        best = sizes[0] if side == "smallest" else sizes[-1] if side == "largest" else None
        if best is None or best != (tried[0] if side == "smallest" else tried[-1]):
            continue  # bracketed, or a size beyond the edge was tried and diverged: a larger step will not help
        bi = min(range(len(ladder)), key=lambda i: abs(math.log(ladder[i] / budget)))
        spec = bracket_spec(cfg, bi, budget, [sp.shape for sp in group], side, vocab_size)
        if spec is not None and spec.id not in ids:
            new.append(spec)
    return new


def lr_at(step: int, spec: RunSpec, t: TrainConfig) -> float:
    """Warmup, then cosine to final_lr_frac of peak over the run's own steps (or warmup-stable-decay, or constant)."""
    peak, floor = spec.lr, spec.lr * t.final_lr_frac
    if step < spec.warmup_steps:
        return peak * (step + 1) / spec.warmup_steps
    if t.schedule == "constant":
        return peak
    if t.schedule == "wsd":
        decay_start = int(spec.steps * (1 - t.wsd_decay_frac))
        if step < decay_start:
            return peak
        frac = (step - decay_start) / max(1, spec.steps - decay_start)
        return peak + (floor - peak) * frac
    frac = (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(frac, 1.0)))
