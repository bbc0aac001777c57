"""scalepredict: predict a large training run's final loss from small runs, with honest uncertainty."""

__version__ = "0.1.0"
