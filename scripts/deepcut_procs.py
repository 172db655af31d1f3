"""Starting and stopping DeepCut's processes from Python: one way, for the end-to-end
tests (tests/e2e/harness.py), the load test (scripts/load_test.py) and the examples.

    with Processes(bin_dir, tmp) as procs:
        proc, endpoint, log = procs.cloud(model, extra=["--threads", "2"])
        proc, link_endpoint, log = procs.link(endpoint, "2M")
        edge = procs.add(subprocess.Popen([...]))

A server is started with --ready-file and waited for until it has written its bound
endpoint (so `tcp://127.0.0.1:*` works: nothing hard-codes a port). Everything started is
stopped on exit: SIGTERM, then SIGKILL after 10 s. Standard library only.
"""
import os
import signal
import subprocess
import time


class StartFailed(RuntimeError):
    pass


class Processes:
    def __init__(self, bin_dir, tmp):
        self.bin_dir, self.tmp, self.procs = bin_dir, tmp, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def start_listening(self, name, cmd, log_path=None, timeout_s=60):
        """Starts `cmd` with a --ready-file and waits for its endpoint; returns
        (process, endpoint, log path). Its stdout and stderr go to the log."""
        n = len(self.procs)
        ready = os.path.join(self.tmp, "%s-ready-%d" % (name, n))
        if os.path.exists(ready):
            os.remove(ready)  # left by an earlier run into the same directory
        log_path = log_path or os.path.join(self.tmp, "%s-%d.log" % (name, n))
        proc = self.add(subprocess.Popen(cmd + ["--ready-file", ready],
                                         stdout=open(log_path, "w"), stderr=subprocess.STDOUT))
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                with open(ready) as f:
                    return proc, f.readline().strip(), log_path
            if proc.poll() is not None:
                raise StartFailed("%s exited with %d (log: %s)" % (name, proc.returncode, log_path))
            time.sleep(0.05)
        proc.kill()
        raise StartFailed("%s did not start within %d s (log: %s)" % (name, timeout_s, log_path))

    def cloud(self, model, listen="tcp://127.0.0.1:*", extra=(), log_path=None):
        return self.start_listening(
            "cloud", [os.path.join(self.bin_dir, "cloud", "deepcut-cloud"), "--listen", listen,
                      "--model", model, *extra], log_path)

    def link(self, cloud_endpoint, uplink, extra=(), log_path=None):
        return self.start_listening(
            "link", [os.path.join(self.bin_dir, "netem", "deepcut-link"), "--listen",
                     "tcp://127.0.0.1:*", "--connect", cloud_endpoint, "--uplink", uplink,
                     *extra], log_path)

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
