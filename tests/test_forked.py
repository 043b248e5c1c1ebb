"""policydsl.forked: the processes a batch forks for the blocks of a file — results in order whatever
order they finish in, a bounded queue, errors and dead processes reported, nothing left running."""

from __future__ import annotations

import os
import signal
import time

import pytest

from policydsl.forked import Forked, WorkerStopped

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="processes are forked only where fork exists")


def _started() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _slow_first(index: int, value: int, delay: int) -> tuple[int, int, int]:
    time.sleep(delay / 1000)
    return index, value * value, os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_results_come_in_order_from_every_process_and_the_processes_end():
    tasks = [(n, 40 if n % 5 == 0 else 1) for n in range(30)]  # every fifth task slow: others overtake it
    pool = Forked(3, 2, _started, _slow_first)
    pids = [pid for pid, _ in pool.processes]
    try:
        results = list(pool.map(tasks, ahead=6))
    finally:
        pool.close()
    assert [(i, square) for i, square, _ in results] == [(n, n * n) for n in range(30)]
    assert len({pid for _, _, pid in results}) == 3  # all three took tasks
    assert not any(_alive(pid) for pid in pids)  # ended and waited for: no zombie left


def test_no_more_tasks_are_handed_out_than_ahead_allows():
    pulled: list[int] = []
    given = 0
    def tasks():
        for n in range(20):
            assert n < given + 4, f"task {n} handed out before task {n - 4}'s result was taken"
            pulled.append(n)
            yield (n, 0)

    pool = Forked(2, 2, _started, _slow_first)
    try:
        for result in pool.map(tasks(), ahead=4):
            assert result[0] == given
            given += 1
    finally:
        pool.close()
    assert pulled == list(range(20))


def _fails_on_seven(index: int, value: int) -> int:
    if value == 7:
        raise ValueError("seven is not allowed")
    return value


def test_an_error_in_a_task_is_raised_at_its_turn_and_the_processes_are_stopped():
    pool = Forked(2, 1, _started, _fails_on_seven)
    pids = [pid for pid, _ in pool.processes]
    seen = []
    with pytest.raises(ValueError, match="seven is not allowed"):
        try:
            for value in pool.map(((n,) for n in range(20)), ahead=4):
                seen.append(value)
        finally:
            pool.close(stop=True)
    assert seen == list(range(7))
    assert not any(_alive(pid) for pid in pids)


def _dies_on_three(index: int, value: int) -> int:
    if value == 3:
        os._exit(9)  # as if killed: out of memory, or by someone
    return value


def test_a_process_that_dies_is_reported_not_waited_for_forever():
    pool = Forked(2, 1, _started, _dies_on_three)
    with pytest.raises(WorkerStopped):
        try:
            list(pool.map(((n,) for n in range(10)), ahead=4))
        finally:
            pool.close(stop=True)


def _forever(index: int, value: int) -> int:
    time.sleep(3600)
    return value


def test_a_caller_that_stops_early_stops_the_processes():
    pool = Forked(2, 2, _started, _slow_first)
    pids = [pid for pid, _ in pool.processes]
    results = pool.map(((n, 1) for n in range(100)), ahead=4)
    assert next(results)[1] == 0
    results.close()
    pool.close(stop=True)
    assert not any(_alive(pid) for pid in pids)
    busy = Forked(2, 1, _started, _forever)  # even in the middle of a task
    pids = [pid for pid, _ in busy.processes]
    waiting = busy.map(((n,) for n in range(4)), ahead=4)
    with pytest.raises(TimeoutError):
        signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError()))
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            next(waiting)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
    start = time.monotonic()
    busy.close(stop=True)
    assert time.monotonic() - start < 10 and not any(_alive(pid) for pid in pids)


def test_no_pipe_is_left_open():
    before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    pool = Forked(2, 2, _started, _slow_first)
    assert list(pool.map([(1, 0), (2, 0)], ahead=2))[1][1] == 4
    pool.close()
    if before is not None:
        assert set(os.listdir("/proc/self/fd")) == before


def test_processes_let_end_without_waiting_are_waited_for_by_the_next_batch():
    from policydsl import forked

    pool = Forked(2, 2, _started, _slow_first)
    pids = [pid for pid, _ in pool.processes]
    assert len(list(pool.map([(n, 0) for n in range(6)], ahead=4))) == 6
    pool.close(wait=False)
    assert set(forked._ending) <= set(pids)  # those not gone yet are remembered, not lost
    nxt = Forked(1, 2, _started, _slow_first)  # waits for them before forking again
    assert forked._ending == [] and not any(_alive(pid) for pid in pids)
    nxt.close()


def _cannot_start() -> None:
    raise ValueError("the policy could not be compiled here")


def test_a_start_that_fails_in_the_processes_is_raised_with_its_own_message():
    pool = Forked(2, 1, _cannot_start, _fails_on_seven)
    with pytest.raises(ValueError, match="could not be compiled"):
        try:
            list(pool.map([(1,), (2,)], ahead=2))
        finally:
            pool.close(stop=True)


def test_an_error_in_a_task_carries_the_worker_processes_traceback():
    pool = Forked(1, 1, _started, _fails_on_seven)
    with pytest.raises(ValueError) as caught:
        try:
            list(pool.map([(7,)], ahead=1))
        finally:
            pool.close(stop=True)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "in a worker process" in notes and "_fails_on_seven" in notes


def test_processes_end_even_if_another_process_holds_their_queue_open():
    pool = Forked(2, 2, _started, _slow_first)
    pids = [pid for pid, _ in pool.processes]
    other = os.fork()  # forked meanwhile by someone else: it holds a copy of every pipe
    if other == 0:
        time.sleep(30)
        os._exit(0)
    try:
        assert len(list(pool.map([(n, 0) for n in range(4)], ahead=4))) == 4
        start = time.monotonic()
        pool.close()  # a stop record each: they do not wait for the end of a pipe that will not come
        assert time.monotonic() - start < 5 and not any(_alive(pid) for pid in pids)
    finally:
        os.kill(other, signal.SIGKILL)
        os.waitpid(other, 0)


def test_a_process_that_cannot_be_started_is_an_error_that_says_so(monkeypatch):
    real = os.fork
    forks = []
    def fork_once() -> int:
        if forks:
            raise OSError(11, "Resource temporarily unavailable")
        pid = real()
        forks.append(pid)
        return pid

    before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    monkeypatch.setattr(os, "fork", fork_once)
    with pytest.raises(WorkerStopped, match=r"could not start a worker process \(Resource temporarily"):
        Forked(3, 2, _started, _slow_first)
    monkeypatch.setattr(os, "fork", real)
    if before is not None:
        assert set(os.listdir("/proc/self/fd")) == before  # no pipe left open
    assert forks[0] != 0 and not _alive(forks[0])  # the one that was started has been ended and waited for
