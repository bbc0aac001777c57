"""Training small transformer runs: the model, the data, one run, the workers and launchers that train a sweep's
runs, the sweep itself, resuming, status and the LR probe. The only package that imports torch; it never imports
the fitting core (a sweep's fit, figures and report are scalepredict/pipeline.py's)."""
