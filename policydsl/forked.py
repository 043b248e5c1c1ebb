"""Worker processes forked from this one: tasks handed out as they free up, results given back in order.

For the blocks of a JSON Lines file, where a task is a few numbers and a result a few hundred bytes (the
rows themselves go through shared memory, ``shared.Slots``). concurrent.futures' ProcessPoolExecutor does
the same in general, and stays in use where fork is not available and for chunks of texts, but costs a
batch more than the work it organises: about 8 ms to import, processes forked by a thread after the
first task, two more threads and their queues in the main process, and a shutdown that waits on them.
Here the processes are forked at once, each with a pipe for its tasks and one for its results; the main
process has no thread to fork from.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import selectors
import signal
import struct
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_HEAD = struct.Struct("<Q")  # the length of each pickled message before it


_ending: list[int] = []  # processes told to end, not yet waited for (see Forked.close)
_GRACE = 10.0  # seconds a process told to end may take before it is made to


def _wait_for(pids: list[int], grace: float = _GRACE) -> None:
    """Wait for these processes to end; any still there after ``grace`` seconds is ended (SIGTERM)."""
    deadline = time.monotonic() + grace
    left = list(pids)
    while left:
        for pid in list(left):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] != 0:
                    left.remove(pid)
            except ChildProcessError:
                left.remove(pid)
        if left and time.monotonic() > deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = float("inf")
        if left:
            time.sleep(0.001)


def _wait_for_ending() -> None:
    """Wait for the processes earlier batches let end on their own."""
    pids, _ending[:] = list(_ending), []
    _wait_for(pids)


atexit.register(_wait_for_ending)


class WorkerStopped(Exception):
    """A worker process ended before its tasks were done (killed, out of memory, crashed), or could not be
    started."""

    def __init__(self, message: str = "a worker process stopped before its households were done (killed, or "
                                      "out of memory?)") -> None:
        super().__init__(message)


def _send(fd: int, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEAD.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read(fd: int, size: int) -> bytes | None:
    """``size`` bytes, or None at the end of the pipe (the other side closed it or ended)."""
    parts = []
    while size:
        part = os.read(fd, size)
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _receive(fd: int) -> tuple[bool, Any]:
    """(True, the message), or (False, None) at the end of the pipe."""
    head = _read(fd, _HEAD.size)
    body = None if head is None else _read(fd, _HEAD.unpack(head)[0])
    return (False, None) if body is None else (True, pickle.loads(body))


def _sendable(exc: BaseException) -> BaseException:
    """The exception, with the worker's traceback as a note, if it survives pickling; else one that says
    what it was."""
    with contextlib.suppress(Exception):
        exc.add_note("in a worker process:\n" + "".join(traceback.format_exception(exc)).rstrip())
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _cannot_start(exc: OSError) -> WorkerStopped:
    return WorkerStopped(f"could not start a worker process ({exc.strerror or exc}); try fewer --jobs, or --jobs 1")


def _pipe() -> tuple[int, int]:
    try:
        return os.pipe()
    except OSError as exc:  # too many open files
        raise _cannot_start(exc) from exc


_STOP = -1  # the index of a record that tells the process reading it to end
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Forked:
    """``jobs`` processes forked from this one, each running ``start()`` once and then ``run(index, *task)``
    for tasks taken from one queue as it frees up. A task is ``fields`` whole numbers (a block's offset,
    length and lines before it), so that each is one record of fixed size in a pipe that all the processes
    read: a write of fewer than PIPE_BUF bytes, and each read, is whole, so no record is split between two
    readers. No process is given a task while another waits idle. Use ``map``, then ``close`` (also
    after an error: it stops them).

    Signals (SIGINT, SIGTERM) are held while forking and until ``start()`` has run in the new process, so
    that a handler of the caller's never runs there. ``start()`` failing in a process is raised by ``map``."""

    def __init__(self, jobs: int, fields: int, start: Callable[[], None], run: Callable[..., Any]) -> None:
        _wait_for_ending()
        self.fields = fields
        self.record = struct.Struct(f"<{fields + 1}q")  # the task's index, then its numbers
        self.processes: list[tuple[int, int]] = []  # (pid, its results' pipe)
        self.tasks_in, self.tasks = _pipe()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            for _ in range(jobs):
                self.processes.append(self._fork(start, run, held))
        except BaseException:
            self.close(stop=True)
            raise
        finally:
            os.close(self.tasks_in)  # the processes' end of the queue
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _fork(self, start: Callable[[], None], run: Callable[..., Any], held: set[Any]) -> tuple[int, int]:
        results_in, results_out = _pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(results_in)
            os.close(results_out)
            raise _cannot_start(exc) from exc
        if pid == 0:  # the new process: never returns into the caller's code
            code = 1
            try:
                os.close(self.tasks)
                os.close(results_in)
                for _, results in self.processes:  # the earlier processes' pipes are not its own
                    os.close(results)
                try:
                    start()
                except Exception as exc:
                    _send(results_out, (_STOP, (False, _sendable(exc))))
                    raise
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                while True:
                    record = os.read(self.tasks_in, self.record.size)
                    if len(record) < self.record.size:  # the queue is closed (or broken: then code 1)
                        code = 0 if not record else 1
                        break
                    index, *task = self.record.unpack(record)
                    if index == _STOP:
                        code = 0
                        break
                    try:
                        result: tuple[bool, Any] = (True, run(index, *task))
                    except Exception as exc:
                        result = (False, _sendable(exc))
                    _send(results_out, (index, result))
            finally:
                os._exit(code)
        os.close(results_out)
        return pid, results_in

    def map(self, tasks: Iterable[tuple[int, ...]], ahead: int) -> Iterator[Any]:
        """``run(index, *task)``'s result for each task, in order. Task ``index`` is queued only once the
        result of task ``index - ahead`` has been given and the caller has asked for the next: at most
        ``ahead`` tasks are being worked on, waiting in the queue, or done and not yet given."""
        todo = enumerate(tasks)
        done: dict[int, tuple[bool, Any]] = {}
        given = handed = 0
        with selectors.DefaultSelector() as waiting:
            for _, results in self.processes:
                waiting.register(results, selectors.EVENT_READ)
            while True:
                for index, task in todo if handed < given + ahead else ():
                    try:
                        os.write(self.tasks, self.record.pack(index, *task))
                    except BrokenPipeError:  # not one process is left to read it
                        raise WorkerStopped() from None
                    handed += 1
                    if handed >= given + ahead:
                        break
                if given in done:
                    ok, value = done.pop(given)
                    if not ok:
                        raise value
                    given += 1
                    yield value
                    continue
                if given == handed:
                    return
                for key, _ in waiting.select():
                    more, message = _receive(key.fd)
                    if not more:
                        raise WorkerStopped()
                    index, result = message
                    if index == _STOP:  # its start() failed
                        raise result[1]
                    done[index] = result

    def close(self, stop: bool = False, wait: bool = True) -> None:
        """Tell the processes to end once the queue is empty, and wait for them (any that takes over
        _GRACE seconds is ended); ``stop``: end them now. ``wait`` False: do not wait for them (the system
        freeing their memory takes milliseconds, for nothing the caller needs): the next Forked, or this
        program's exit, waits for them."""
        if self.tasks >= 0:
            if not stop:  # a record each, not only the end of the pipe: another process forked meanwhile
                os.set_blocking(self.tasks, False)  # (not by us) may hold this end open
                with contextlib.suppress(OSError):
                    os.write(self.tasks, self.record.pack(_STOP, *[0] * self.fields)
                             * len(self.processes))
            with contextlib.suppress(OSError):
                os.close(self.tasks)
            self.tasks = -1
        for pid, results in self.processes:
            with contextlib.suppress(OSError):
                os.close(results)
            if stop:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        pids = [pid for pid, _ in self.processes]
        self.processes = []
        if wait or stop:
            _wait_for(pids)
        else:
            _ending.extend(pids)
