"""Fixed blocks of work items: the unit of sharding and of batching, so results do not depend on the launch.

A task's items are cut, per think mode and in plan order, into consecutive **blocks** of :func:`block_size` items
(the largest of the generation batch size and the metrics' ``batch_size``).  A block is the unit a process takes
(blocks ``rank, rank + world_size, ...``), and every batch is cut inside one block (inside one of its
:func:`waves` when the task chains items), from its start: the model sees
the same requests together, and each metric the same items in the same positions, whether one process runs the task
or a hundred, and whether a run is fresh or resumed.  Batched networks give results that depend (by ~1e-7) on what
else is in the batch, so this is what makes 1 and N processes give *identical* values.

Groups that must stay in one process (:meth:`~omnieval.planning.TaskPlan.together`: the turns of a multi-turn
edit, each editing the previous turn's output, and a doc's several questions) are never split across blocks.

Resuming keeps it: a batch with any item still to do is run whole (its finished items are recomputed and not
stored again), so an item's value never depends on where a kill landed.  An item that failed sits its batch out;
when it is retried, the scores its batch companions got without it are stored again
(:func:`omnieval.scoring.score`).  Changing a batch size (a task's
``generation.batch_size``, a metric's ``batch_size``) changes the blocks; only work done afterwards uses the new
ones.  Memory: a block's decoded media are all that scoring holds at once.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

from omnieval.metrics.base import Metric
from omnieval.planning import TaskPlan, WorkItem

T = TypeVar("T")
Block = tuple[WorkItem, ...]


def block_size(plan: TaskPlan, metrics: Iterable[Metric]) -> int:
    """Items per block: the largest generation or metric batch size of the task."""
    return max([max(1, plan.cfg.generation.batch_size), *(max(1, int(m.batch_size)) for m in metrics)])


def blocks(plan: TaskPlan, size: int, together: Callable[[WorkItem], Hashable] | None = None) -> list[Block]:
    """All blocks of the task: per think mode (in the order modes first appear), consecutive runs of ``size`` items.

    ``together``: items with equal ``together(item)`` must be done by one process (e.g. the turns of a multi-turn
    edit, each editing the previous output, or the questions of one doc); a block then takes whole groups, in the
    order of their first item, until it holds at least ``size`` items."""
    modes = list(dict.fromkeys(it.think for it in plan.items))
    out: list[Block] = []
    for think in modes:
        items = [it for it in plan.items if it.think == think]
        if together is None:
            out += [tuple(items[i : i + size]) for i in range(0, len(items), size)]
            continue
        groups: dict[Hashable, list[WorkItem]] = {}
        for it in items:
            groups.setdefault(together(it), []).append(it)
        block: list[WorkItem] = []
        for group in groups.values():
            block += group
            if len(block) >= size:
                out.append(tuple(block))
                block = []
        if block:
            out.append(tuple(block))
    return out


def shard(all_blocks: Sequence[Block], rank: int, world_size: int) -> list[Block]:
    """The blocks of process ``rank`` of ``world_size`` (round robin)."""
    return list(all_blocks[rank::world_size])


def waves(block: Block) -> list[list[WorkItem]]:
    """The block's items by chain depth, each in block order: wave 0 holds the items that take their input from the
    doc, wave ``k`` the items continuing an item of wave ``k - 1`` (``WorkItem.after``: multi-turn editing), so a
    wave is ready once the one before it is generated.  Fixed by the plan, never by what is stored, so batches cut
    from a wave are the same fresh, resumed or sharded.  Without chains: one wave, the block."""
    depth: dict[str, int] = {}
    out: list[list[WorkItem]] = []
    for it in block:
        d = depth[it.key] = depth.get(it.after, -1) + 1 if it.after else 0
        while len(out) <= d:
            out.append([])
        out[d].append(it)
    return out


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive batches of ``size`` from the start of ``items`` (one block's items, or one wave of them)."""
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
