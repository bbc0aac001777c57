"""Readers that turn the logs other tools write into curves, and curves into a run table.

Every reader yields Curve(run, metric, steps, values, tokens). Formats, detected from content (`--format auto`):
runs (JSONL/CSV run tables), hf_trainer (trainer_state.json), lightning (CSVLogger metrics.csv, with
hparams.yaml beside it), wandb (the chart "Export CSV"), wandb_runs (the runs-table "Export CSV": one row per
run, config and summary columns), tensorboard (event files, through the `tensorboard`
package), llmc, nanogpt, modded_nanogpt and megatron stdout logs, and `pattern` (a regex with named groups
`step` and `value`, optionally `tokens` and `run`).

Params and tokens come, most specific first, from a run-meta file (one row per run or glob), from --params and
--tokens-per-step, or from the log itself (`run_meta_from`): hparams.yaml, config.json beside a trainer_state.json,
config columns of a W&B runs table, consumed tokens of Megatron; where only the shape is given, params are
Kaplan et al.'s non-embedding 12 * n_layer * d_model^2. A trainer_state.json's total_flos (the Trainer's own
6 * N * D estimate) is used as the run's compute where params or tokens are unknown.

From curves to runs: by default only the final value of each run's curve (or the mean of its last k points)
enters a fit: the middle of a cosine run is not the end of a shorter run (Porian et al. 2024; docs/recipe.md).
`intermediate=True` keeps every point as its own row, for fitting loss against tokens within one run, with that
caveat.
"""

from .curve import Curve
from .meta import compile_name_pattern, load_run_meta
from .registry import FORMATS, READERS, detect, read_curves, read_logs
from .stdout import TEXT_FORMATS
from .table import curves_to_records, load_table, pick_metric, records_from_logs

__all__ = ["Curve", "FORMATS", "READERS", "TEXT_FORMATS", "compile_name_pattern", "curves_to_records", "detect",
           "load_run_meta", "load_table", "pick_metric", "read_curves", "read_logs", "records_from_logs"]
