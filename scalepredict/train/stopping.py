"""Stopping a run on a step boundary: SIGINT and SIGTERM set a flag instead of killing the process, and the trainer
(or a waiting launcher) ends at its next step boundary with a checkpoint and raises Stopped. No torch here: the
launchers and `status` use it too."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

from ..errors import Stopped

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_STOP: dict = {"signum": None, "escalate": False}


def raise_if_stopped(message: str = "interrupted") -> None:
    if _STOP["signum"] is not None:
        raise Stopped(_STOP["signum"], message)


def stop_signal() -> int | None:
    """The stop signal received (a step boundary ends the run), or None."""
    return _STOP["signum"]


def request_stop(signum: int) -> None:
    """Ask the run in progress to end on its next step boundary (as a stop signal inside the context does)."""
    _STOP["signum"] = signum


def _on_stop_signal(signum, frame):
    if _STOP["signum"] is not None and _STOP["escalate"]:
        raise Stopped(signum, "interrupted again: stopped at once, without waiting for the step to end")
    request_stop(signum)


@contextmanager
def stop_at_step_boundary(escalate: bool = True):
    """Within: SIGINT and SIGTERM set a stop flag instead of killing the process (main thread only), and train_run
    ends its run on the next step boundary with a checkpoint and raises Stopped. With `escalate`, a second signal
    raises Stopped at once (a user who presses Ctrl-C twice does not wait for a long evaluation)."""
    _STOP.update(signum=None, escalate=escalate)
    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, _on_stop_signal) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        _STOP.update(signum=None, escalate=False)
