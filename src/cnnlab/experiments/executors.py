"""Where a study's cells run: in this process, in a local process pool, or as Ray tasks.

Every executor calls the same `run_cell`, which makes a cell idempotent: a finished cell is returned
as it is, an unfinished one resumes from its checkpoint, and a cell another live process holds is
left alone (its lock). So a killed study, a retried Ray task or two study processes on one folder
never run a finished cell twice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..config import RunConfig
from ..registry import Registry

# name -> factory(workers, address, console, progress) -> an executor (a run(jobs) that yields outcomes)
EXECUTORS: Registry = Registry("executor")


@dataclass(frozen=True)
class CellJob:
    study: str  # the study folder (shared by every node for Ray)
    name: str
    key: str
    config: RunConfig  # validated once, where the study was planned; pickled as it is to pool workers and Ray
    imports: tuple[str, ...] = ()
    search_path: tuple[str, ...] = ()  # folders the imports' files are looked up in (never put on sys.path)
    retry_failed: bool = False


def run_cell(job: CellJob, progress: bool = False, console=None) -> dict:
    """Run one cell to its end; returns {cell, status, seconds, error, ran}. status: finished | failed |
    busy (another live process holds it) | lost (another process took it over while this one ran).
    Errors of the cell are recorded in its folder, not raised; Ctrl-C is."""
    from ..runfolder import RunFolder
    from ..studyfolder import LockLost, StudyFolder
    from .plan import import_user_modules
    from .run import train_run

    import_user_modules(list(job.imports), list(job.search_path))
    study = StudyFolder(job.study)
    folder = study.run(job.name)

    def done(status: str, ran: bool = False, seconds: float = 0.0) -> dict:
        return {"cell": job.name, "status": status, "seconds": seconds,
                "error": _error(folder) if status in ("finished", "failed") else None, "ran": ran}

    def settled() -> str | None:
        status = folder.status
        return status if status == "finished" or (status == "failed" and not job.retry_failed) else None

    if settled():
        return done(settled())
    lock = study.lock(job.key)
    if not lock.acquire():
        return done("busy")
    started = time.perf_counter()
    try:
        if settled():  # settled by another process between our look and our lock
            return done(settled())
        guarded = RunFolder(folder.path, guard=lock)
        try:
            train_run(job.config, guarded.path, resume=guarded.has_content(), progress=progress, console=console,
                      guard=lock)
        except LockLost:
            return done("lost", ran=True, seconds=time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - a failed cell is recorded and the study goes on
            try:
                if guarded.status != "failed":
                    guarded.write_summary({"status": "failed", "error": f"{type(exc).__name__}: {exc}", "val": None,
                                           "test": None, "best_epoch": None})
            except LockLost:
                return done("lost", ran=True, seconds=time.perf_counter() - started)
        return done(folder.status, ran=True, seconds=time.perf_counter() - started)
    finally:
        lock.release()


def _error(folder) -> str | None:
    try:
        return folder.read_summary().get("error")
    except Exception:  # noqa: BLE001 - no summary yet
        return None


# ---- executors ----------------------------------------------------------------------------------
class LocalExecutor:
    """One cell after another in this process, with the per-epoch progress of the running one."""

    def __init__(self, console=None, progress: bool = True):
        self.console, self.progress = console, progress

    def run(self, jobs: list[CellJob]) -> Iterator[dict]:
        for job in jobs:
            yield run_cell(job, progress=self.progress, console=self.console)


def _die_with_parent(parent: int) -> None:
    """A pool worker must not outlive the study process (a kill -9 of the study included): Linux's
    parent-death signal where there is one, and a watchdog thread everywhere."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="cnnlab-parent-watch").start()


def _worker_init(parent: int, imports: tuple[str, ...], search_path: tuple[str, ...]) -> None:
    _die_with_parent(parent)
    from .plan import import_user_modules

    import_user_modules(list(imports), list(search_path))


class ProcessExecutor:
    """A local pool of `workers` processes (spawned, so no worker inherits torch's threads or locks);
    each cell uses the thread count in its config, which the study set to a fair share of the cores."""

    def __init__(self, workers: int):
        self.workers = workers

    def run(self, jobs: list[CellJob]) -> Iterator[dict]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        if not jobs:
            return
        first = jobs[0]
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(), first.imports, first.search_path))
        futures = {pool.submit(run_cell, job): job for job in jobs}
        interrupted = False
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    yield {"cell": futures[future].name, "status": "interrupted", "seconds": 0.0,
                           "error": f"a worker process died ({exc}); run the study again to resume", "ran": False}
        except KeyboardInterrupt:
            # Ctrl-C: start nothing more and stop the running cells now (they resume from their last
            # epoch, as after kill -9) instead of waiting for them to finish
            interrupted = True
            for future in futures:
                future.cancel()
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            raise
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)


class RayExecutor:
    """Each cell a Ray task asking for its CPU threads (and a GPU when the cluster has them); the
    study folder must be on a path every node shares. Ray's retries after a lost worker call
    run_cell again, which resumes the cell or returns it finished: never a second full run."""

    def __init__(self, address: str | None = None, gpus_per_cell: float | None = None, max_retries: int = 3):
        self.address, self.gpus_per_cell, self.max_retries = address, gpus_per_cell, max_retries

    def run(self, jobs: list[CellJob]) -> Iterator[dict]:
        try:
            import ray
        except ImportError:
            from ..errors import ConfigError

            raise ConfigError("the ray executor needs Ray: pip install 'cnnlab[ray]' (or pip install ray)") from None
        started_here = not ray.is_initialized()
        if started_here:
            options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
            if self.address is None:
                self._start_loopback(ray, **options)
            else:  # an existing cluster: its own binding applies
                ray.init(address=self.address, **options)
        try:
            gpus = self.gpus_per_cell
            if gpus is None:
                gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            task = ray.remote(run_cell)
            refs = {}
            for job in jobs:
                threads = job.config.train.threads or 1
                refs[task.options(num_cpus=threads, num_gpus=gpus, max_retries=self.max_retries,
                                  retry_exceptions=False, name=f"cnnlab-cell {job.name}").remote(job)] = job
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    yield ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    yield {"cell": refs[done[0]].name, "status": "interrupted", "seconds": 0.0,
                           "error": f"the Ray task was lost ({type(exc).__name__}); run the study again to resume",
                           "ran": False}
        finally:
            if started_here:
                ray.shutdown()

    @staticmethod
    def _start_loopback(ray, **options) -> None:
        """Start a Ray instance for this study that listens on 127.0.0.1 only: unless its token mode is
        on, Ray authenticates nothing, and whoever reaches a port of it can run code here.

        Ray binds its gRPC servers (GCS, raylet, object manager, workers) to every interface unless the
        node's address is exactly 127.0.0.1, and ray.init turns a loopback _node_ip_address into the
        host's address unless multi-node clusters are off: Ray's single-node mode (its default on
        macOS and Windows), switched on while the instance starts; the processes it starts inherit it."""
        import ray._private.ray_constants as constants

        variable = constants.ENABLE_RAY_CLUSTERS_ENV_VAR
        saved_env, saved_flag = os.environ.get(variable), constants.ENABLE_RAY_CLUSTER
        os.environ[variable], constants.ENABLE_RAY_CLUSTER = "0", False
        try:
            ray.init(address="local", _node_ip_address="127.0.0.1", dashboard_host="127.0.0.1", **options)
        finally:
            constants.ENABLE_RAY_CLUSTER = saved_flag
            if saved_env is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = saved_env


@EXECUTORS.register("local")
def _local(workers: int, address: str | None, console, progress: bool) -> LocalExecutor:
    if workers != 1:
        from ..errors import ConfigError

        raise ConfigError("--workers needs --executor process (or ray); the local executor runs one cell at a time")
    return LocalExecutor(console, progress)


EXECUTORS.register("process", lambda workers, address, console, progress: ProcessExecutor(workers))
EXECUTORS.register("ray", lambda workers, address, console, progress: RayExecutor(address))


def make_executor(name: str, workers: int = 1, address: str | None = None, console=None, progress: bool = True):
    if name not in EXECUTORS:
        from ..errors import bad_value

        raise bad_value("--executor", "study run", EXECUTORS.one_of(name, quote=False), name)
    return EXECUTORS.get(name)(workers=workers, address=address, console=console, progress=progress)

