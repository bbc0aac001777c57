"""The loss-law core: the law catalogue (laws), batched robust least squares (solver), covariance, bootstrap and
the floor's profile (uncertainty), a prediction's interval term by term (intervals), the fit result and its file
content (result, checks), fitting one law (single), the law average (ensemble), the front door (fit), laws of a
loss curve (curves) and backtests (backtest). It imports numpy, scipy and lmfit, and nothing of ingest, capability,
train, torch or matplotlib (tests/test_architecture.py)."""
