"""`run_in_threads`: independent tasks on a pool of threads, each result handed back
as it finishes, and an exception in one raised once the running ones have ended."""

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TypeVar

_T = TypeVar("_T")


def run_in_threads(
    tasks: Sequence[Callable[[], _T]],
    workers: int,
    done: Callable[[int, _T], None],
) -> None:
    """Run `tasks` on `workers` threads (in order on this thread when `workers` is
    1), calling `done(k, result)` on this thread as task `k` finishes. A compiled JAX
    program holds no GIL, so the multistart's starts overlap. An exception (or
    Ctrl-C) cancels the tasks not yet begun and is raised here once the running ones
    have finished."""
    if workers == 1:
        for k, task in enumerate(tasks):
            done(k, task())
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="multistart")
    try:
        futures = {pool.submit(task): k for k, task in enumerate(tasks)}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                error = future.exception()
                if error is not None:
                    raise error
                done(futures[future], future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
