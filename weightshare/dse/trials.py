"""Every evaluation is an Optuna trial: this module stores and reads them back.

One storage (``DIR/study.db`` by default) holds one study per phase, named
``<study name>/<phase>`` (``--study-name``, default ``weightshare``), so one PostgreSQL server
can hold many explorations. Each completed trial carries, in its user attributes, the candidate's
key, the split it was scored on, the accuracy and the sizes, so a rerun rebuilds everything it
knows from the storage alone and never evaluates the same (candidate, split) twice.
The settings that define the exploration are stored with the first study; a rerun with
different settings is refused with the name of the setting that differs.

Trials asked by a sampler beat Optuna's heartbeat while they run (:mod:`.heartbeat`); only those
whose driver stopped beating are failed as stale, never the trials of another live driver.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from weightshare.dse.heartbeat import Heartbeat
from weightshare.dse.space import Candidate
from weightshare.errors import UserError, first_line
from weightshare.types import EvalResult

DEFAULT_STUDY = "weightshare"
DIRECTIONS = ("minimize", "maximize")  # size in bytes, accuracy
HEARTBEAT_SECONDS = 10  # a live driver records each of its running trials' heartbeat this often
GRACE_SECONDS = 60  # a RUNNING trial without a beat for this long belongs to a dead driver


@dataclass(frozen=True)
class Record:
    """A completed evaluation as stored: the :class:`EvalResult` plus where it lives.

    Attributes:
        phase: study phase (``baseline``, ``sensitivity``, ``ladder``, ``search``, ...).
        number: trial number within its phase's study.
        trial_id: the storage-wide unique trial id.
        candidate: the configuration (``Candidate.parse(result.key)``).
        result: the evaluation (its ``seconds`` is 0 for a reused result).
        reused: True when the result was copied from an earlier identical evaluation.

    The result's figures read through: ``split``, ``accuracy``, ``top5``, ``n_images``,
    ``bits_fixed``, ``bits_coded``, ``file_bytes`` (None: not a model-file network, or a trial
    stored before the exploration recorded it), ``seconds``, ``kl``, ``flip``,
    ``cross_entropy``, ``images_scored``, ``stopped_early``.
    """

    phase: str
    number: int
    trial_id: int
    candidate: Candidate
    result: EvalResult
    reused: bool

    split = property(lambda self: self.result.split)
    accuracy = property(lambda self: self.result.accuracy)
    top5 = property(lambda self: self.result.top5)
    n_images = property(lambda self: self.result.n_images)
    bits_fixed = property(lambda self: self.result.bits_fixed)
    bits_coded = property(lambda self: self.result.bits_coded)
    file_bytes = property(lambda self: self.result.file_bytes)
    seconds = property(lambda self: self.result.seconds)
    kl = property(lambda self: self.result.kl)
    flip = property(lambda self: self.result.flip)
    cross_entropy = property(lambda self: self.result.cross_entropy)
    images_scored = property(lambda self: self.result.images_scored)
    stopped_early = property(lambda self: self.result.stopped_early)


def open_storage(
    url: str, heartbeat_interval: int = HEARTBEAT_SECONDS, grace_period: int = GRACE_SECONDS
):
    """An Optuna storage for ``url`` with heartbeats on (seconds); UserError when ``url`` is no
    URL or cannot be opened."""
    if "://" not in url:
        raise UserError(f"--storage must be a URL such as sqlite:///study.db; got {url!r}")
    try:
        with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            rdb = optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat_interval, grace_period=grace_period
            )
        return optuna.storages.get_storage(rdb)  # with Optuna's trial cache, as create_study does
    except Exception as exc:  # sqlalchemy/optuna raise many types for a bad URL
        reason = re.sub(r"^\([\w.]+\) ", "", first_line(exc))  # SQLAlchemy's "(module.Error) "
        raise UserError(f"cannot open --storage {url!r} ({reason})") from None


class TrialStore:
    """Studies of one exploration in one storage.

    Args:
        storage: an Optuna storage URL (``sqlite:///DIR/study.db``, ``postgresql://...``).
        settings: the settings that define the exploration (JSON-able); checked on resume.
        name: the study name (prefix of the per-phase studies).
        heartbeat_interval, grace_period: seconds between two heartbeats of a running trial,
            and without one before the trial counts as stale (see :meth:`fail_stale`).
    """

    def __init__(
        self,
        storage: str,
        settings: dict,
        name: str = DEFAULT_STUDY,
        *,
        heartbeat_interval: int = HEARTBEAT_SECONDS,
        grace_period: int = GRACE_SECONDS,
    ) -> None:
        if not name or "/" in name:
            raise UserError(f"--study-name must be a non-empty name without '/'; got {name!r}")
        self.prefix = name + "/"
        self.url = storage
        self.storage = open_storage(storage, heartbeat_interval, grace_period)
        self.heartbeat = Heartbeat(self.storage, heartbeat_interval)
        self.settings = json.loads(json.dumps(settings))
        self._studies: dict[str, optuna.Study] = {}
        self._check_settings()
        self._by_key: dict[tuple[str, str], Record] = {}
        for record in self.records():
            self._remember(record)

    def _check_settings(self) -> None:
        study = self.study("baseline")
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", self.settings)
            return
        differ = [
            k
            for k in sorted(set(stored) | set(self.settings))
            if stored.get(k) != self.settings.get(k)
        ]
        if differ:
            k = differ[0]
            raise UserError(
                f"the study in {self.url} was made with {k}={stored.get(k)!r} but this run has "
                f"{k}={self.settings.get(k)!r}"
                + (f" (and {len(differ) - 1} more settings differ)" if len(differ) > 1 else "")
                + ": rerun with the same settings to resume, or use another --log_file/--storage"
            )

    def study(self, phase: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        """The (created or loaded) study of ``phase``; a given sampler replaces the cached one."""
        if phase not in self._studies or sampler is not None:
            self._studies[phase] = optuna.create_study(
                storage=self.storage,
                study_name=self.prefix + phase,
                directions=list(DIRECTIONS),
                sampler=sampler or optuna.samplers.RandomSampler(seed=0),
                load_if_exists=True,
            )
        return self._studies[phase]

    def add_wall_seconds(self, seconds: float) -> float:
        """Add this run's wall time to the study's; return the total over every run of it."""
        study = self.study("baseline")
        total = float(study.user_attrs.get("wall_seconds", 0.0)) + seconds
        study.set_user_attr("wall_seconds", total)
        return total

    def phases(self) -> list[str]:
        names = [s.study_name for s in optuna.get_all_study_summaries(self.storage)]
        return [n[len(self.prefix) :] for n in names if n.startswith(self.prefix)]

    def records(self, phase: str | None = None) -> list[Record]:
        """Completed evaluations, of one phase or of all, in phase then trial order."""
        out = []
        for name in [phase] if phase else self.phases():
            for trial in self.study(name).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                out.append(_record(name, trial))
        return out

    def _remember(self, record: Record) -> None:
        """Index a record for :meth:`lookup`: the first one, unless a complete evaluation
        comes after one that stopped early."""
        key = (record.candidate.key(), record.split)
        known = self._by_key.get(key)
        if known is None or (known.stopped_early and not record.stopped_early):
            self._by_key[key] = record

    def lookup(self, candidate: Candidate, split: str, *, partial: bool = False) -> Record | None:
        """A stored evaluation of the same candidate on the same split, if any.

        One that stopped early (a certain failure, its figures over part of the split) is
        returned only with ``partial=True``: where only pass/fail matters.
        """
        found = self._by_key.get((candidate.key(), split))
        if found is not None and found.stopped_early and not partial:
            return None
        return found

    def fail_stale(self, phase: str) -> None:
        """Fail the RUNNING trials of ``phase`` whose driver stopped beating (Optuna's
        ``fail_stale_trials``); a live driver's trials, here or on another machine, stay."""
        with warnings.catch_warnings():  # experimental since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study(phase))

    def ask(self, phase: str) -> optuna.Trial:
        """A new trial of ``phase`` from its sampler, beating until it is told or failed."""
        with warnings.catch_warnings():  # we beat ourselves: Study.ask need not warn about it
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
            trial = self.study(phase).ask()
        self.heartbeat.add(trial._trial_id)
        return trial

    def fail(self, phase: str, trial: optuna.Trial) -> None:
        """Tell an asked trial FAIL (its evaluation was lost or interrupted)."""
        self.study(phase).tell(trial, state=TrialState.FAIL)
        self.heartbeat.discard(trial._trial_id)

    def close(self) -> None:
        """Stop the heartbeat thread (trials still RUNNING become stale after the grace)."""
        self.heartbeat.close()

    def attrs(
        self, result: EvalResult, size_bytes: float, target: float | None, reused: bool
    ) -> dict:
        return {
            "key": result.key,
            "split": result.split,
            "accuracy": result.accuracy,
            "top5": result.top5,
            "n_images": result.n_images,
            "bits_fixed": result.bits_fixed,
            "bits_coded": result.bits_coded,
            "file_bytes": result.file_bytes,
            "correct": result.correct,
            "kl": result.kl,
            "flip": result.flip,
            "cross_entropy": result.cross_entropy,
            "n_scored": result.images_scored,
            "size_bytes": size_bytes,
            "seconds": 0.0 if reused else result.seconds,
            "reused": reused,
            "target": target,
            "node": None if reused else result.node,
        }

    def add(
        self,
        phase: str,
        candidate: Candidate,
        result: EvalResult,
        *,
        size_bytes: float,
        target: float | None,
        params: dict | None = None,
        distributions: dict | None = None,
        reused: bool = False,
    ) -> Record:
        """Store a finished evaluation that no sampler asked for (baseline, step 1, ladder)."""
        # Phases without a sampler store no params (a categorical's choices may never change
        # within a study): the candidate lives in the user attributes, as for every trial.
        params, distributions = params or {}, distributions or {}
        constraints = None if target is None else {"accuracy": target - result.accuracy}
        trial = optuna.trial.create_trial(
            values=[size_bytes, result.accuracy],
            params=params,
            distributions=distributions,
            user_attrs=self.attrs(result, size_bytes, target, reused),
            constraints=constraints,
        )
        # Study.add_trial, but keeping the storage's trial id (add_trial returns nothing).
        study_id = self.storage.get_study_id_from_name(self.study(phase).study_name)
        trial_id = self.storage.create_new_trial(study_id, template_trial=trial)
        record = _record(phase, self.storage.get_trial(trial_id))
        self._remember(record)
        return record

    def tell(
        self,
        phase: str,
        trial: optuna.Trial,
        candidate: Candidate,
        result: EvalResult,
        *,
        size_bytes: float,
        target: float,
        reused: bool,
        confirmed: tuple[float, float] | None = None,
    ) -> Record:
        """Finish a trial that a sampler asked for.

        ``confirmed`` = (accuracy, target) on the whole search split: when given, the sampler
        is told that accuracy and judged against that target (the scaled split is noisy).
        """
        for name, value in self.attrs(result, size_bytes, target, reused).items():
            trial.set_user_attr(name, value)
        accuracy, target = confirmed or (result.accuracy, target)
        trial.set_user_attr("confirmed_accuracy", None if confirmed is None else accuracy)
        trial.set_constraint("accuracy", target - accuracy)
        frozen = self.study(phase).tell(trial, [size_bytes, accuracy])
        self.heartbeat.discard(trial._trial_id)
        record = _record(phase, frozen)
        self._remember(record)
        return record


def _record(phase: str, trial) -> Record:
    a = trial.user_attrs
    nan = float("nan")
    result = EvalResult(
        key=a["key"],
        split=a["split"],
        accuracy=a["accuracy"],
        top5=a["top5"],
        n_images=a["n_images"],
        correct=int(a.get("correct", round(a["accuracy"] * a["n_images"]))),
        seconds=a["seconds"],
        bits_fixed={k: int(v) for k, v in a["bits_fixed"].items()},
        bits_coded={k: float(v) for k, v in a["bits_coded"].items()},
        file_bytes=a.get("file_bytes"),
        node=a.get("node"),
        # studies stored before the damage figures existed read back as NaN
        kl=_float(a.get("kl", nan)),
        flip=_float(a.get("flip", nan)),
        cross_entropy=_float(a.get("cross_entropy", nan)),
        n_scored=a.get("n_scored"),
    )
    return Record(
        phase=phase,
        number=trial.number,
        trial_id=trial._trial_id,
        candidate=Candidate.parse(a["key"]),
        result=result,
        reused=a["reused"],
    )


def _float(value) -> float:
    """A stored float (JSON has no NaN: Optuna's storages may give it back as None)."""
    return float("nan") if value is None else float(value)
