"""The defaults every entry point shares (the library, the command line, the sweep's end step, the report): one
definition each, importable without numpy so that the command line starts fast."""

HUBER_DELTA = 1e-3  # Huber loss on log-loss residuals, as Hoffmann et al. 2022 and Besiroglu et al. 2024
BOOTSTRAP = 1000  # resamples over runs for parameter and prediction uncertainty
LEVEL = 0.9  # two-sided level of every interval
BACKTEST_FACTORS = (10, 100)  # hold out everything above C_max / k
