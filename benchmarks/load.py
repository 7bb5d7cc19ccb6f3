"""Bounded closed-loop load: N client threads run numbered operations until a count or a time limit is reached."""

from __future__ import annotations

import itertools
import queue
import statistics
import threading
import time
from collections.abc import Callable, Iterator
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


def measure(
    operation: Callable[[int], object],
    *,
    concurrency: int,
    max_operations: int,
    max_seconds: float,
    warmup: int = 2,
) -> Stats:
    """Run ``operation(0..)`` from ``concurrency`` threads; stops after ``max_operations`` or ``max_seconds``.

    ``warmup`` operations run first, sequentially, and are not counted. An operation that raises counts as an
    error and stops the run (a benchmark of failing requests would be meaningless).
    """
    for number in range(warmup):
        operation(-1 - number)
    numbers = itertools.count()
    lock = threading.Lock()
    deadline = time.perf_counter() + max_seconds
    failures: list[BaseException] = []

    def client() -> list[float]:
        latencies: list[float] = []
        while time.perf_counter() < deadline and not failures:
            with lock:
                number = next(numbers)
            if number >= max_operations:
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
