"""Bounded closed-loop load: N client threads run numbered operations until a count or a time limit is reached."""

from __future__ import annotations

import itertools
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class Pool(Generic[T]):
    """Connections (HTTP clients, cursors, database connections) shared by the client threads of every run.

    One is created when none is free, so there are never more than the highest concurrency; all are closed at
    the end.
    """

    def __init__(self, create: Callable[[], T], close: Callable[[T], object]) -> None:
        self.create, self.close_one = create, close
        self.free: queue.LifoQueue[T] = queue.LifoQueue()
        self.every: list[T] = []
        self.lock = threading.Lock()

    @contextmanager
    def get(self) -> Iterator[T]:
        try:
            resource = self.free.get_nowait()
        except queue.Empty:
            resource = self.create()
            with self.lock:
                self.every.append(resource)
        try:
            yield resource
        finally:
            self.free.put(resource)

    def close(self) -> None:
        for resource in self.every:
            self.close_one(resource)
        self.every.clear()


@dataclass(frozen=True)
class Stats:
    """Latencies (seconds) of the operations of one run and its wall time."""

    latencies: tuple[float, ...]
    wall: float
    errors: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p95(self) -> float:
        if len(self.latencies) < 2:
            return self.p50
        return statistics.quantiles(self.latencies, n=20, method="inclusive")[18]

    @property
    def rate(self) -> float:
        """Operations per second over the run."""
        return len(self.latencies) / self.wall if self.wall > 0 else float("nan")

    @classmethod
    def joined(cls, parts: Sequence[Stats]) -> Stats:
        """One run out of its turns: the latencies together, the wall times added."""
        return cls(tuple(value for part in parts for value in part.latencies), sum(part.wall for part in parts))


def measure(
    operation: Callable[[int], object],
    *,
    concurrency: int,
    max_operations: int,
    max_seconds: float,
    warmup: int = 2,
    first: int = 0,
) -> Stats:
    """Run ``operation(first..)`` from ``concurrency`` threads; stops after ``max_operations`` or ``max_seconds``.

    ``warmup`` operations run first, sequentially, and are not counted. An operation that raises counts as an
    error and stops the run (a benchmark of failing requests would be meaningless).
    """
    for number in range(warmup):
        operation(-1 - number)
    numbers = itertools.count(first)
    lock = threading.Lock()
    deadline = time.perf_counter() + max_seconds
    failures: list[BaseException] = []

    def client() -> list[float]:
        latencies: list[float] = []
        while time.perf_counter() < deadline and not failures:
            with lock:
                number = next(numbers)
            if number >= first + max_operations:
                break
            started = time.perf_counter()
            try:
                operation(number)
            except Exception as err:
                failures.append(err)
                break
            latencies.append(time.perf_counter() - started)
        return latencies

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        runs = [pool.submit(client) for _ in range(concurrency)]
        latencies = [value for run in runs for value in run.result()]
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"operation failed: {failures[0]!r}") from failures[0]
    return Stats(tuple(latencies), wall)


def measure_in_turns(
    operations: Mapping[str, Callable[[int], object]],
    *,
    concurrency: int,
    max_operations: int,
    max_seconds: float,
    warmup: int = 2,
    rounds: int = 4,
) -> tuple[dict[str, Stats], dict[str, str]]:
    """:func:`measure` of several operations taken in turns, so that each meets the machine in the same states
    (a comparison of runs made one after the other also measures how the machine changed between them).

    Each operation gets ``max_operations`` and ``max_seconds`` in all, shared by ``rounds`` turns; the order
    rotates each round; warm-up in the first turn only; the numbers continue from turn to turn. An operation
    that fails is left out of the next turns: returns the figures of the others and the failures' messages.
    """
    names = list(operations)
    rounds = max(1, min(rounds, max_operations))
    share = -(-max_operations // rounds)
    parts: dict[str, list[Stats]] = {name: [] for name in names}
    failed: dict[str, str] = {}
    for turn in range(rounds):
        start = turn % len(names) if names else 0
        for name in names[start:] + names[:start]:
            done = sum(len(part.latencies) for part in parts[name])
            if name in failed or done >= max_operations:
                continue
            try:
                parts[name].append(
                    measure(
                        operations[name],
                        concurrency=concurrency,
                        max_operations=min(share, max_operations - done),
                        max_seconds=max_seconds / rounds,
                        warmup=warmup if turn == 0 else 0,
                        first=turn * share,
                    )
                )
            except RuntimeError as err:
                failed[name] = str(err)
    return {name: Stats.joined(parts[name]) for name in names if name not in failed and parts[name]}, failed
