"""Memory that a batch's main process shares with the worker processes it forks (mapped before they
fork, so that all of them see the same pages): the slots through which workers hand over their rows,
and the table of how many lines each block of a file holds."""

from __future__ import annotations

import contextlib
import mmap
import os
import time
from typing import NamedTuple


class InSlot(NamedTuple):
    """Rows a worker process left in its chunk's slot of the shared ``Slots``: which slot, how many bytes."""

    slot: int
    length: int


class Slots:
    """Memory shared with the worker processes (mapped before they fork), through which they hand over
    their rows: one slot for each chunk in flight, reused chunk after chunk. The rows are then copied once,
    by the main process into the output. Writing them to a spool file first cost as much again: every
    megabyte written into the system's file cache twice, and the file made and deleted for each chunk.
    Rows larger than a slot go the spool's way."""

    SIZE = 16 << 20  # bytes of a slot (a block of 8 MB gives about 5 MB of rows); untouched pages cost nothing

    def __init__(self, count: int, size: int | None = None) -> None:
        self.count, self.size = count, size or self.SIZE
        self.memory = mmap.mmap(-1, self.count * self.size)  # shared and anonymous: inherited by fork

    def put(self, index: int, data: bytes) -> InSlot | None:
        """Chunk ``index``'s rows into its slot (in a worker), or None when they do not fit."""
        if len(data) > self.size:
            return None
        slot = index % self.count
        self.memory[slot * self.size:slot * self.size + len(data)] = data
        return InSlot(slot, len(data))

    def view(self, rows: InSlot) -> memoryview:
        """The rows in a slot (in the main process), valid until that slot's next chunk is handed out."""
        start = rows.slot * self.size
        return memoryview(self.memory)[start:start + rows.length]

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view still held elsewhere: freed with it
            self.memory.close()


class LineCounts:
    """How many lines each block of a file holds, in memory shared with the worker processes (mapped
    before they fork): each process counts its own block's lines and adds up those of the blocks before
    it, so that the main process, which only cuts the file, need not read it. A block not counted yet
    reads -1; the process that took it, earlier from the same queue, counts it first thing."""

    def __init__(self, blocks: int) -> None:
        self.memory = mmap.mmap(-1, 8 * max(1, blocks))
        self.memory.write(b"\xff" * len(self.memory))  # -1 everywhere
        self.counts = memoryview(self.memory).cast("q")
        self.main = os.getpid()  # the process that forks the ones that count

    def before(self, index: int, lines: int) -> int:
        """Say that block ``index`` holds ``lines`` lines; the lines of the blocks before it."""
        self.counts[index] = lines
        while True:
            earlier = self.counts[:index].tolist()
            if -1 not in earlier:
                return sum(earlier)
            if os.getppid() != self.main:  # the main process is gone (killed), and the count may never come
                raise RuntimeError("the main process of the batch has ended")
            time.sleep(0.0002)

    def close(self) -> None:
        self.counts.release()
        with contextlib.suppress(BufferError):
            self.memory.close()
