"""``python -m kerasflow.fit`` under MultiWorkerMirroredStrategy with two worker processes on the loopback
address (one CPU each): a worker killed with SIGKILL inside an epoch, the survivor's one-line exit,
both restarted by a supervisor, the run resumed from the chief's last checkpoint with every epoch
logged once, and the same test top-1 as one worker."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from cli_testing import run_fit, tiny_recipe

from kerasflow.errors import UserError
from kerasflow.training.multi_worker import is_chief_task

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for probe in sockets:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in sockets]
    for probe in sockets:
        probe.close()
    return ports


def worker_tf_configs(ports):
    """The ``TF_CONFIG`` of each worker of a cluster of workers on 127.0.0.1 (worker 0 is the chief)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}) for index in range(len(ports))]


class Cluster:
    """Two ``python -m kerasflow.fit`` workers on 127.0.0.1, each restarted (with the same command, as
    a cluster manager would) whenever it exits with an error. Worker 0 is the chief."""

    def __init__(self, recipe, folder, *overrides):
        self.folder = Path(folder)
        self.command = [sys.executable, "-m", "kerasflow.fit", str(recipe), "--set",
                        "runtime.distribution=multi_worker_mirrored", *overrides]
        self.envs = [dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CI="1", TF_NUM_INTEROP_THREADS="1",
                          TF_NUM_INTRAOP_THREADS="1", TF_CONFIG=tf_config)
                     for tf_config in worker_tf_configs(free_ports(2))]
        self.starts = [0, 0]
        self.exits = [[], []]  # (status, seconds since the kill, log) of each run of each worker
        self.processes = [self._start(0), self._start(1)]

    def _start(self, index):
        self.starts[index] += 1
        pin = ["taskset", "-c", str(index)] if shutil.which("taskset") and os.cpu_count() >= 2 else []
        log = self.folder / f"worker{index}-{self.starts[index]}.log"
        with open(log, "w") as output:
            return subprocess.Popen(pin + self.command, env=self.envs[index], cwd=ROOT, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, index, run):
        return (self.folder / f"worker{index}-{run}.log").read_text(errors="replace")

    def supervise(self, since):
        """Restart a worker that ended with an error; True once both ended with status 0."""
        for index, process in enumerate(self.processes):
            status = process.poll()
            if status not in (None, 0):
                self.exits[index].append((status, time.time() - since))
                assert self.starts[index] < 4, self.log(index, self.starts[index])[-3000:]
                self.processes[index] = self._start(index)
        return all(process.poll() == 0 for process in self.processes)

    def kill(self, index):
        self.processes[index].send_signal(signal.SIGKILL)

    def stop(self):
        # SIGKILL: a worker waiting for the cluster to form is inside TensorFlow and does not see SIGTERM.
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def chief_epoch(run):
    try:
        return json.loads((run / "state.json").read_text()).get("current", {}).get("epoch", 0)
    except (OSError, ValueError):
        return 0


def logged_epochs(run):
    lines = (run / "stages" / "flow" / "log.csv").read_text().splitlines()
    return [int(line.split(",")[0]) for line in lines[1:]]


def test_the_first_worker_of_the_cluster_is_the_chief(monkeypatch):
    """The fast tier's share of this module: which worker owns the run folder, read from TF_CONFIG."""
    runtime = types.SimpleNamespace(distribution="multi_worker_mirrored")
    chiefs = []
    for tf_config in worker_tf_configs(free_ports(3)):
        monkeypatch.setenv("TF_CONFIG", tf_config)
        chiefs.append(is_chief_task(runtime))
    assert chiefs == [True, False, False]
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        is_chief_task(runtime)
    assert is_chief_task(types.SimpleNamespace(distribution="mirrored"))


@pytest.mark.large
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="loopback cluster test written for Linux")
def test_two_workers_survive_a_killed_worker_and_match_one_worker(tmp_path):
    recipe = tiny_recipe(tmp_path, kind="representation_flow", epochs=(EPOCHS,))
    # One worker first: its test top-1 is the reference (and it makes the synthetic videos).
    run_fit(recipe)
    one_worker = json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]

    run = tmp_path / "run2"
    cluster = Cluster(recipe, tmp_path, f"--set=runtime.output_dir={run}")
    try:
        deadline = time.time() + 240
        while chief_epoch(run) < 2:
            assert time.time() < deadline, cluster.log(0, 1)[-3000:]
            assert all(process.poll() is None for process in cluster.processes), cluster.log(0, 1)[-3000:]
            time.sleep(0.05)
        time.sleep(0.3)  # into the next epoch
        killed_after = chief_epoch(run)
        cluster.kill(1)
        killed_at = time.time()
        deadline = killed_at + 300
        while not cluster.supervise(killed_at):
            assert time.time() < deadline, "the run did not finish after the restarts"
            time.sleep(0.1)
    finally:
        cluster.stop()

    assert 2 <= killed_after < EPOCHS
    # The survivor (the chief) stopped on its own within a minute, with one line that says what to do.
    assert cluster.exits[1][0][0] == -signal.SIGKILL
    status, seconds = cluster.exits[0][0]
    assert status == 2 and seconds < 60
    last_line = cluster.log(0, 1).strip().splitlines()[-1]
    assert last_line.startswith("error: multi-worker training stopped: a worker was lost")
    assert "start every worker again with the same command" in last_line
    # Both restarted workers resumed after the chief's last recorded epoch; each epoch was logged once.
    assert f"flow: resuming after epoch {killed_after} of {EPOCHS}" in cluster.log(0, 2)
    assert f"flow: resuming after epoch {killed_after} of {EPOCHS}" in cluster.log(1, cluster.starts[1])
    assert logged_epochs(run) == list(range(EPOCHS))
    state = json.loads((run / "state.json").read_text())
    assert state["completed"] == ["flow"]
    assert not list(tmp_path.glob("run2/**/*.tmp*"))
    # The same test top-1 as one worker, within one test video (the tiny test subset has a handful).
    two_workers = json.loads((run / "metrics.json").read_text())["final"]
    assert two_workers["num_videos"] == one_worker["num_videos"] > 0
    assert abs(two_workers["top1"] - one_worker["top1"]) <= 1 / one_worker["num_videos"] + 1e-6
