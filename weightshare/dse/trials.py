"""Every evaluation is an Optuna trial: this module stores and reads them back.

One storage (``DIR/study.db`` by default) holds one study per phase, named
``<study name>/<phase>`` (``--study-name``, default ``weightshare``), so one PostgreSQL server
can hold many explorations. Each completed trial carries, in its user attributes, the candidate's
key, the split it was scored on, the accuracy and the sizes, so a rerun rebuilds everything it
knows from the storage alone and never evaluates the same (candidate, split) twice.
The settings that define the exploration are stored with the first study; a rerun with
different settings is refused with the name of the setting that differs.

Several drivers may share one study (PostgreSQL): before evaluating a (candidate, split), a
driver **claims** it (:meth:`TrialStore.claim`): under the study's claim lock
(:mod:`.claim_lock`) it looks the pair up among the finished trials and the RUNNING ones that
mark a claim (user attributes ``key`` and ``split`` set while running), and only when nobody has
it creates a RUNNING trial of its own. A driver that finds the pair claimed by another one waits
for that trial (:meth:`TrialStore.wait`) instead of evaluating it. Every RUNNING trial beats
Optuna's heartbeat (:mod:`.heartbeat`); only those whose driver stopped beating are failed as
stale, never the trials of another live driver, so a dead driver's claims become claimable again.

Each trial is readable in optuna-dashboard as it is: the per-layer k as params (``k:LAYER``, 0 =
fp32; step 1's ``layer``/``k``), size and accuracy as the two objective values, and the phase,
split, ``accuracy_SPLIT``, sizes, damage figures (``kl``, ``flip``, ``cross_entropy``), the Ray
node and the driver as user attributes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from weightshare.dse.claim_lock import ClaimLock
from weightshare.dse.heartbeat import Heartbeat
from weightshare.dse.space import Candidate
from weightshare.errors import UserError, first_line
from weightshare.types import EvalResult

DEFAULT_STUDY = "weightshare"
DIRECTIONS = ("minimize", "maximize")  # size in bytes, accuracy
METRIC_NAMES = ("size_bytes", "accuracy")
HEARTBEAT_SECONDS = 10  # a live driver records each of its running trials' heartbeat this often
GRACE_SECONDS = 60  # a RUNNING trial without a beat for this long belongs to a dead driver
POLL_SECONDS = 0.5  # how often a driver waiting for another one's trials reads the study


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


@dataclass(frozen=True)
class Claim:
    """A RUNNING trial of ``phase`` that this driver evaluates: made by :meth:`TrialStore.claim`
    or asked from a sampler (:meth:`TrialStore.ask`); finished by :meth:`TrialStore.complete`
    or :meth:`TrialStore.release`."""

    phase: str
    trial: optuna.Trial


@dataclass(frozen=True)
class Busy:
    """A (candidate, split) that a RUNNING trial (``trial_id``, of ``phase``) has claimed:
    another driver's (``mine`` False: :meth:`TrialStore.wait` for it), or this driver's own."""

    phase: str
    trial_id: int
    mine: bool


class TrialStore:
    """Studies of one exploration in one storage, shared by every driver that opens it.

    Args:
        storage: an Optuna storage URL (``sqlite:///DIR/study.db``, ``postgresql://...``).
        settings: the settings that define the exploration (JSON-able); checked on resume.
        name: the study name (prefix of the per-phase studies).
        heartbeat_interval, grace_period: seconds between two heartbeats of a running trial,
            and without one before the trial counts as stale (see :meth:`fail_stale`).
        sole_driver: the caller guarantees no other driver uses the study (it holds the SQLite
            study lock): RUNNING trials left by an earlier driver are failed at once, and the
            study is not re-read before each claim.
    """

    def __init__(
        self,
        storage: str,
        settings: dict,
        name: str = DEFAULT_STUDY,
        *,
        heartbeat_interval: int = HEARTBEAT_SECONDS,
        grace_period: int = GRACE_SECONDS,
        sole_driver: bool = False,
    ) -> None:
        if not name or "/" in name:
            raise UserError(f"--study-name must be a non-empty name without '/'; got {name!r}")
        self.prefix = name + "/"
        self.url = storage
        self.storage = open_storage(storage, heartbeat_interval, grace_period)
        self.heartbeat = Heartbeat(self.storage, heartbeat_interval)
        self.settings = json.loads(json.dumps(settings))
        self.sole_driver = sole_driver
        self.driver = f"{socket.gethostname()}:{os.getpid()}"  # recorded with each trial
        self._lock = ClaimLock(storage, name)
        self._studies: dict[str, optuna.Study] = {}
        self._by_key: dict[tuple[str, str], Record] = {}
        self._seen: set[int] = set()  # ids of the finished trials indexed in _by_key
        self._open: dict[int, tuple[Claim, tuple[str, str] | None]] = {}  # this driver's RUNNING
        self._others: dict[tuple[str, str], tuple[str, int]] = {}  # (key, split) -> (phase, id)
        with self._lock.held():
            self._check_settings()
        if sole_driver:
            self._fail_running()
        self._refresh()

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

            def shown(values: dict) -> str:
                return f"{k}={values[k]!r}" if k in values else f"{k} not set"

            raise UserError(
                f"the study in {self.url} was made with {shown(stored)} but this run has "
                f"{shown(self.settings)}"
                + (f" (and {len(differ) - 1} more settings differ)" if len(differ) > 1 else "")
                + ": rerun with the same settings to resume, or use another --log_file/--storage"
            )

    def study(self, phase: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
        """The (created or loaded) study of ``phase``; a given sampler replaces the cached one."""
        if phase not in self._studies or sampler is not None:
            study = optuna.create_study(
                storage=self.storage,
                study_name=self.prefix + phase,
                directions=list(DIRECTIONS),
                sampler=sampler or optuna.samplers.RandomSampler(seed=0),
                load_if_exists=True,
            )
            if study.metric_names is None:  # the values' names, shown by optuna-dashboard
                with warnings.catch_warnings():  # experimental since Optuna 3.2
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(list(METRIC_NAMES))
            self._studies[phase] = study
        return self._studies[phase]

    def add_wall_seconds(self, seconds: float) -> float:
        """Add this run's wall time to the study's; return the total over every run of it."""
        with self._lock.held():
            study = self.study("baseline")
            total = float(study.user_attrs.get("wall_seconds", 0.0)) + seconds
            study.set_user_attr("wall_seconds", total)
        return total

    def phases(self) -> list[str]:
        names = [s.study_name for s in self.storage.get_all_studies()]
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
        self._seen.add(record.trial_id)
        key = (record.candidate.key(), record.split)
        known = self._by_key.get(key)
        if known is None or (known.stopped_early and not record.stopped_early):
            self._by_key[key] = record

    def _refresh(self) -> None:
        """Read the study: index the finished evaluations not seen yet (other drivers' too) and
        note the claims of the RUNNING trials that are not this driver's."""
        self._others = {}
        states = (TrialState.COMPLETE, TrialState.RUNNING)
        for phase in self.phases():
            for trial in self.study(phase).get_trials(deepcopy=False, states=states):
                if trial.state == TrialState.COMPLETE:
                    if trial._trial_id not in self._seen:
                        self._remember(_record(phase, trial))
                elif trial._trial_id not in self._open and "key" in trial.user_attrs:
                    claimed = (trial.user_attrs["key"], trial.user_attrs["split"])
                    self._others[claimed] = (phase, trial._trial_id)

    def _find(self, key: tuple[str, str], partial: bool) -> Record | None:
        found = self._by_key.get(key)
        if found is not None and found.stopped_early and not partial:
            return None
        return found

    def lookup(self, candidate: Candidate, split: str, *, partial: bool = False) -> Record | None:
        """A stored evaluation of the same candidate on the same split, if any (by any driver).

        One that stopped early (a certain failure, its figures over part of the split) is
        returned only with ``partial=True``: where only pass/fail matters.
        """
        if not self.sole_driver:
            self._refresh()
        return self._find((candidate.key(), split), partial)

    def claim(
        self,
        phase: str,
        candidate: Candidate,
        split: str,
        *,
        partial: bool = False,
        trial: optuna.Trial | None = None,
        params: dict | None = None,
    ) -> Record | Claim | Busy:
        """Claim the evaluation of ``candidate`` on ``split``, atomically across drivers.

        Returns the stored :class:`Record` when there is one (see :meth:`lookup` for
        ``partial``); a :class:`Busy` when a RUNNING trial already claims the pair; else a
        :class:`Claim`: ``trial`` (a trial asked from a sampler) now marks the claim, or a new
        RUNNING trial of ``phase`` with ``params`` (name -> (value, distribution)) does.
        Evaluate a claim, then :meth:`complete` it (or :meth:`release` it when lost).
        """
        key = (candidate.key(), split)
        with self._lock.held():
            if not self.sole_driver:
                self._refresh()
            found = self._find(key, partial)
            if found is not None:
                return found
            for trial_id, (claim, claimed) in self._open.items():
                if claimed == key:
                    return Busy(claim.phase, trial_id, mine=True)
            if key in self._others:
                return Busy(*self._others[key], mine=False)
            attrs = {"key": key[0], "split": split, "driver": self.driver}
            if trial is None:
                claim = self._new_trial(phase, params or {}, attrs)
            else:
                for name, value in attrs.items():
                    trial.set_user_attr(name, value)
                claim = Claim(phase, trial)
            self._open[claim.trial._trial_id] = (claim, key)
            return claim

    def _new_trial(self, phase: str, params: dict, attrs: dict) -> Claim:
        """A new RUNNING trial of ``phase`` (beating from now on)."""
        template = optuna.trial.create_trial(
            state=TrialState.RUNNING,
            params={name: value for name, (value, _) in params.items()},
            distributions={name: dist for name, (_, dist) in params.items()},
            user_attrs=attrs,
        )
        study = self.study(phase)
        trial_id = self.storage.create_new_trial(
            self.storage.get_study_id_from_name(study.study_name), template_trial=template
        )
        self.heartbeat.add(trial_id)
        return Claim(phase, optuna.Trial(study, trial_id))

    def wait(self, busy: Busy) -> None:
        """Wait until another driver's claim ``busy`` is no longer RUNNING: told, or failed
        (as stale once its driver stopped beating: the pair can be claimed again)."""
        while self.storage.get_trial(busy.trial_id).state == TrialState.RUNNING:
            if busy.mine:
                raise RuntimeError(f"waiting for this driver's own running trial {busy.trial_id}")
            time.sleep(POLL_SECONDS)
            self.fail_stale(busy.phase)

    def others_running(self, phase: str | None = None) -> list[int]:
        """Ids of the RUNNING trials (of ``phase``, or of every phase) not this driver's."""
        running = (TrialState.RUNNING,)
        return [
            t._trial_id
            for name in ([phase] if phase else self.phases())
            for t in self.study(name).get_trials(deepcopy=False, states=running)
            if t._trial_id not in self._open
        ]

    def wait_idle(self, phase: str | None = None) -> None:
        """Wait until no other driver runs a trial (of ``phase``, or of the whole study): each
        is told, or failed as stale when its driver died."""
        while self.others_running(phase):
            time.sleep(POLL_SECONDS)
            for name in [phase] if phase else self.phases():
                self.fail_stale(name)

    def fail_stale(self, phase: str) -> None:
        """Fail the RUNNING trials of ``phase`` whose driver stopped beating (Optuna's
        ``fail_stale_trials``); a live driver's trials, here or on another machine, stay."""
        with warnings.catch_warnings():  # experimental since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study(phase))

    def _fail_running(self) -> None:
        """Fail every RUNNING trial (the sole driver's: those left by an earlier, dead one)."""
        for phase in self.phases():
            running = self.study(phase).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            for trial in running:
                self.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)

    def locked(self):
        """The study's claim lock, as a context manager (held by one driver at a time)."""
        return self._lock.held()

    def ask(self, phase: str) -> optuna.Trial:
        """A new trial of ``phase`` from its sampler, beating until it is told or failed."""
        with warnings.catch_warnings():  # we beat ourselves: Study.ask need not warn about it
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
            trial = self.study(phase).ask()
        self.heartbeat.add(trial._trial_id)
        self._open[trial._trial_id] = (Claim(phase, trial), None)
        return trial

    def ask_within(self, phase: str, total: int) -> optuna.Trial | None:
        """:meth:`ask`, unless the COMPLETE and RUNNING trials of ``phase`` (every driver's)
        already number ``total`` or more: then None. Atomic across drivers."""
        states = (TrialState.COMPLETE, TrialState.RUNNING)
        with self._lock.held():
            if len(self.study(phase).get_trials(deepcopy=False, states=states)) >= total:
                return None
            return self.ask(phase)

    def release(self, claim: Claim) -> None:
        """Tell a claimed or asked trial FAIL (its evaluation was lost or interrupted): the
        pair can be claimed again. One already failed (found stale) stays as it is."""
        trial_id = claim.trial._trial_id
        self.heartbeat.discard(trial_id)
        self._open.pop(trial_id, None)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.storage.set_trial_state_values(trial_id, TrialState.FAIL)

    def release_open(self) -> None:
        """:meth:`release` every trial this driver still runs (it is stopping)."""
        for claim, _ in list(self._open.values()):
            self.release(claim)

    def close(self) -> None:
        """Fail the trials still running here, stop the heartbeat thread, close the lock."""
        self.release_open()
        self.heartbeat.close()
        self._lock.close()

    def attrs(
        self, result: EvalResult, size_bytes: float, target: float | None, reused: bool
    ) -> dict:
        return {
            "key": result.key,
            "split": result.split,
            "accuracy": result.accuracy,
            f"accuracy_{result.split}": result.accuracy,
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
            "driver": self.driver,
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
        reused: bool = False,
    ) -> Record:
        """Store a finished evaluation that was not claimed first (imports, tests);
        ``params``: name -> (value, distribution)."""
        claim = self._new_trial(phase, params or {}, {})
        self._open[claim.trial._trial_id] = (claim, None)
        return self.complete(claim, result, size_bytes=size_bytes, target=target, reused=reused)

    def complete(
        self,
        claim: Claim,
        result: EvalResult,
        *,
        size_bytes: float,
        target: float | None,
        reused: bool = False,
        confirmed: tuple[float, float] | None = None,
    ) -> Record:
        """Finish a claimed or asked trial with ``result`` (values: size, accuracy; the
        constraint ``target - accuracy`` when there is a target).

        ``confirmed`` = (accuracy, target) on the whole search split: when given, the sampler
        is told that accuracy and judged against that target (the scaled split is noisy).
        """
        trial = claim.trial
        attrs = self.attrs(result, size_bytes, target, reused)
        attrs["phase"] = claim.phase
        accuracy, target = confirmed or (result.accuracy, target)
        attrs["confirmed_accuracy"] = None if confirmed is None else accuracy
        try:
            frozen = self._tell(claim.phase, trial, attrs, size_bytes, accuracy, target)
        except optuna.exceptions.UpdateFinishedTrialError:
            # another driver failed this claim as stale while it was evaluated here (no beat
            # reached the storage for the grace period): keep the result in a trial of its own
            self.heartbeat.discard(trial._trial_id)
            self._open.pop(trial._trial_id, None)
            params = {n: (trial.params[n], trial.distributions[n]) for n in trial.params}
            trial = self._new_trial(claim.phase, params, {"driver": self.driver}).trial
            self._open[trial._trial_id] = (Claim(claim.phase, trial), None)
            frozen = self._tell(claim.phase, trial, attrs, size_bytes, accuracy, target)
        self.heartbeat.discard(trial._trial_id)
        self._open.pop(trial._trial_id, None)
        record = _record(claim.phase, frozen)
        self._remember(record)
        return record

    def _tell(
        self,
        phase: str,
        trial: optuna.Trial,
        attrs: dict,
        size_bytes: float,
        accuracy: float,
        target: float | None,
    ):
        """Write ``attrs`` and the constraint on ``trial`` and tell it (size, accuracy);
        the FrozenTrial. Raises UpdateFinishedTrialError when the trial is finished already."""
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        if target is not None:
            trial.set_constraint("accuracy", target - accuracy)
        return self.study(phase).tell(trial, [size_bytes, accuracy])


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
