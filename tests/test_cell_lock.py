"""The per-cell lock: exactly one holder, a live holder is never broken, a lost holder writes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnnlab.runfolder import RunFolder
from cnnlab.studyfolder import CellLock, LockLost, StudyFolder, stale_seconds

REPO = Path(__file__).resolve().parents[1]

RACER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from cnnlab.studyfolder import CellLock

    locks, rounds, start, out = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
    held = [CellLock(locks / f"round{r}.json", heartbeat_seconds=None) for r in range(rounds)]
    while time.time() < start:  # every racer starts at the same moment
        time.sleep(0.0005)
    won = [r for r, lock in enumerate(held) if lock.acquire()]  # winners hold until everyone has tried
    out.write_text(json.dumps(won))
""")


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def race(tmp_path: Path, racers: int, rounds: int, over_dead_holder: bool) -> list[int]:
    """Winners per round when `racers` processes try to take each of `rounds` locks at once."""
    locks = tmp_path / "locks"
    locks.mkdir()
    if over_dead_holder:  # the state a kill -9 leaves: a lock whose process is gone
        pid = dead_pid()
        for r in range(rounds):
            (locks / f"round{r}.json").write_text(json.dumps(
                {"pid": pid, "host": socket.gethostname(), "token": f"dead-{r}", "started": 0}))
    start = time.time() + 3.0  # after every interpreter has started
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(locks), str(rounds), str(start),
                               str(tmp_path / f"won-{i}.json")]) for i in range(racers)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    winners = [0] * rounds
    for i in range(racers):
        for r in json.loads((tmp_path / f"won-{i}.json").read_text()):
            winners[r] += 1
    return winners


@pytest.mark.parametrize("over_dead_holder", [False, True], ids=["fresh", "over-dead-holder"])
def test_simultaneous_acquisitions_have_exactly_one_winner(tmp_path, over_dead_holder):
    winners = race(tmp_path, racers=6, rounds=250, over_dead_holder=over_dead_holder)
    assert winners == [1] * 250, f"double holders in {sum(w > 1 for w in winners)} rounds, none in {winners.count(0)}"
    leftovers = [p.name for p in (tmp_path / "locks").iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_lock_is_written_whole_and_released(tmp_path):
    lock = CellLock(tmp_path / "cell.json", heartbeat_seconds=None)
    assert lock.acquire()
    record = json.loads(lock.path.read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert lock.owns() and CellLock(lock.path).holder()["token"] == record["token"]
    assert not CellLock(lock.path).acquire()  # this process holds it through another object
    lock.release()
    assert not lock.path.exists() and not lock.owns()
    assert CellLock(lock.path, heartbeat_seconds=None).acquire()


def test_a_live_holder_on_this_host_is_never_broken_however_old_its_heartbeat(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = tmp_path / "cell.json"
        from cnnlab.studyfolder import _process_start

        path.write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "token": "paused",
                                    "process_start": _process_start(sleeper.pid)}))
        ancient = time.time() - 100 * stale_seconds()
        os.utime(path, (ancient, ancient))  # as if paused (SIGSTOP) for hours
        assert CellLock(path).holder() is not None
        assert not CellLock(path, heartbeat_seconds=None).acquire()
        assert json.loads(path.read_text())["token"] == "paused"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert CellLock(path, heartbeat_seconds=None).acquire()  # now its process is gone


@pytest.mark.parametrize("started", ["1", None], ids=["other-start-time", "no-start-time"])
def test_a_reused_pid_does_not_keep_a_dead_holders_lock(tmp_path, started):
    path = tmp_path / "cell.json"  # a live pid (pid 1, or ours), recorded with another process start time or none
    path.write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "token": "old", "process_start": started}))
    assert CellLock(path).holder() is None
    assert CellLock(path, heartbeat_seconds=None).acquire()


def test_a_folder_in_place_of_a_lock_is_one_clear_error(tmp_path):
    from cnnlab.studyfolder import StudyError

    (tmp_path / "cell.json").mkdir()
    with pytest.raises(StudyError, match="is a folder, not a cell lock; delete it"):
        CellLock(tmp_path / "cell.json").acquire()


@pytest.mark.parametrize("content", [b"", b"{\"pid\": 12", b"\x00\xff garbage", b"[1, 2]"])
def test_an_unreadable_lock_counts_as_held_while_young(tmp_path, content):
    path = tmp_path / "cell.json"
    path.write_bytes(content)
    assert not CellLock(path, heartbeat_seconds=None).acquire()
    old = time.time() - 2 * stale_seconds()
    os.utime(path, (old, old))
    assert CellLock(path, heartbeat_seconds=None).acquire()


def test_a_holder_that_lost_its_lock_writes_nothing(tmp_path):
    lock = CellLock(tmp_path / "cell.json", heartbeat_seconds=None)
    assert lock.acquire()
    # the holder looks like a process on another host whose heartbeat stopped long ago
    record = json.loads(lock.path.read_text())
    lock.path.unlink()
    lock.path.write_text(json.dumps({**record, "host": "elsewhere"}))
    old = time.time() - 2 * stale_seconds()
    os.utime(lock.path, (old, old))
    other = CellLock(lock.path, heartbeat_seconds=None)
    assert other.acquire()
    run = RunFolder(tmp_path / "run", guard=lock)
    with pytest.raises(LockLost, match="lost the lock"):
        run.write_config({"train": {}})
    with pytest.raises(LockLost):
        run.append_metrics({"epoch": 1})
    assert not run.path.exists()
    lock.release()  # must not remove the new holder's lock
    assert other.owns()


def test_a_holder_paused_while_putting_a_write_in_place_keeps_its_cell(tmp_path):
    """The ownership check and the rename happen under the cell's mutex: a breaker that comes meanwhile
    (however stale the lock looks) leaves the cell alone, and the holder's write lands."""
    from cnnlab.studyfolder import MUTEX_WAIT_SECONDS

    lock = CellLock(tmp_path / "cell.json", heartbeat_seconds=None)
    assert lock.acquire()
    record = json.loads(lock.path.read_text())
    lock.path.write_text(json.dumps({**record, "host": "elsewhere"}))  # looks dead to everyone...
    old = time.time() - 2 * stale_seconds()
    os.utime(lock.path, (old, old))
    run = RunFolder(tmp_path / "run", guard=lock)
    with lock.committing():  # ...but is in the middle of putting a write in place
        started = time.monotonic()
        assert not CellLock(lock.path, heartbeat_seconds=None).acquire()
        assert time.monotonic() - started >= MUTEX_WAIT_SECONDS * 0.9
    run.write_summary({"status": "finished"})
    assert run.read_summary()["status"] == "finished"
    assert CellLock(lock.path, heartbeat_seconds=None).acquire()  # once it is out, a breaker may come
    with pytest.raises(LockLost):
        run.write_summary({"status": "failed"})
    assert run.read_summary()["status"] == "finished" and not list(run.path.glob(".*"))


def test_heartbeat_refreshes_the_lock_and_stops_once_lost(tmp_path):
    lock = CellLock(tmp_path / "cell.json", heartbeat_seconds=0.05)
    assert lock.acquire()
    old = time.time() - 1000
    os.utime(lock.path, (old, old))
    time.sleep(0.3)
    assert time.time() - lock.path.stat().st_mtime < 5
    lock.path.unlink()
    time.sleep(0.2)
    assert not lock._thread.is_alive()
    lock.release()


# ---- a real study, paused for longer than the stale age --------------------------------------------
STUDY = """
name: paused
base: {data: digits, model: lenet5, train: {epochs: 20, threads: 1, batch_size: 32}}
seeds: 1
"""


def start_study(study_file: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "CNNLAB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "study", "run", str(study_file), "--out", str(out),
                             "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_training(folder: StudyFolder, proc: subprocess.Popen, rows: int = 2) -> Path:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        runs = [p for p in folder.path.glob("base/seed=*") if (p / "metrics.csv").exists()]
        if runs and len((runs[0] / "metrics.csv").read_text().splitlines()) > rows:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError("the study did not start training")


def epochs_in(run: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def mutex_held(mutex: Path) -> bool:
    import fcntl

    with open(mutex, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def stop_outside_a_commit(process: subprocess.Popen, mutex: Path) -> None:
    """SIGSTOP the process at a moment it is not putting a write in place (a pause inside one keeps the
    cell's mutex, and a breaker then leaves the cell to its holder: tested on its own below)."""
    for _ in range(200):
        process.send_signal(signal.SIGSTOP)
        while not stopped(process.pid):
            time.sleep(0.001)
        if not mutex_held(mutex):
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(0.003)
    raise AssertionError("the study held its cell's mutex at every try")


@contextlib.contextmanager
def paused_study(tmp_path: Path, as_another_host: bool = False):
    """A study training its one cell, paused (SIGSTOP) with its lock's heartbeat older than the stale age
    (and, if asked, its lock reading as another host's). Yields (process, run folder, study file, out);
    the caller continues it (SIGCONT)."""
    study_file = tmp_path / "paused.yaml"
    study_file.write_text(STUDY)
    out = tmp_path / "study"
    first = start_study(study_file, out)
    try:
        run = wait_for_training(StudyFolder(out), first)
        lock = next((out / ".locks").glob("*.json"))
        stop_outside_a_commit(first, lock.with_suffix(".mutex"))
        if as_another_host:
            lock.write_text(json.dumps({**json.loads(lock.read_text()), "host": "another-host"}))
        ancient = time.time() - 10 * stale_seconds()
        os.utime(lock, (ancient, ancient))  # its heartbeat has stopped for longer than the stale age
        yield first, run, study_file, out
    finally:
        first.kill()


def test_a_paused_study_keeps_its_cell_and_a_second_study_does_not_run_it(tmp_path):
    """SIGSTOP the study running a cell for longer than the stale age, start a second study on the same
    folder, then resume the first: the cell is trained once, by its holder, epochs 1-20 once each."""
    from cnnlab.experiments.study import run_study

    with paused_study(tmp_path) as (first, run, study_file, out):
        before = (run / "metrics.csv").read_bytes()
        second = run_study(study_file, out, progress=False)
        assert second.outcomes == [] and second.counts()["running"] == 1  # left to its holder
        assert (run / "metrics.csv").read_bytes() == before  # the second study wrote nothing
        first.send_signal(signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr
    assert epochs_in(run) == list(range(1, 21))
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert list((out / ".locks").glob("*.json")) == []


def test_a_holder_judged_dead_by_another_host_stops_without_writing(tmp_path):
    """As above, but the paused holder's lock reads as another host's: the second study breaks it after
    the stale age and trains the cell; the first, resumed, finds it lost the lock and writes nothing more."""
    from cnnlab.experiments.study import run_study

    with paused_study(tmp_path, as_another_host=True) as (first, run, study_file, out):
        second = run_study(study_file, out, progress=False)
        assert [o["status"] for o in second.outcomes] == ["finished"]
        finished = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        first.send_signal(signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=300)
        assert first.returncode == 0, stderr
        assert "lost" in stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == finished
    assert epochs_in(run) == list(range(1, 21))
