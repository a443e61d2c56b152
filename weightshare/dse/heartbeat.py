"""Optuna's heartbeat for trials asked and told by hand (``Study.optimize`` beats on its own).

While a driver runs a trial it records the trial's heartbeat in the storage every
``interval`` seconds (``RDBStorage.record_heartbeat``, one row per trial); a RUNNING trial whose
last beat is older than the storage's ``grace_period`` belongs to a driver that died, and
``optuna.storages.fail_stale_trials`` fails it. Trials of a live driver, on this machine or
another sharing the storage, keep beating and are never failed.
"""

from __future__ import annotations

import threading


class Heartbeat:
    """Beats, on one daemon thread, for every trial this driver has asked and not yet told.

    Args:
        storage: an Optuna storage with heartbeats enabled (``RDBStorage(heartbeat_interval=)``).
        interval: seconds between two beats of a trial.
    """

    def __init__(self, storage, interval: float) -> None:
        self._storage = storage
        self._interval = interval
        self._trials: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        """Start beating for ``trial_id`` (the first beat at once: an unbeaten trial is never
        found stale, even after its driver died)."""
        self._storage.record_heartbeat(trial_id)
        with self._lock:
            self._trials.add(trial_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
                self._thread.start()

    def discard(self, trial_id: int) -> None:
        """Stop beating for ``trial_id`` (told, or failed by this driver)."""
        with self._lock:
            self._trials.discard(trial_id)

    def close(self) -> None:
        """Stop the thread (the trials still running will be found stale after the grace)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                trials = sorted(self._trials)
            for trial_id in trials:
                try:
                    self._storage.record_heartbeat(trial_id)
                except Exception:  # a busy database: the next beat retries, well within the grace
                    continue
