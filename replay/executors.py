"""Executors: where a replay's chunks are evaluated.

An executor maps a picklable function over picklable tasks and yields ``(index, result)``
pairs as tasks finish (completion order; ``index`` is the task's position in the input).
Tasks carry the database PATH, never a connection: workers open the store read-only and
return rows; the caller (the single writer) stores them.

- ``SerialExecutor``: in this process, in order (debugging, tiny runs).
- ``LocalProcessExecutor``: a process pool on this machine, BLAS pinned to one thread per
  worker (the parallelism is across processes, not inside numpy). Workers are forked from a
  fork server (a fresh interpreter that imported the task's module once), so a pool starts
  without each worker importing the project again, and the server serves every later pool
  of the same process (spawn where there is no fork server).
- ``DaskExecutor``: a dask.distributed cluster, a named scheduler or a LocalCluster. Across
  machines every worker must see the database file at the same path (shared file system) and
  have this project installed.

At most ``max_in_flight`` tasks are submitted at a time, so a long run holds only a window of
pending tasks and results in memory.

A local worker exits when its parent dies (a SIGKILLed replay leaves no worker behind, and
so no worker holding the database open): on Linux the kernel sends it SIGKILL
(``PR_SET_PDEATHSIG``) when its direct parent dies, and everywhere a watchdog thread polls
``os.getppid()`` and whether the pool's owner still runs. A fork server's children have the
server as their direct parent; the server exits when the process that started it dies (it
reads until that process's end of its pipe closes), so the signal still comes. The
multiprocessing resource tracker exits by itself once the parent and every worker are gone
(it reads until the last holder of its pipe closes it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar, runtime_checkable

from buddy.processes import running

T = TypeVar("T")
R = TypeVar("R")

#: Environment variables that cap the thread pools of BLAS/OpenMP libraries.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                         "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

#: How often a local worker's watchdog checks that its parent is alive, in seconds.
PARENT_POLL_S = 0.5

#: prctl option asking the kernel to signal this process when its parent thread dies (Linux).
PR_SET_PDEATHSIG = 1

#: How long a DaskExecutor waits for its scheduler and workers to come up, in seconds.
DASK_STARTUP_TIMEOUT_S = 60.0


@runtime_checkable
class Executor(Protocol):
    """Something that evaluates tasks: ``map`` yields (task index, fn(task)) as tasks finish."""

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[int, R]]:
        """Yield ``(index, fn(task))`` for every task, in completion order."""
        ...

    def close(self) -> None:
        """Release workers and clusters this executor started."""
        ...

    def __enter__(self) -> Executor:
        """Return the executor (``with`` closes it)."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Close the executor."""
        ...


class SerialExecutor:
    """Evaluate tasks one after another in this process."""

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[int, R]]:
        """Yield ``(index, fn(task))`` in input order."""
        for index, task in enumerate(tasks):
            yield index, fn(task)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "SerialExecutor()"


def pin_blas_threads() -> None:
    """Cap BLAS/OpenMP thread pools at one thread in this process (a worker initializer)."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ[name] = "1"
    try:  # libraries already loaded ignore the variables; threadpoolctl reaches them
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1)


def exit_with_parent(parent_pid: int, *, death_signal: bool = True,
                     poll_s: float = PARENT_POLL_S) -> None:
    """Make this process exit when process ``parent_pid`` (the pool's owner: its parent, or
    its fork server's parent) dies.

    On Linux with ``death_signal`` the kernel SIGKILLs it at once when its direct parent dies
    (prctl PR_SET_PDEATHSIG; a fork server dies with its own parent); everywhere a daemon
    thread checks every ``poll_s`` seconds that the direct parent is still the one it started
    with (reparenting changes ``os.getppid()``) and that ``parent_pid`` still runs, and ends
    the process otherwise.
    """
    direct = os.getppid()
    if death_signal and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def orphaned() -> bool:
        return os.getppid() != direct or not running(parent_pid)

    if orphaned():  # a parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if orphaned():
                # os._exit: no cleanup can block it (a worker holds only read-only handles,
                # and its results have nowhere to go)
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def worker_context(preload: Iterable[str] = ()) -> multiprocessing.context.BaseContext:
    """Return the multiprocessing context local workers start in: the fork server, asked to
    import ``preload`` (module names) before it forks its first worker, where the platform
    has one; spawn elsewhere.

    The server is one per process: started by the first pool, it serves every later one (a
    module named only later is imported by each worker then). It is a fresh interpreter, not
    a fork of this process, so nothing of this process's threads (DuckDB's pool) is copied.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    modules = sorted({m for m in preload if m and m != "__main__"})
    if modules:
        context.set_forkserver_preload(modules)
    return context


#: glibc's mallopt parameters (malloc.h) and what a worker sets them to: allocations up to
#: 1 GiB come from the heap, freed memory stays there (no trim below 2 GiB free), and the
#: heap grows 256 MiB at a time.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
WORKER_MALLOC = ((_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, (1 << 31) - 1),
                 (_M_TOP_PAD, 1 << 28))


def keep_worker_memory() -> bool:
    """Make this process keep the memory it frees for its next use instead of returning it
    to the kernel (a worker initializer); return whether the C library took the settings.

    A replay worker allocates and frees the same few hundred megabytes for every chunk. By
    default glibc serves each large array with a fresh mmap, unmapped when freed, and Arrow's
    allocator returns freed pages to the kernel: every chunk then faults its memory in again,
    page by page (about a tenth of a chunk's CPU went to the kernel). Here Arrow allocates
    from the C heap (``pyarrow.system_memory_pool``) and the heap keeps what it frees
    (``WORKER_MALLOC``); a worker lives as long as its pool, and its memory is returned when
    it exits. Where the C library is not glibc, nothing changes but Arrow's pool."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in WORKER_MALLOC)


def init_local_worker(parent_pid: int, death_signal: bool) -> None:
    """Initialise a LocalProcessExecutor worker: BLAS pinned to 1, one DuckDB thread, freed
    memory kept for the next chunk, exit with the parent."""
    from buddy.store.core import limit_threads

    pin_blas_threads()
    limit_threads(1)
    keep_worker_memory()
    exit_with_parent(parent_pid, death_signal=death_signal)


class LocalProcessExecutor:
    """Evaluate tasks in a pool of ``workers`` local processes (BLAS pinned to 1).

    Workers are never forks of this process: it may have DuckDB's thread pool running, and
    a forked copy of a multi-threaded process can deadlock. They are forked from the fork
    server (``worker_context``), which imported ``preload`` and the mapped function's module
    once, or spawned where there is none. The pool starts on first use (or ``start()``) and
    is reused until ``close()``. Workers exit when this process dies (``exit_with_parent``).
    """

    def __init__(self, workers: int = 2, *, max_in_flight: int | None = None,
                 preload: Iterable[str] = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1 (got {workers})")
        self.workers = workers
        self.max_in_flight = max_in_flight or 2 * workers
        self.preload = tuple(preload)
        self._pool: ProcessPoolExecutor | None = None
        self._starter: threading.Thread | None = None

    def _ensure_pool(self, preload: Iterable[str] = ()) -> ProcessPoolExecutor:
        starter, self._starter = self._starter, None
        if starter is not None:  # ``start`` is making the pool: wait for it
            starter.join()
        return self._make_pool(preload)

    def _make_pool(self, preload: Iterable[str]) -> ProcessPoolExecutor:
        if self._pool is None:
            context = worker_context([*self.preload, *preload])
            # PR_SET_PDEATHSIG fires when the THREAD that started a worker ends: a fork
            # server's one thread, or this thread when spawning (workers start on submit,
            # and map runs on the thread that made the pool): arm it then only on the main
            # thread; the watchdog covers pools made elsewhere
            armed = (context.get_start_method() == "forkserver"
                     or threading.current_thread() is threading.main_thread())
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context,
                initializer=init_local_worker, initargs=(os.getpid(), armed))
        return self._pool

    def start(self, preload: Iterable[str] = ()) -> None:
        """Start every worker now (their fork server importing ``preload`` too) rather than
        on the first task, so their start overlaps the caller's own work; returns at once
        (``map`` waits for the start to finish)."""
        if self._pool is not None or self._starter is not None:
            return
        modules = tuple(preload)

        def warm() -> None:
            pool = self._make_pool(modules)
            for _ in range(self.workers):  # a pool starts a worker per submitted task
                pool.submit(os.getpid)

        if worker_context().get_start_method() != "forkserver":
            # a spawned worker's death signal follows the thread that started it: this one
            # (spawning returns at once anyway; a fork server's first start waits for it)
            warm()
            return
        self._starter = threading.Thread(target=warm, name="pool-start", daemon=True)
        self._starter.start()

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[int, R]]:
        """Yield ``(index, fn(task))`` as workers finish; a task's exception is raised here."""
        pool = self._ensure_pool([getattr(fn, "__module__", "") or ""])
        pending: dict[Future[R], int] = {}
        queue = enumerate(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    try:
                        index, task = next(queue)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[pool.submit(fn, task)] = index
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=pending.__getitem__):
                    yield pending.pop(future), future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Shut the pool down (running tasks finish; queued ones are cancelled)."""
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalProcessExecutor(workers={self.workers})"


class DaskExecutor:
    """Evaluate tasks on a dask.distributed cluster.

    ``address`` names a running scheduler ('tcp://host:8786'); None starts a LocalCluster of
    ``workers`` processes with one thread each (dask's nannies pin BLAS threads to 1). The
    client and any cluster started here are closed by ``close()``.
    """

    def __init__(self, address: str | None = None, *, workers: int = 2,
                 max_in_flight: int | None = None,
                 startup_timeout_s: float = DASK_STARTUP_TIMEOUT_S) -> None:
        self.address = address
        self.workers = workers
        self.max_in_flight = max_in_flight
        self.startup_timeout_s = startup_timeout_s
        self._client: Any = None
        self._cluster: Any = None

    @property
    def client(self) -> Any:
        """Return the distributed.Client, connecting (or starting the LocalCluster) once."""
        if self._client is None:
            from distributed import Client, LocalCluster

            timeout = f"{self.startup_timeout_s:g}s"
            if self.address is None:
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                             processes=True, host="127.0.0.1",
                                             dashboard_address=None,
                                             timeout=timeout)
                self._client = Client(self._cluster, timeout=timeout)
            else:
                self._client = Client(self.address, timeout=timeout)
        return self._client

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[int, R]]:
        """Yield ``(index, fn(task))`` as the cluster finishes tasks."""
        from distributed import as_completed

        client = self.client
        window = self.max_in_flight or 2 * max(1, len(client.scheduler_info()["workers"]))
        queue = enumerate(tasks)
        indices: dict[str, int] = {}

        def submit_next() -> Any | None:
            try:
                index, task = next(queue)
            except StopIteration:
                return None
            future = client.submit(fn, task, pure=False)
            indices[future.key] = index
            return future

        first = [f for f in (submit_next() for _ in range(window)) if f is not None]
        if not first:
            return
        running = as_completed(first)
        try:
            for future in running:
                result = future.result()
                index = indices.pop(future.key)
                future.release()
                following = submit_next()
                if following is not None:
                    running.add(following)
                yield index, result
        finally:
            for future in running.futures:
                future.cancel()

    def close(self) -> None:
        """Close the client and the LocalCluster started here (a named scheduler stays up)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.address or f"LocalCluster({self.workers} workers)"
        return f"DaskExecutor({where})"


def make_executor(kind: str, *, workers: int = 2, scheduler: str | None = None) -> Executor:
    """Return the executor called ``kind`` ('serial', 'local' or 'dask')."""
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return LocalProcessExecutor(workers=workers)
    if kind == "dask":
        return DaskExecutor(scheduler, workers=workers)
    raise ValueError(f"executor must be one of serial, local, dask (got {kind!r})")
