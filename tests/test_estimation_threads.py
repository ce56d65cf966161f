"""`odeinfer._estimation._threads.run_in_threads`: every result handed back with its
task's index, in order on one worker; an exception raised, the tasks not yet begun
cancelled."""

import threading
import time

import pytest

from odeinfer._estimation._threads import run_in_threads


@pytest.mark.parametrize("workers", [1, 3])
def test_every_result_with_its_index(workers):
    seen = {}
    order = []

    def done(k, value):
        assert threading.current_thread() is threading.main_thread()
        seen[k] = value
        order.append(k)

    tasks = [lambda i=i: (time.sleep(0.01 * (i % 3)), i * i)[1] for i in range(10)]
    run_in_threads(tasks, workers, done)
    assert seen == {i: i * i for i in range(10)}
    if workers == 1:
        assert order == list(range(10))


@pytest.mark.parametrize("workers", [1, 2])
def test_an_exception_is_raised_and_the_rest_cancelled(workers):
    ran = []

    def failing():
        raise RuntimeError("start 0 failed")

    def slow(i):
        time.sleep(0.05)
        ran.append(i)
        return i

    tasks = [failing] + [lambda i=i: slow(i) for i in range(1, 21)]
    with pytest.raises(RuntimeError, match="start 0 failed"):
        run_in_threads(tasks, workers, lambda k, v: None)
    assert len(ran) < 20
