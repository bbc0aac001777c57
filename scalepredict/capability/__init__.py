"""Capabilities built on a loss fit: GPT-4's pass-rate law (passrate), and task accuracy in two steps (links: the
step-2 forms; tasks: the task fit; task_inputs: reading its metrics through ingest). Imports the core and ingest,
never train."""
