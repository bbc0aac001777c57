"""The defaults every entry point shares (the library, the command line, the sweep's pipeline, the report), and the
names the command line offers as choices: one definition each. Plain Python, no numpy: the command line builds
its options and its --help from this module alone (tests/test_architecture.py checks that the names here are the
registries' own)."""

HUBER_DELTA = 1e-3  # Huber loss on log-loss residuals, as Hoffmann et al. 2022 and Besiroglu et al. 2024
BOOTSTRAP = 1000  # resamples over runs for parameter and prediction uncertainty
LEVEL = 0.9  # two-sided level of every interval
BACKTEST_FACTORS = (10, 100)  # `backtest`: hold out everything above C_max / k
REPORT_BACKTEST_FACTORS = (3, 10, 30, 100, 1000)  # a report's backtest: those of these the runs' span allows
REPORT_BACKTEST_BOOTSTRAP = 200  # resamples per refit of a report's backtest
MAX_EXTRAPOLATION = 1e4  # beyond 10,000x the largest fitted compute (GPT-4's reach), predictions carry a warning
MIN_EXTRAPOLATION = 1e-3  # below 1/1,000 of the smallest fitted compute, predictions carry a warning
TARGET_FACTORS = (10, 100, 1000, 10000)  # targets where a sweep or report names none: these times the largest run

# capabilities
PASSRATE_BOOTSTRAP = 1000  # fit-passrate: resamples over models and problems
TASK_BOOTSTRAP = 200  # fit-tasks: resamples of each step
TASK_FORMS = ("auto", "sigmoid", "sigmoid1", "exponential")

# the names the command line offers (the registries they name: core.laws.LAWS, ingest.registry.READERS)
LAW_NAMES = ("compute", "power", "chinchilla", "chinchilla_tied", "chinchilla_nd")
# every log format `--format` names, in detection order, with what it reads (ingest/registry.py holds the readers)
LOG_FORMATS = {
    "wandb_run": "W&B run folders on disk: wandb/run-*/ or offline-run-*/, a wandb/ folder of them, or a run's "
                 ".wandb file (extra .[wandb])",
    "mlflow": "an MLflow tracking store: an mlruns/ folder, one experiment or run of it, or a SQLite file "
              "(extra .[mlflow])",
    "tensorboard": "TensorBoard event files or a run folder (extra .[tensorboard])",
    "wandb_history": "a W&B run history (run.history() / scan_history()) saved as CSV, JSONL or Parquet",
    "hf_trainer": "Hugging Face Trainer trainer_state.json",
    "hf_results": "Hugging Face all_results.json / eval_results.json",
    "sweep_log": "scalepredict's own per-run log (a sweep's runs/<id>/log.jsonl)",
    "runs": "a run table: JSONL, a JSON array, or CSV",
    "wandb": "a W&B chart's Export CSV",
    "wandb_runs": "the W&B runs table's Export CSV",
    "llmc": "llm.c stdout",
    "nanogpt": "nanoGPT stdout",
    "modded_nanogpt": "modded-nanogpt stdout",
    "megatron": "Megatron-LM / Megatron-DeepSpeed stdout",
    "torchtitan": "torchtitan console log",
    "build_nanogpt": "build-nanogpt log.txt",
    "lightning": "PyTorch Lightning CSVLogger metrics.csv (+ hparams.yaml)",
    "pattern": "any text log, with --pattern (named groups step and value)",
}
CONVENTION_NAMES = ("exact", "6nd", "reported")
