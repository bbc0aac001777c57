"""TensorBoard event files (scalars and scalar tensor summaries) through the `tensorboard` package."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .curve import Curve


def read_event_files(path: Path):
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            EventAccumulator,
        )
    except ImportError:
        raise InputError(f"{path}: reading TensorBoard files needs the tensorboard package: "
                         f"pip install 'scalepredict[tensorboard]'") from None
    files = sorted(path.rglob("*tfevents*")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no TensorBoard event files (*tfevents*) in the folder")
    curves = {}
    run_root = path if path.is_dir() else path.parent
    for f in files:
        ea = EventAccumulator(str(f), size_guidance={"scalars": 0, "tensors": 0})
        try:
            ea.Reload()
        except Exception as e:  # the reader raises its own error types on corrupt records
            raise InputError(f"{f}: not a readable TensorBoard event file ({type(e).__name__})") from None
        tags = ea.Tags()
        events = [(t, [(e.step, e.wall_time, float(e.value)) for e in ea.Scalars(t)]) for t in tags.get("scalars", [])]
        for t in tags.get("tensors", []):  # tensor summaries (T5X, TF2 summaries): keep scalar ones
            pts = [(e.step, e.wall_time, _scalar(e.tensor_proto)) for e in ea.Tensors(t)]
            if pts and all(v is not None for _, _, v in pts):  # a tag of images, text or histograms: not a curve
                events.append((t, pts))
        # event files in subfolders are TensorBoard's separate runs (T5X: train/, validation/): prefix their tags
        sub = f.parent.relative_to(run_root).as_posix() if path.is_dir() else "."
        prefix = "" if sub == "." else sub + "/"
        for tag, pts in events:
            c = curves.setdefault(prefix + tag, Curve(run_root.name, prefix + tag, [], [], None, str(run_root)))
            for step, wall, v in pts:
                c.steps.append(int(step))
                c.values.append(v)
                c.tokens = None
    # restarts: files are read in name (= start time) order, so a later file's repeat of a step wins in clean()
    return list(curves.values())


def _scalar(proto) -> float | None:
    """A tensor summary's value where it is one number, else None (text, images, histograms are not curves)."""
    import numpy as np
    from tensorboard.util import tensor_util

    try:
        arr = np.asarray(tensor_util.make_ndarray(proto))
    except (ValueError, TypeError):  # a dtype or shape make_ndarray does not know
        return None
    if arr.size != 1 or arr.dtype.kind not in "fiu":
        return None
    return float(arr.reshape(()))
