"""Your own trainer at every rung: `[train] command` is a command-line template that trains one planned run with
the plan's shape, budget and recipe ({n_layer}, {d_model}, {steps}, {lr}, {run_dir}, ...; config.PLACEHOLDERS).
The sweep's launchers run it like its own trainer (in turn, in a process pool, on SLURM); its log is read by the
ingest readers (`[train] log_format`, auto-detected by default) and the run's final loss is the last value of
`[train] metric` (default: the reader's validation loss).

- The command line is split as a shell would split it (quotes respected; each placeholder's value is one word) and
  run without a shell, in the sweep's working directory, with its stdout and stderr in {run_dir}/train.log.
- A run that exits non-zero, or whose log has no loss, fails with one line naming the run, its exit status and
  its log's last line; it is not recorded, so the next `sweep` tries it again. A run that finished is never
  trained again; one started before and interrupted is started with {resume} set to `[train] resume_flag`.
- A stop signal (Ctrl-C, SIGTERM) is passed on to the command (SIGINT, then SIGTERM and SIGKILL if it lingers),
  and the sweep stops: the next `sweep` resumes the run.
- Params and FLOPs are the plan's (exact, from the shape) unless the log reports a parameter count (then 6ND of
  it) or a FLOP count (then that), as the run table's compute conventions say.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import subprocess
import time
from pathlib import Path

from ..errors import InputError, Stopped
from ..files import RunFolder, atomic_write_json, folder_lock
from ..ingest import pick_metric, read_curves
from .stopping import stop_signal

STARTED = ".started"  # a marker: the command was started in this folder before (a rerun passes {resume})
OURS = {".lock", "record.json", STARTED}
GRACE_S = 30.0  # seconds a stopped command has to exit before SIGTERM, then as long again before SIGKILL


class RunFailed(InputError):
    """An external run that exited non-zero or logged no loss (one line: the run, the status, the log's end)."""


def values(spec, cfg, folder: RunFolder, device: str, resume: bool, data_paths: dict | None = None) -> dict:
    """Every placeholder's value for one planned run."""
    t, s = cfg.train, spec.shape
    data_paths = data_paths or {}
    return {"run_id": spec.id, "run_dir": str(folder.path.resolve()), "seed": spec.seed, "budget": spec.budget,
            "n_layer": s.n_layer, "d_model": s.d_model, "n_head": s.n_head, "head_dim": s.d_model // s.n_head,
            "mlp_ratio": s.mlp_ratio, "vocab_size": s.vocab_size, "seq_len": s.seq_len, "batch_size": spec.batch_size,
            "batch_tokens": spec.batch_tokens, "steps": spec.steps, "tokens": spec.tokens, "params": s.params,
            "lr": spec.lr, "warmup_steps": spec.warmup_steps, "min_lr": spec.lr * t.final_lr_frac,
            "final_lr_frac": t.final_lr_frac, "schedule": t.schedule, "weight_decay": t.weight_decay,
            "beta1": t.beta1, "beta2": t.beta2, "grad_clip": t.grad_clip, "device": device,
            "train_bin": data_paths.get("train", ""), "val_bin": data_paths.get("val", ""),
            "data_dir": data_paths.get("dir", ""), "resume": t.resume_flag if resume else ""}


def command_line(template: str, vals: dict) -> list[str]:
    """The template split as a shell splits it, each placeholder's value one word (quoted before the split)."""
    quoted = {k: shlex.quote(str(v)) if v != "" else "" for k, v in vals.items()}
    try:
        return shlex.split(template.format(**quoted))
    except ValueError as e:  # an unclosed quote
        raise InputError(f"[train] command: cannot be split into words ({e})") from None


def run_command(spec, cfg, folder: RunFolder, device: str, data_paths: dict | None = None) -> dict:
    """Train `spec` with the user's command and return its run-table record (also left in record.json)."""
    folder.path.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder.path):
        resume = (folder.path / STARTED).exists()
        folder.record.unlink(missing_ok=True)
        argv = command_line(cfg.train.command, values(spec, cfg, folder, device, resume, data_paths))
        (folder.path / STARTED).write_text(json.dumps({"argv": argv, "time": time.time()}) + "\n")
        t0 = time.time()
        status = _run(argv, folder, spec.id)
        if status != 0:
            raise RunFailed(f"{spec.id}: the command exited with status {status}{_last_line(folder)}; log "
                            f"{folder.stdout}")
        rec = _record(spec, cfg, folder, device, time.time() - t0)
        atomic_write_json(folder.record, rec)
        return rec


def _run(argv: list[str], folder: RunFolder, run_id: str) -> int:
    """Run the command to its end, or pass a stop signal on to it and raise Stopped."""
    with open(folder.stdout, "ab") as log:
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        except OSError as e:
            raise RunFailed(f"{run_id}: the command {argv[0]!r} cannot be started ({e.strerror})") from None
        while True:
            try:
                return proc.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
            if stop_signal() is not None:
                _stop(proc)
                raise Stopped(stop_signal(), f"{run_id} stopped (its command was asked to stop; a rerun resumes it)")


def _stop(proc) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_line(folder: RunFolder) -> str:
    try:
        lines = [l.strip() for l in folder.stdout.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return f"; its last line: {lines[-1][:200]!r}" if lines else "; it wrote nothing"


def _logs(cfg, folder: RunFolder) -> list[Path]:
    """The files the run's log is read from: [train] log (a path or glob under the run's folder), else every file
    it wrote (its stdout too), but ours."""
    if cfg.train.log:
        pattern = cfg.train.log.replace("{run_dir}/", "").replace("{run_dir}", "")
        return sorted(p for p in folder.path.glob(pattern) if p.is_file() or p.is_dir())
    return sorted(p for p in folder.path.iterdir() if p.name not in OURS and not p.name.startswith(".")
                  and p.suffix != ".pt")


def final_loss(cfg, folder: RunFolder, run_id: str):
    """(the final value of the run's loss metric, its curve) from the run's log; RunFailed where none is found."""
    seen, found = [], []
    for path in _logs(cfg, folder):
        try:
            fmt, curves = read_curves(path, cfg.train.log_format)
            found += [(c, fmt, path) for c in pick_metric(curves, fmt, cfg.train.metric, path)]
        except InputError as e:
            seen.append(str(e).split(": ", 1)[-1])
    finite = [(c, fmt, p) for c, fmt, p in found if c.values and math.isfinite(c.values[-1])]
    if not finite:
        what = cfg.train.metric or "a validation loss"
        why = "its last value is not finite (diverged)" if found else (seen[0] if seen else "no log files")
        raise RunFailed(f"{run_id}: the command finished but its log has no {what} ({why}){_last_line(folder)}")
    return max(finite, key=lambda item: item[0].steps[-1])


def _record(spec, cfg, folder: RunFolder, device: str, seconds: float) -> dict:
    curve, fmt, path = final_loss(cfg, folder, spec.id)
    rec = spec.as_dict()
    rec.update({"loss": float(curve.values[-1]), "loss_kind": f"{curve.metric} ({fmt} log)", "status": "ok",
                "final": True, "steps_done": int(curve.steps[-1]), "trainer": "command", "log": str(path),
                "schedule": cfg.train.schedule, "wall_seconds": round(seconds, 2), "device": device})
    reported = curve.meta.get("params")
    if reported:  # the trainer's own parameter count: compute as 6ND of it, beside the plan's exact count
        rec.update({"params_plan": rec["params"], "params": float(reported), "compute_plan": rec["compute"],
                    "compute": 6.0 * float(reported) * spec.tokens, "compute_convention": "6nd"})
    elif curve.meta.get("compute"):
        rec.update({"compute_plan": rec["compute"], "compute": float(curve.meta["compute"]),
                    "compute_convention": "reported"})
    return rec
