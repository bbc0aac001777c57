"""W&B run folders on disk: `wandb/run-*/` and `wandb/offline-run-*/`, a `wandb/` folder of them, or one run's
`.wandb` file. The `.wandb` transaction log is read record by record (its framing: a ":W&B" header, then 32 KiB
blocks of records, each with a 7-byte header: checksum, length, type FULL/FIRST/MIDDLE/LAST) and each record
decoded with the wandb package's own protobuf definitions (the `wandb` extra; a clear message where it is
missing). History records give the curves (every logged key by step), the run and config records the run's name
and config (params, batch size, sequence length through meta.run_meta_from), files/config.yaml beside it where the
log has no config, and the exit record whether the run failed.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

from ..errors import InputError
from .curve import Curve
from .meta import flatten, run_meta_from

MAGIC = b":W&B"
BLOCK = 32768
HEADER = 7  # the file's header (magic, 0xBEE1, version) and each record's (checksum, length, type)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def is_run(path: Path) -> bool:
    """A run's .wandb file, a run folder holding one, or a wandb/ folder of run folders."""
    if path.is_file():
        try:
            with open(path, "rb") as f:
                return f.read(4) == MAGIC
        except OSError:
            return False
    return path.is_dir() and bool(_wandb_files(path))


def _wandb_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    own = sorted(path.glob("*.wandb"))
    if own:
        return own
    return sorted(f for d in sorted(path.iterdir()) if d.is_dir() and d.name.startswith(("run-", "offline-run-"))
                  for f in d.glob("*.wandb"))


def records(path: Path):
    """The records of a .wandb file, as bytes, with FIRST/MIDDLE/LAST pieces joined; an InputError where the
    framing is broken (a record cut short at the end, as a run that is still writing leaves it, ends the log)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != MAGIC:
        raise InputError(f"{path}: not a W&B run log (no :W&B header)")
    pos, pending = HEADER, None
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pos += HEADER
        if kind == 0 and length == 0:  # zero padding to the block's end
            pos += left - HEADER
            continue
        if length > left - HEADER or pos + length > len(data):
            return  # cut short: a run still writing, or a damaged tail
        chunk = data[pos : pos + length]
        pos += length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE and pending is not None:
            pending += chunk
        elif kind == LAST and pending is not None:
            yield pending + chunk
            pending = None
        elif kind not in (FULL, FIRST, MIDDLE, LAST):
            raise InputError(f"{path}: not a W&B run log (record type {kind} at byte {pos - length - HEADER})")


def _value(item):
    if item.value_json:
        try:
            return json.loads(item.value_json)
        except ValueError:
            return None
    for field in ("number", "integer", "boolean"):
        try:
            if item.HasField(field):
                return getattr(item, field)
        except ValueError:
            continue
    return None


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(path: Path, text=None, pattern=None) -> list[Curve]:
    try:
        from wandb.proto import wandb_internal_pb2 as pb
    except ImportError:
        raise InputError(f"{path}: reading W&B run folders needs the wandb package: pip install "
                         f"'scalepredict[wandb]'") from None
    curves = []
    for log in _wandb_files(Path(path)):
        name, config, failed = log.stem.removeprefix("run-"), {}, False
        points: dict[str, tuple[list, list]] = {}
        for raw in records(log):
            rec = pb.Record()
            try:
                rec.ParseFromString(raw)
            except Exception:  # protobuf's DecodeError: a damaged record
                raise InputError(f"{log}: a damaged record in the W&B run log") from None
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                name = rec.run.display_name or rec.run.run_id or name
                config.update({_key(i): _value(i) for i in rec.run.config.update})
            elif kind == "config":
                config.update({_key(i): _value(i) for i in rec.config.update})
            elif kind == "exit":
                failed = rec.exit.exit_code != 0
            elif kind == "history":
                step = rec.history.step.num
                for item in rec.history.item:
                    k, v = _key(item), _value(item)
                    if k == "_step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                        step = int(v)
                for item in rec.history.item:
                    k, v = _key(item), _value(item)
                    if k.startswith("_") or isinstance(v, bool) or not isinstance(v, (int, float)):
                        continue
                    s, vals = points.setdefault(k, ([], []))
                    s.append(int(step))
                    vals.append(float(v))
        if not config:
            config = _config_yaml(log.parent / "files" / "config.yaml")
        # W&B keeps each config value as {"value": ..., "desc": ...}
        flat = flatten({k: (v.get("value") if isinstance(v, dict) and "value" in v else v) for k, v in config.items()})
        meta = run_meta_from(flat)
        if failed:
            meta["state"] = "failed"
        for k, (s, vals) in points.items():
            curves.append(Curve(name, k, s, vals, None, str(log), meta=dict(meta)))
    return curves


def _config_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    import yaml

    try:
        obj = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError:
        return {}
    return obj if isinstance(obj, dict) else {}
