"""The Ray instance a study starts for itself (no --address) listens on the loopback interface only:
unless its token mode is on Ray authenticates nothing, so a port on the network would take tasks from
anyone. Its tasks import the study's modules as the other executors do: the listed ones from their
files, nothing else beside the study file."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from study_helpers import TINY, own_model_source, sent_folder

from cnnlab.studyfolder import StudyFolder


def _proc_address(text: str) -> tuple[str, int]:
    """'0100007F:1F90' (/proc/net/tcp, little-endian words) -> ('127.0.0.1', 8080)."""
    ip, port = text.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *struct.unpack("<4I", raw))), int(port, 16)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def listening_sockets(pids: list[int]) -> list[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of every listening TCP socket the processes hold: psutil's
    view where it is installed, else Linux's /proc."""
    try:
        import psutil
    except ImportError:
        return _listening_from_proc(pids)
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((pid, process.name(), conn.laddr.ip, conn.laddr.port))
        except psutil.Error:
            continue
    return found


def _listening_from_proc(pids: list[int]) -> list[tuple[int, str, str, int]]:
    """/proc/net/tcp{,6}'s listening sockets, mapped to processes by the socket inodes in /proc/PID/fd."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if Path(table).exists():
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    listening[fields[9]] = _proc_address(fields[1])
    found = []
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # the process has ended
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # closed meanwhile (listdir's own descriptor, for one)
                continue
            if link.startswith("socket:[") and link[8:-1] in listening:
                found.append((pid, name, *listening[link[8:-1]]))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not any(is_loopback(a) for a in ("0.0.0.0", "::", "192.0.2.2", "::ffff:10.0.0.1", "fd00::2"))


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_the_proc_reader_finds_this_process_listening():
    with socket.socket() as local, socket.socket() as everywhere:
        local.bind(("127.0.0.1", 0))
        everywhere.bind(("0.0.0.0", 0))
        local.listen()
        everywhere.listen()
        found = {(address, port) for _, _, address, port in _listening_from_proc([os.getpid()])}
        assert {("127.0.0.1", local.getsockname()[1]), ("0.0.0.0", everywhere.getsockname()[1])} <= found


# The study process: runs the executor, says when the first cell is done (the instance is up), and
# waits for the test to look at its sockets before letting the executor finish and shut Ray down.
STUDY_PROCESS = r'''
import json, os, sys, time
from pathlib import Path

import ray._private.ray_constants as constants

from cnnlab.experiments.executors import CellJob, RayExecutor
from cnnlab.experiments.study import open_study, write_manifest

study_file, out, signals = map(Path, sys.argv[1:4])
run = open_study(study_file, out)
write_manifest(run, str(study_file))
jobs = [CellJob(str(out.resolve()), c.name, c.key, run.plan.config(c), tuple(run.plan.spec.imports),
                tuple(run.search_path)) for c in run.plan.cells]
outcomes = RayExecutor().run(jobs)
first = next(outcomes)
single_node = (constants.ENABLE_RAY_CLUSTER, os.environ.get(constants.ENABLE_RAY_CLUSTERS_ENV_VAR))
(signals / "up").write_text("")
deadline = time.monotonic() + 300
while not (signals / "looked").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
statuses = [o["status"] for o in [first, *outcomes]]
print(json.dumps({"statuses": statuses, "cells": len(jobs), "single_node_after_init": single_node}))
'''


@pytest.mark.ray
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_the_local_ray_instance_listens_on_loopback_only_and_runs_the_study(tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.fail("Ray is not installed: pip install 'cnnlab[ray]' (scripts/install.sh does)")
    model = "cnnlab_test_ray_tinynet"
    study = {"name": "ray-loopback", "imports": ["cnnlab_test_ray_models"], "seeds": 1,
             "base": {**TINY, "model": model}, "ablate": {"model.width": [4]}}
    path, sentinels = sent_folder(tmp_path, study, {"cnnlab_test_ray_models": own_model_source(model)})
    out, signals, home, cwd = (tmp_path / name for name in ("study", "signals", "home", "elsewhere"))
    for folder in (signals, home, cwd):
        folder.mkdir()
    # a fresh process (Ray caches its settings per process) with a home of its own: ray.init keeps a
    # token for its authentication in ~/.ray, which later `ray start --head`s on this machine would use
    env = {**os.environ, "HOME": str(home), "CNNLAB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    process = subprocess.Popen([sys.executable, "-c", STUDY_PROCESS, str(path), str(out), str(signals)], cwd=cwd,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not (signals / "up").exists():
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the study did not start"
            time.sleep(0.05)
        sockets = listening_sockets([process.pid, *_descendants(process.pid)])
        (signals / "looked").write_text("")
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]

    names = " ".join(name for _, name, _, _ in sockets)
    assert "gcs_server" in names and "raylet" in names and "ray::" in names, sockets  # every kind was looked at
    exposed = [s for s in sockets if not is_loopback(s[2])]
    assert exposed == [], f"listening beyond loopback: {exposed} (all: {sockets})"

    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["statuses"] == ["finished", "finished"] and report["cells"] == 2
    assert report["single_node_after_init"] == [True, None]  # Ray's settings are as they were once it started
    folder = StudyFolder(out)
    assert all(folder.cell_state(c) == "finished" for c in folder.cells())
    spec = json.loads((out / folder.cells()[0].name / "model.json").read_text())
    assert spec["impl"] == "user:cnnlab_test_ray_models:TinyNet"
    assert sorted(os.listdir(sentinels)) == []
