"""Run candidate evaluations: in this process (tests, ``--workers 0``) or on Ray actors.

Both executors share one small interface: :meth:`submit` a task, :meth:`wait` for the next
finished one. A Ray actor holds the model, the splits and the clustered-weight cache for its
whole life (built once by a picklable ``factory`` that returns an
:class:`~weightshare.dse.evaluator.Evaluator`). An actor that dies has its task resubmitted to
a fresh actor, up to ``max_retries`` times; then the task comes back as a :class:`WorkerLost`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from weightshare.dse.evaluator import Evaluator
from weightshare.dse.space import Candidate
from weightshare.types import EvalResult, ModelDescription


class WorkerLost(RuntimeError):
    """A task whose worker died more than ``max_retries`` times."""


@dataclass(frozen=True)
class Task:
    """One evaluation to run: ``candidate`` on ``split``; ``tag`` is the caller's id;
    ``stop_below``: stop scoring once the split's top-1 is certain to stay below it."""

    tag: Hashable
    candidate: Candidate
    split: str = "search"
    stop_below: float | None = None


class LocalExecutor:
    """Evaluates in the calling process, one task per :meth:`wait` (first in, first out).

    ``capacity``: how many tasks the driver hands over at once (1: one at a time, as fits one
    process; more lets tests drive the batched paths that Ray workers take).
    """

    def __init__(self, factory: Callable[[], Evaluator], capacity: int = 1) -> None:
        self.evaluator = factory()
        self.capacity = capacity
        self._queue: collections.deque[Task] = collections.deque()

    def describe(self) -> ModelDescription:
        return self.evaluator.describe()

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def pending(self) -> int:
        return len(self._queue)

    def wait(self) -> tuple[Task, EvalResult | Exception]:
        task = self._queue.popleft()
        return task, self.evaluator.evaluate(task.candidate, task.split, task.stop_below)

    def close(self) -> None:
        self._queue.clear()


class _EvaluatorActor:
    """Ray actor body: builds the evaluator once, then scores candidates."""

    def __init__(self, factory: Callable[[], Evaluator]) -> None:
        self.evaluator = factory()

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> ModelDescription:
        return self.evaluator.describe()

    def evaluate(
        self, candidate: Candidate, split: str, stop_below: float | None = None
    ) -> EvalResult:
        import ray

        node = ray.get_runtime_context().get_node_id()
        result = self.evaluator.evaluate(candidate, split, stop_below)
        return dataclasses.replace(result, node=node)


class RayExecutor:
    """Evaluates on ``workers`` Ray actors, each reserving ``cpus_per_worker`` logical CPUs.

    Ray must already be initialised (see :func:`weightshare.dse.ray_runtime.start`).
    """

    def __init__(
        self,
        factory: Callable[[], Evaluator],
        workers: int,
        *,
        cpus_per_worker: float = 1.0,
        max_retries: int = 2,
    ) -> None:
        import ray

        self._ray = ray
        # SPREAD: on a cluster, one evaluator per node before two on one (a lost node costs least).
        self._remote = ray.remote(
            num_cpus=cpus_per_worker, max_restarts=0, scheduling_strategy="SPREAD"
        )(_EvaluatorActor)
        self._factory = factory
        self.capacity = workers
        self.max_retries = max_retries
        self._actors = [self._remote.remote(factory) for _ in range(workers)]
        self._idle = list(self._actors)
        self._queue: collections.deque[Task] = collections.deque()
        self._running: dict[object, tuple[Task, object]] = {}  # ref -> (task, actor)
        self._retries: collections.Counter = collections.Counter()
        self.replaced = 0

    def describe(self) -> ModelDescription:
        return self._call_with_retry(lambda actor: actor.describe.remote())

    def pids(self) -> list[int]:
        """Process ids of the live actors (for tests that kill one)."""
        return self._ray.get([actor.pid.remote() for actor in self._actors])

    def _call_with_retry(self, call):
        for _ in range(self.max_retries + 1):
            actor = self._idle[0]
            try:
                return self._ray.get(call(actor))
            except self._ray.exceptions.RayActorError:
                self._replace(actor)
        raise WorkerLost("every attempt to reach a worker failed")

    def _replace(self, dead) -> None:
        fresh = self._remote.remote(self._factory)
        self._actors[self._actors.index(dead)] = fresh
        if dead in self._idle:
            self._idle[self._idle.index(dead)] = fresh
        else:
            self._idle.append(fresh)
        self.replaced += 1

    def submit(self, task: Task) -> None:
        self._queue.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            task, actor = self._queue.popleft(), self._idle.pop()
            ref = actor.evaluate.remote(task.candidate, task.split, task.stop_below)
            self._running[ref] = (task, actor)

    def pending(self) -> int:
        return len(self._queue) + len(self._running)

    def wait(self) -> tuple[Task, EvalResult | Exception]:
        while True:
            self._dispatch()
            [ref], _ = self._ray.wait(list(self._running), num_returns=1)
            task, actor = self._running.pop(ref)
            try:
                result = self._ray.get(ref)
            except self._ray.exceptions.RayActorError:
                self._replace(actor)
                self._retries[task.tag] += 1
                if self._retries[task.tag] > self.max_retries:
                    return task, WorkerLost(
                        f"worker died {self._retries[task.tag]} times on {task.candidate.key()}"
                    )
                self._queue.appendleft(task)
                continue
            self._idle.append(actor)
            return task, result

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors, self._idle, self._running = [], [], {}


def run_all(executor, tasks: Iterable[Task], on_result: Callable | None = None) -> dict:
    """Submit ``tasks`` and collect tag -> result (or exception), calling ``on_result`` as each
    finishes (so callers can persist it at once)."""
    results = {}
    for task in tasks:
        executor.submit(task)
    while executor.pending():
        task, result = executor.wait()
        results[task.tag] = result
        if on_result is not None:
            on_result(task, result)
    return results
