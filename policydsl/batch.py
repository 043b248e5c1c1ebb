"""Many households at once: streaming in, one row per household out, in input order, in flat memory.

Input is JSON Lines (a file or standard input) or a folder of JSON files. A household that cannot be
read or evaluated becomes an error row naming it (line number or file) and the problem with its JSON
path; it never stops the run. Rows are produced in chunks, optionally by several processes.

Each chunk goes first through the compiled path (``batch_read`` + ``batch_eval``: columns, exact
integers), which answers for every household it can answer completely; the reference reader and
evaluator answer for the rest (missing facts, errors, warnings), so every row is what
``policy eval`` gives for that household alone.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import json
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import IO, Any, NamedTuple

from .checker import CheckedPolicy
from .diagnostics import HouseholdError, PolicyDslError, UsageError
from .evaluator import Evaluator
from .household import MAX_ID_DIGITS, BadNumber, load_json, read_household
from .household import _kind as describe
from .shared import InSlot, LineCounts, Slots


@cache
def _encoder() -> Any:
    """msgspec's JSON encoder: the same bytes as json.dumps(ensure_ascii=False), compact, far quicker.
    Imported when rows are first written: one household's start-up does not pay for it."""
    import msgspec

    return msgspec.json.Encoder()

CHUNK = 2000  # households handed to a worker at a time; bounds memory whatever the input size
IN_FLIGHT = 2  # chunks handed to each worker process at a time: one to work on, one waiting
CSV_COLUMNS = ["source", "id", "eligible", "primary_category", "categories", "measures", "status",
               "undetermined", "missing", "error", "warnings"]  # the policy's reported values follow 'status'


def csv_columns(report: list[str]) -> list[str]:
    """The CSV header for a policy: its reported values (e.g. per_capita_income) after 'status'."""
    return [*CSV_COLUMNS[:7], *report, *CSV_COLUMNS[7:]]


def household_id(value: Any) -> str | int | None:
    """A household's ``id`` as rows carry it: a text, or a whole number of up to 40 digits (an ID-card
    number is one); None for anything else."""
    if isinstance(value, str) or (type(value) is int):
        return value
    if isinstance(value, BadNumber) and re.fullmatch(rf"-?\d{{1,{MAX_ID_DIGITS}}}", value.literal):
        return int(value.literal)
    return None


class Item(NamedTuple):
    """One household to evaluate: where it came from (``line 7`` or a file name), its JSON text, and how
    many bytes of the input it took (for a progress bar). A tuple: batches make millions of them."""

    source: str
    text: str
    size: int = 0
    problem: str | None = None  # why the household could not even be read (not UTF-8, an unreadable file)


def items_from_lines(stream: IO[bytes], head: Iterable[bytes] = (), before: int = 0) -> Iterator[Item]:
    """JSON Lines from a binary stream: one household per non-empty line, named by its line number.

    ``head`` holds the lines already read from the stream (standard input is sniffed that way); ``before``
    is the number of lines that came before the stream (a block of a file)."""
    number = before
    block: list[bytes] = list(head)
    while True:
        for raw in block:
            number += 1
            if raw.isspace() or not raw:
                continue
            try:
                text, problem = raw.decode("utf-8-sig" if number == 1 else "utf-8"), None
            except UnicodeDecodeError:
                text, problem = "", NOT_UTF8
            yield Item(f"line {number}", text.rstrip("\r\n"), len(raw), problem)
        block = stream.readlines(1 << 20)  # about a megabyte of lines at a time: far quicker than line by line
        if not block:
            return


class JsonlFile:
    """A JSON Lines file: its items, read line by line, or blocks of whole lines that worker processes
    read themselves (so that the main process does not read, decode and send every line)."""

    BLOCK = 1 << 23  # bytes at most: about 10,000 households (bigger chunks share numpy's fixed costs)
    SMALLEST = 2 << 20  # bytes at least: each block has fixed costs (about 4 ms)
    PER_PROCESS = 16 << 20  # bytes (about 20,000 households) for each process: a smaller file needs fewer

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[Item]:
        with open(self.path, "rb") as stream:
            yield from items_from_lines(stream)

    def cuts(self, jobs: int = 1, largest: int | None = None, total: int | None = None) -> Iterator[tuple[int, int]]:
        """(offset, length) of each block of the file's first ``total`` bytes (its size now, unless given),
        cut after a newline, for ``jobs`` processes. A block is a share of what remains (between SMALLEST
        and ``largest``, BLOCK unless given), so blocks shrink towards the end and the processes finish
        together. Only the line each cut falls in is read."""
        largest = largest or self.BLOCK
        offset = 0
        with reading(self.path), open(self.path, "rb") as stream:  # (errors of the caller never come in here)
            total = os.fstat(stream.fileno()).st_size if total is None else total
            while offset < total:
                end = offset + min(largest, max(self.SMALLEST, (total - offset) // jobs))
                end = total if end >= total else _line_end(stream, end, total)
                yield offset, end - offset
                offset = end

    def most_blocks(self, largest: int | None = None, total: int | None = None) -> int:
        """At most how many blocks ``cuts`` gives: all but the last hold at least its smallest size."""
        total = self.path.stat().st_size if total is None else total
        return total // max(1, min(largest or self.BLOCK, self.SMALLEST)) + 1

    def blocks(self, jobs: int = 1, largest: int | None = None) -> Iterator[tuple[int, int, int]]:
        """``cuts`` with the lines before each block, counted here (read into one reused buffer)."""
        lines = 0
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        with reading(self.path), open(self.path, "rb") as stream:
            for offset, length in self.cuts(jobs, largest):
                yield offset, length, lines
                stream.seek(offset)
                while length > 0:
                    size = stream.readinto(view[:min(length, len(buffer))])
                    if not size:
                        break
                    lines += _newlines(buffer, size)
                    length -= size

    def block_data(self) -> Iterator[tuple[bytes, bytes, int]]:
        """(bytes, the rest of its last line, lines before it) of each block: ``block_lines(*block)``
        reads them without joining the two (which would copy megabytes for a few hundred bytes)."""
        lines = 0
        with reading(self.path), open(self.path, "rb") as stream:
            while True:
                data = stream.read(self.BLOCK)
                if not data:
                    return
                rest = stream.readline()  # to the end of the line
                yield data, rest, lines
                lines += _newlines(data, len(data)) + rest.count(b"\n")


def _line_end(stream: IO[bytes], at: int, total: int) -> int:
    """Where the line holding byte ``at`` ends (just after its newline), at most ``total``."""
    stream.seek(at)
    return min(at + len(stream.readline()), total)


def _newlines(data: bytes | bytearray, size: int) -> int:
    """How many newlines the first ``size`` bytes hold (numpy counts five times faster than bytes.count)."""
    import numpy as np  # only batches come here: one household's start-up stays free of it

    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8, count=size) == 10))


_BLANK = b" \t\n\r\x0b\x0c"  # what bytes.isspace() calls space: a line of only these is skipped
NOT_UTF8 = "is not UTF-8 text; save the file as UTF-8"


def block_lines(data: bytes, rest: bytes, before: int) -> tuple[list[str], list[bytes], dict[int, str]]:
    """The households of a block of whole lines (``data`` then ``rest``, the end of its last line) as
    (sources, texts, problems by position), as ``items_from_lines`` gives them but with each text still
    in bytes: the compiled path reads UTF-8 bytes as they are, and only a household it hands to the
    reference is decoded (``as_text``)."""
    lines = data.split(b"\n")
    if rest:
        lines[-1] += rest.removesuffix(b"\n")
        if rest.endswith(b"\n"):
            lines.append(b"")
    if lines[-1] == b"":
        lines.pop()  # the block ends with a newline
    numbered = [(number, line) for number, line in enumerate(lines, before + 1) if line.strip(_BLANK)]
    texts = [line.rstrip(b"\r\n") for _, line in numbered]
    if before == 0 and numbered and numbered[0][0] == 1:
        texts[0] = texts[0].removeprefix(b"\xef\xbb\xbf")  # as decoding the first line with utf-8-sig
    return [f"line {number}" for number, _ in numbered], texts, {}


def as_text(text: str | bytes, problem: str | None) -> tuple[str, str | None]:
    """A household's text as str, and why it could not be read (not UTF-8) if so."""
    if isinstance(text, str):
        return text, problem
    try:
        return text.decode("utf-8"), problem
    except UnicodeDecodeError:
        return "", NOT_UTF8


def _read_block(path: Path, offset: int, length: int) -> bytes:
    with reading(path), open(path, "rb") as stream:
        stream.seek(offset)
        return stream.read(length)


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """A file of households that cannot be read (removed or made unreadable during the batch, a disk
    error) is a usage error that says so, not an error about writing the rows."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def items_from_folder(folder: Path) -> Iterator[Item]:
    """Every *.json file of a folder, in name order, named by its file name."""
    def natural(path: Path) -> tuple[list[Any], str]:  # h2 before h10; H02 and h2 in a fixed order
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name.lower())], path.name

    for path in sorted((p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file()), key=natural):
        # a name that is not UTF-8 (a byte 0xff) is shown with the byte escaped: rows must be writable text
        name = os.fsencode(path.name).decode("utf-8", "backslashreplace")
        try:
            yield Item(name, path.read_text(encoding="utf-8-sig"), 1)
        except UnicodeDecodeError:
            yield Item(name, "", 1, "is not UTF-8 text; save it as UTF-8")
        except OSError as exc:
            yield Item(name, "", 1, f"cannot read it ({exc.strerror})")


@dataclass
class Summary:
    """What a batch found: counted as rows are written."""

    total: int = 0
    eligible: int = 0
    not_eligible: int = 0
    undetermined: int = 0
    invalid: int = 0
    warned: int = 0
    primary: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Summary) -> None:
        for name in ("total", "eligible", "not_eligible", "undetermined", "invalid", "warned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.primary.update(other.primary)
        self.categories.update(other.categories)

    def add(self, row: dict[str, Any]) -> None:
        if "error" in row:
            self.total += 1
            self.invalid += 1
            self.warned += "warnings" in row
            return
        self.count(row["eligible"], row["primary_category"], row["categories"], "warnings" in row)

    def count(self, eligible: bool | None, primary: str | None, categories: Sequence[str], warned: bool,
              households: int = 1) -> None:
        """Households that were evaluated, alike in what is counted."""
        self.total += households
        self.warned += warned * households
        if eligible is True:
            self.eligible += households
        elif eligible is False:
            self.not_eligible += households
        else:
            self.undetermined += households
        if primary:
            self.primary[primary] += households
        for category in categories:
            self.categories[category] += households

    def render(self) -> str:
        lines = [f"{self.total} households: {self.eligible} eligible, {self.not_eligible} not eligible, "
                 f"{self.undetermined} undetermined, {self.invalid} invalid"
                 + (f"; {self.warned} with warnings (see their rows)" if self.warned else "")]
        for name in sorted(self.categories):
            lines.append(f"  {name}: {self.categories[name]} (primary for {self.primary[name]})")
        return "\n".join(lines)


class Worker:
    """Evaluates items with one compiled policy; lives once per process.

    ``compiled`` False uses only the reference path (for comparing the two, and for measuring)."""

    def __init__(self, policy: CheckedPolicy, as_of: date | None, compiled: bool = True) -> None:
        self.policy = policy
        self.evaluator = Evaluator(policy)
        self.as_of = as_of
        self.inputs = {i.name for i in policy.policy.inputs}
        self.fast = None
        self.why_reference: str | None = None  # why a compiled Worker's batches still run on the reference
        if compiled:
            from .batch_eval import compiled_or_why
            self.fast, self.why_reference = compiled_or_why(policy)

    def hold_memory(self) -> None:
        """Keep the memory this process frees for its next chunk (``_fastread.hold_memory``): for a process
        that does nothing but batches (a worker, the ``policy`` command), never for a library's caller."""
        if self.fast is not None and self.fast.reader.native is not None:
            from .batch_read import _fastread

            _fastread.hold_memory()

    def block_lines(self, data: bytes, rest: bytes, before: int) -> tuple[Sequence[str], Sequence[bytes],
                                                                          dict[int, str]]:
        """``block_lines``, split by the native reader when this Worker reads with it: the texts then stay
        spans of the block (a copy of it, when ``rest`` must be joined to its last line)."""
        if self.fast is not None and self.fast.reader.native is not None:
            from .batch_read import split_lines

            split = split_lines(data + rest if rest else data, before)
            if split is not None:
                return (*split, {})
        return block_lines(data, rest, before)

    def row(self, item: Item) -> dict[str, Any]:
        head: dict[str, Any] = {"source": item.source}
        if item.problem is not None:
            return {**head, "error": {"path": "", "message": item.problem,
                                      "problems": [{"path": "", "message": item.problem}]}}
        id_warning: list[str] = []
        try:
            doc = load_json(item.text, item.source)
            if isinstance(doc, dict) and "id" not in self.inputs and doc.get("id") is not None:
                ident = household_id(doc["id"])
                if ident is None:
                    id_warning.append(f"id: expected a text or a whole number, got {describe(doc['id'])}; "
                                      "the row carries no id")
                else:
                    head["id"] = ident
            household = read_household(self.policy, doc, item.source)
            result = self.evaluator.evaluate(household, self.as_of)
        except HouseholdError as exc:
            first = exc.problems[0]
            return {**head, "error": {"path": first.path, "message": first.message,
                                      "problems": [{"path": p.path, "message": p.message} for p in exc.problems]}}
        except PolicyDslError as exc:
            message = str(exc).removeprefix("error: ")
            return {**head, "error": {"path": "", "message": message, "problems": [{"path": "", "message": message}]}}
        row = {**head, **result.to_json()}
        if result.warnings or id_warning:
            row["warnings"] = [*id_warning, *result.warnings]
        return row

    def rows(self, items: list[Item]) -> list[dict[str, Any]]:
        """One row per item, in order: from the compiled path where it answers, else from the reference."""
        if self.fast is None or not items:
            return [self.row(item) for item in items]
        answers = self.fast.rows([i.text for i in items], [i.source for i in items], self.as_of)
        return [row if row is not None else self.row(item) for row, item in zip(answers, items, strict=True)]

    def render(self, items: list[Item], fmt: str) -> tuple[bytes, Summary]:
        """The rows of a chunk written out as UTF-8 (JSON Lines or CSV, without the header), and what
        they hold."""
        return self.render_lists([i.source for i in items], [i.text for i in items],
                                 {n: i.problem for n, i in enumerate(items) if i.problem is not None}, fmt)

    def render_lists(self, sources: Sequence[str], texts: Sequence[str | bytes], problems: dict[int, str],
                     fmt: str) -> tuple[bytes, Summary]:
        """``render`` of a chunk given as lists: the sources, the texts (str, or UTF-8 bytes as
        ``block_lines`` gives them), why some could not be read."""
        summary = Summary()
        if fmt == "jsonl" and self.fast is not None and texts:  # rows written straight as text
            lines = self.fast.lines(texts, sources, self.as_of)
            for households, eligible, primary, categories in lines.groups:
                summary.count(eligible, primary, categories, False, households)
            summary.warned += lines.warned
            for at in [at for at, text in enumerate(lines.texts) if text is None]:
                text, problem = as_text(texts[at], problems.get(at))
                row = self.row(Item(sources[at], text, 0, problem))
                summary.add(row)
                lines.put(at, jsonl_line(row))
            return lines.encode(), summary
        items = []
        for n, (source, raw) in enumerate(zip(sources, texts, strict=True)):
            text, problem = as_text(raw, problems.get(n))
            items.append(Item(source, text, 0, problem))
        rows = self.rows(items)
        for row in rows:
            summary.add(row)
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows(csv_row(row, self.policy.report) for row in rows)
            return out.getvalue().encode("utf-8"), summary
        return _encoder().encode_lines(rows), summary


_worker: Worker | None = None


def _start(policy_file: str, as_of: date | None, compiled: bool) -> None:
    """A worker process's set-up. Forked, it already holds the parent's compiled Worker; started afresh
    (where fork is not available), it reads and compiles the policy itself: compiled closures cannot be
    sent between processes."""
    global _worker
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the main process answers it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the main process's handler, inherited by fork
    if _worker is None:
        from . import load_policy
        _worker = Worker(load_policy(policy_file), as_of, compiled)
    _worker.hold_memory()
    _fewer_collections()


def _fewer_collections() -> None:
    """Batches allocate millions of short-lived rows, none in cycles: with Python's default thresholds the
    cyclic garbage collector ran so often that it took a third of the time. Collect far less often, and
    never re-scan what exists once the policy is compiled."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@contextlib.contextmanager
def collecting_less() -> Iterator[None]:
    """``_fewer_collections`` for the duration of an in-process batch, then the caller's settings again."""
    before = gc.get_threshold()
    _fewer_collections()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _items(sources: list[str], texts: list[str], problems: dict[int, str]) -> list[Item]:
    return [Item(source, text, 0, problems.get(i)) for i, (source, text) in enumerate(zip(sources, texts, strict=True))]


def _chunk(sources: list[str], texts: list[str], problems: dict[int, str], size: int,
           index: int = 0) -> list[dict[str, Any]]:
    assert _worker is not None
    return _worker.rows(_items(sources, texts, problems))


class Spooled(NamedTuple):
    """Rows a worker process wrote to a file of its own, for the main process to copy to the output
    (in the kernel where it can: the rows never pass through a pipe or the main process's memory).
    The file is deleted when ``render_all`` is asked for the next chunk."""

    path: str

    def read(self) -> bytes:
        return Path(self.path).read_bytes()

    def write_to(self, buffer: IO[bytes]) -> None:
        """Appends the rows to a binary stream (flushed first, so that the order holds)."""
        buffer.flush()
        with open(self.path, "rb") as rows:
            size = os.fstat(rows.fileno()).st_size
            copy = getattr(os, "copy_file_range", None)  # Linux: file to file; elsewhere sendfile, also to a pipe
            try:
                target = buffer.fileno()
                while size > 0:
                    sent = copy(rows.fileno(), target, size) if copy else os.sendfile(target, rows.fileno(), None, size)
                    if sent <= 0:
                        break
                    size -= sent
            except (OSError, AttributeError, io.UnsupportedOperation):
                pass  # no such call here, or not between these two: copied below, from where it stopped
            if size > 0:
                rows.seek(-size, os.SEEK_END)
                shutil.copyfileobj(rows, buffer)


_slots: Slots | None = None  # in the main process while its workers run, and inherited by them


_counts: LineCounts | None = None  # likewise, for a file's blocks


def _spill(rendered: tuple[bytes, Summary], size: int, spool: str | None,
           index: int = 0) -> tuple[bytes | Spooled | InSlot, Summary, int]:
    """A chunk's rows: in its slot of the shared ``_slots`` if there are slots and they fit, else in a
    file of ``spool`` when there is one, else as they are (sent through the pipe)."""
    data, summary = rendered
    if _slots is not None:
        shared = _slots.put(index, data)
        if shared is not None:
            return shared, summary, size
    if spool is None:
        return data, summary, size
    name = None
    try:
        fd, name = tempfile.mkstemp(dir=spool, suffix=".jsonl")
        with os.fdopen(fd, "wb") as rows:
            rows.write(data)
    except OSError:  # the temporary folder is full or gone: the rows go the slower way, through the pipe
        if name is not None:
            with contextlib.suppress(OSError):
                os.unlink(name)
        return data, summary, size
    return Spooled(name), summary, size


def _render(sources: list[str], texts: list[str], problems: dict[int, str], size: int,
            fmt: str, spool: str | None, index: int = 0) -> tuple[bytes | Spooled | InSlot, Summary, int]:
    assert _worker is not None
    return _spill(_worker.render_lists(sources, texts, problems, fmt), size, spool, index)


def _render_block(path: Path, offset: int, length: int, before: int, fmt: str,
                  spool: str | None, index: int = 0) -> tuple[bytes | Spooled | InSlot, Summary, int]:
    """A block's rows; ``before`` -1: the lines before it from the shared ``_counts``."""
    assert _worker is not None
    data = _read_block(path, offset, length)
    if before < 0:
        assert _counts is not None
        before = _counts.before(index, _newlines(data, len(data)))
    return _spill(_worker.render_lists(*_worker.block_lines(data, b"", before), fmt), length, spool, index)


def chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _parallel(worker: Worker, items: Iterable[Item], jobs: int, task: Any, *extra: Any) -> Iterator[Any]:
    """``task(sources, texts, problems, size, *extra, index)`` for each chunk (the ``index``-th) in ``jobs``
    processes, in input order, at most IN_FLIGHT chunks per process in flight (so memory stays flat however
    many households there are): chunk ``index`` is handed out only once chunk ``index - IN_FLIGHT * jobs``
    has been taken from here and the caller has asked for the next."""
    global _worker
    fork = _can_fork()
    _worker = worker if fork else None  # forked processes inherit it, compiled, instead of compiling again
    policy_file = worker.policy.policy.header.span.file
    start = (policy_file, worker.as_of, worker.fast is not None)
    work: Iterator[tuple[Any, ...]]
    try:
        if isinstance(items, JsonlFile) and task is _render:  # each process reads its own blocks of the file
            # the msgspec reader holds every household as objects: half the block keeps its processes as small
            largest = JsonlFile.BLOCK if worker.fast is not None and worker.fast.reader.native is not None else \
                JsonlFile.BLOCK // 2
            if fork:  # tasks of two numbers: processes of our own, without the executor's costs
                yield from _forked(items, jobs, largest, start, *extra)
                return
            task, work = _render_block, ((items.path, *block) for block in items.blocks(jobs, largest))
        else:  # chunks as two lists of texts: far quicker to send than Items
            work = (([i.source for i in chunk], [i.text for i in chunk],
                     {n: i.problem for n, i in enumerate(chunk) if i.problem is not None},
                     sum(i.size for i in chunk))
                    for chunk in chunks(items, CHUNK))
        yield from _executor(jobs, fork, start, task, work, extra)
    finally:
        _worker = None


def _forked(items: JsonlFile, jobs: int, largest: int, start: tuple[Any, ...], fmt: str,
            spool: str | None) -> Iterator[Any]:
    """``_parallel`` over the blocks of a file, in processes forked here (``forked.Forked``), which count
    the lines of their blocks themselves (``LineCounts``): the file as it is now, whatever is added later."""
    from .forked import Forked

    global _counts
    total = items.path.stat().st_size
    path = items.path

    def block(index: int, offset: int, length: int) -> Any:
        return _render_block(path, offset, length, -1, fmt, spool, index)

    _counts = counts = LineCounts(items.most_blocks(largest, total))
    try:
        pool = Forked(jobs, 2, lambda: _start(*start), block)
        try:
            yield from pool.map(items.cuts(jobs, largest, total), IN_FLIGHT * jobs)
            pool.close(wait=False)
        finally:
            pool.close(stop=True)
    finally:
        _counts = None
        counts.close()


def _can_fork() -> bool:
    return hasattr(os, "fork") and hasattr(os, "register_at_fork")  # POSIX (multiprocessing's "fork" method)


def _executor(jobs: int, fork: bool, start: tuple[Any, ...], task: Any, work: Iterator[tuple[Any, ...]],
              extra: tuple[Any, ...]) -> Iterator[Any]:
    """``_parallel`` through concurrent.futures: for chunks of texts, and where processes cannot be forked."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor  # only for batches: keeps one-household start-up fast
    from concurrent.futures.process import BrokenProcessPool

    from .forked import WorkerStopped

    context = multiprocessing.get_context("fork" if fork else None)
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start, initargs=start) as pool:
            pending = []
            for index, args in enumerate(work):
                pending.append(pool.submit(task, *(*args, *extra, index)))
                if len(pending) >= IN_FLIGHT * jobs:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()
    except BrokenProcessPool as exc:
        raise WorkerStopped() from exc


def evaluate_all(policy: CheckedPolicy, items: Iterable[Item], as_of: date | None = None,
                 jobs: int = 1) -> Iterator[dict[str, Any]]:
    """Rows in input order, evaluated in ``jobs`` processes."""
    worker = Worker(policy, as_of)
    if jobs <= 1:
        with collecting_less():
            for chunk in chunks(items, CHUNK):
                yield from worker.rows(chunk)
        return
    with _one_batch_at_a_time():
        for rows in _parallel(worker, items, jobs, _chunk):
            yield from rows


def render_all(policy: CheckedPolicy, items: Iterable[Item], fmt: str, as_of: date | None = None,
               jobs: int = 1, compiled: bool = True, spool: str | None = None,
               worker: Worker | None = None,
               views: bool = False) -> Iterator[tuple[bytes | memoryview | Spooled, Summary, int]]:
    """Like ``evaluate_all``, but each chunk comes written out as UTF-8 (by the process that evaluated
    it) with its summary and the bytes of input it took: the fast way to a file. Given a ``JsonlFile``,
    the processes read their blocks of it themselves. With several processes, each hands its rows over
    in memory shared with them (where processes are forked), or in a file in a temporary folder made in
    ``spool`` (default: the system's), given as ``Spooled``: write them out (``Writer.write_rows``)
    before asking for the next chunk, which deletes the file. ``views``: rows in shared memory come as a
    ``memoryview`` of it instead of a copy, lent until the next chunk is asked for: the view is then
    released and the memory reused (a slice of it or an array over it kept longer would see other rows).
    ``worker``: the Worker to use, if one is made already (for this policy, date and engine)."""
    if fmt not in ("jsonl", "csv"):
        raise UsageError(f"many households are written as jsonl or csv, not {fmt}")
    worker = worker or Worker(policy, as_of, compiled)
    if isinstance(items, JsonlFile):  # starting a process costs more than it saves on a small file
        per_process = JsonlFile.PER_PROCESS if worker.fast is not None else JsonlFile.PER_PROCESS // 16  # 20x slower
        jobs = min(jobs, max(1, items.path.stat().st_size // max(1, per_process)))
    if jobs <= 1 and isinstance(items, JsonlFile):  # a block of lines at a time, as the processes of --jobs do
        with collecting_less():
            for data, rest, before in items.block_data():
                yield (*worker.render_lists(*worker.block_lines(data, rest, before), fmt), len(data) + len(rest))
        return
    if jobs <= 1:
        with collecting_less():
            for chunk in chunks(items, CHUNK):
                yield (*worker.render(chunk, fmt), sum(i.size for i in chunk))
        return
    with _one_batch_at_a_time():
        yield from _render_parallel(worker, items, fmt, jobs, spool, views)


def _render_parallel(worker: Worker, items: Iterable[Item], fmt: str, jobs: int, spool: str | None,
                     views: bool) -> Iterator[tuple[bytes | memoryview | Spooled, Summary, int]]:
    global _slots
    try:
        folder = tempfile.mkdtemp(prefix="policydsl-rows-", dir=spool)
    except OSError:  # the output's folder takes no more files: the system's temporary folder, then
        folder = tempfile.mkdtemp(prefix="policydsl-rows-")
    _slots = None
    if _can_fork():
        with contextlib.suppress(OSError, ValueError, OverflowError):  # no shared memory to be had: spool files
            _slots = Slots(IN_FLIGHT * jobs)
    slots = _slots
    try:
        for rows, summary, size in _parallel(worker, items, jobs, _render, fmt, folder):
            if isinstance(rows, InSlot):
                assert slots is not None
                view = slots.view(rows)
                yield view if views else bytes(view), summary, size
                with contextlib.suppress(BufferError):  # an export of it still held: the caller was told
                    view.release()
                continue
            yield rows, summary, size
            if isinstance(rows, Spooled):
                os.unlink(rows.path)
    finally:
        _slots = None
        if slots is not None:
            slots.close()
        shutil.rmtree(folder, ignore_errors=True)


_batch_lock = threading.Lock()
_batch_thread: int | None = None  # the thread whose batch holds the lock


@contextlib.contextmanager
def _one_batch_at_a_time() -> Iterator[None]:
    """A batch with worker processes holds this process's state for them (the compiled Worker, the
    shared memory, the forked processes and their pipes, which a process forked for another batch would
    inherit): batches in other threads wait for it to end. Two in one thread, taken turn about, would
    wait for each other forever: that is refused."""
    global _batch_thread
    me = threading.get_ident()
    if _batch_thread == me:
        raise UsageError("a batch with several processes is already running in this thread: finish it (or "
                         "close its iterator) before starting another, or use jobs=1")
    with _batch_lock:
        _batch_thread = me
        try:
            yield
        finally:
            _batch_thread = None


# ---------------------------------------------------------------- writing rows


def jsonl_line(row: dict[str, Any]) -> str:
    """One row as a line of JSON (the same bytes as ``json.dumps(row, ensure_ascii=False)``, compact)."""
    return _encoder().encode(row).decode("utf-8") + "\n"


def csv_row(row: dict[str, Any], report: list[str]) -> list[str]:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ";".join(value)
        return str(value)

    if "error" in row:
        problems = row["error"].get("problems") or [row["error"]]  # every problem, as the JSON row has them
        text = " | ".join(f"{p['path']}: {p['message']}" if p["path"] else p["message"] for p in problems)
        return [row["source"], cell(row.get("id")), "", "", "", "", "", *("" for _ in report), "", "", text, ""]
    return [row["source"], cell(row.get("id")), cell(row["eligible"]), cell(row["primary_category"]),
            cell(row["categories"]), cell(row["measures"]), cell(row["status"]),
            *(row["values"].get(name, "") for name in report), cell(row["undetermined"]), cell(row["missing"]),
            "", " | ".join(row.get("warnings", []))]


class Writer:
    """Writes rows as JSON Lines or CSV to a text stream."""

    def __init__(self, out: IO[str], fmt: str, report: list[str] | None = None) -> None:
        if fmt not in ("jsonl", "csv"):
            raise UsageError(f"many households are written as jsonl or csv, not {fmt}")
        self.out = out
        self.report = list(report or [])
        self.csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(csv_columns(self.report))

    def write(self, row: dict[str, Any]) -> None:
        if self.csv is not None:
            self.csv.writerow(csv_row(row, self.report))
        else:
            self.out.write(jsonl_line(row))

    def write_rows(self, rows: bytes | memoryview | Spooled) -> None:
        """Rows already written out as UTF-8 (``render_all``), straight to the stream's bytes."""
        buffer = getattr(self.out, "buffer", None)
        if buffer is None:
            self.out.write(str(rows.read() if isinstance(rows, Spooled) else rows, "utf-8"))
            return
        self.out.flush()
        if isinstance(rows, Spooled):
            rows.write_to(buffer)
            return
        view = memoryview(rows)
        for start in range(0, len(view), 1 << 20):  # in pieces: a reader that has gone (| head) shows at once
            buffer.write(view[start:start + (1 << 20)])


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def whole_object(line: bytes) -> bool:
    """Whether one line is a complete JSON object (so that standard input is read as JSON Lines)."""
    try:
        return isinstance(json.loads(line.decode("utf-8-sig")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False


__all__ = ["CSV_COLUMNS", "Item", "JsonlFile", "Spooled", "Summary", "Worker", "Writer", "default_jobs", "evaluate_all",
           "items_from_folder", "items_from_lines", "render_all", "whole_object"]
