"""Starting and stopping the DeepCut processes for the example scripts:
deepcut-cloud and deepcut-link, each waited for through its --ready-file."""
import os
import signal
import subprocess
import sys
import time


def wait_ready(path, proc, what):
    """The endpoint a process wrote to its ready file, once it has."""
    for _ in range(600):
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path) as f:
                return f.readline().strip()
        if proc.poll() is not None:
            sys.exit("%s exited with %d" % (what, proc.returncode))
        time.sleep(0.05)
    sys.exit("%s did not start" % what)


class Processes:
    """Cloud and link processes, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, bin_dir, tmp):
        self.bin_dir, self.tmp, self.procs = bin_dir, tmp, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def cloud(self, model):
        ready = os.path.join(self.tmp, "cloud.ready")
        proc = self.add(subprocess.Popen(
            [os.path.join(self.bin_dir, "cloud", "deepcut-cloud"), "--listen",
             "tcp://127.0.0.1:*", "--model", model, "--ready-file", ready,
             "--stats-interval-s", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return wait_ready(ready, proc, "deepcut-cloud")

    def link(self, cloud_endpoint, uplink, *extra, log=None):
        ready = os.path.join(self.tmp, "link.ready")
        out = open(log, "w") if log else subprocess.DEVNULL
        proc = self.add(subprocess.Popen(
            [os.path.join(self.bin_dir, "netem", "deepcut-link"), "--listen",
             "tcp://127.0.0.1:*", "--connect", cloud_endpoint, "--uplink", uplink,
             "--ready-file", ready, "--stats-interval-s", "0", *extra],
            stdout=out, stderr=subprocess.STDOUT))
        return wait_ready(ready, proc, "deepcut-link")
