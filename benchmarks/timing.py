"""Timing: ours and the floor interleaved call by call, medians over repetitions.

On a small shared machine the latency of a round trip depends on what ran just before it
(CPU caches, scheduler wake-ups). Timing ours and the floor in separate loops would flatter
whichever runs back-to-back more tightly, so each iteration runs both, alternating which
goes first, and each side's figures come from its own per-call latencies. Every figure is
the median, over ``repeats`` blocks, of that block's p50 / p99 / ops/s (ops/s = calls per
second spent in that side's calls).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Stats:
    p50_us: float
    p99_us: float
    ops_per_s: float

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 2) for key, value in asdict(self).items()}


def block_stats(latencies_ns: list[int]) -> Stats:
    ordered = sorted(latencies_ns)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return Stats(p50, p99, len(ordered) / (sum(ordered) / 1e9))


def median_stats(blocks: list[Stats]) -> Stats:
    return Stats(
        statistics.median(block.p50_us for block in blocks),
        statistics.median(block.p99_us for block in blocks),
        statistics.median(block.ops_per_s for block in blocks),
    )


@dataclass(frozen=True)
class Comparison:
    name: str
    floor_name: str
    ours: Stats
    floor: Stats

    @property
    def ratio(self) -> float:
        return self.ours.p50_us / self.floor.p50_us

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "floor": self.floor_name,
            "ours": self.ours.as_dict(),
            "floor_stats": self.floor.as_dict(),
            "p50_ratio": round(self.ratio, 3),
        }


Call = Callable[[int], object]
AsyncCall = Callable[[int], Awaitable[object]]


def compare(
    name: str,
    floor_name: str,
    ours: Call,
    floor: Call,
    *,
    count: int,
    repeats: int,
    before_block: Callable[[], object] | None = None,
) -> Comparison:
    """``repeats`` blocks of ``count`` interleaved calls; ``before_block`` runs untimed."""
    clock = time.perf_counter_ns
    ours_blocks: list[Stats] = []
    floor_blocks: list[Stats] = []
    for _ in range(repeats):
        if before_block is not None:
            before_block()
        gc.collect()
        ours_ns = [0] * count
        floor_ns = [0] * count
        for index in range(count):
            first, second = (floor, ours) if index % 2 == 0 else (ours, floor)
            start = clock()
            first(index)
            middle = clock()
            second(index)
            end = clock()
            if first is floor:
                floor_ns[index], ours_ns[index] = middle - start, end - middle
            else:
                ours_ns[index], floor_ns[index] = middle - start, end - middle
        ours_blocks.append(block_stats(ours_ns))
        floor_blocks.append(block_stats(floor_ns))
    return Comparison(name, floor_name, median_stats(ours_blocks), median_stats(floor_blocks))


async def compare_async(
    name: str,
    floor_name: str,
    ours: AsyncCall,
    floor: AsyncCall,
    *,
    count: int,
    repeats: int,
    before_block: Callable[[], Awaitable[object]] | None = None,
) -> Comparison:
    """The asyncio twin of :func:`compare`."""
    clock = time.perf_counter_ns
    ours_blocks: list[Stats] = []
    floor_blocks: list[Stats] = []
    for _ in range(repeats):
        if before_block is not None:
            await before_block()
        gc.collect()
        ours_ns = [0] * count
        floor_ns = [0] * count
        for index in range(count):
            first, second = (floor, ours) if index % 2 == 0 else (ours, floor)
            start = clock()
            await first(index)
            middle = clock()
            await second(index)
            end = clock()
            if first is floor:
                floor_ns[index], ours_ns[index] = middle - start, end - middle
            else:
                ours_ns[index], floor_ns[index] = middle - start, end - middle
        ours_blocks.append(block_stats(ours_ns))
        floor_blocks.append(block_stats(floor_ns))
    return Comparison(name, floor_name, median_stats(ours_blocks), median_stats(floor_blocks))
