"""Helpers for the end-to-end tests: start real deepcut-cloud / deepcut-edge
processes on loopback and read what they wrote. Standard library only."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from deepcut_procs import Processes  # noqa: E402  (the one process starter)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--bin-dir", required=True, help="CMake build directory")
    p.add_argument("--model", required=True, help="model package directory")
    p.add_argument("--root", required=True, help="source tree root")
    return p.parse_args()


class Env:
    def __init__(self, args):
        self.args = args
        self.cloud_bin = os.path.join(args.bin_dir, "cloud", "deepcut-cloud")
        self.edge_bin = os.path.join(args.bin_dir, "edge", "deepcut-edge")
        self.keys_bin = os.path.join(args.bin_dir, "transport", "deepcut-keys")
        self.tmp = tempfile.mkdtemp(prefix="deepcut-e2e-")
        self.procs = Processes(args.bin_dir, self.tmp)

    def _start_listening(self, name, cmd):
        """Starts a process given --ready-file and waits until it has written
        its endpoint; returns (process, endpoint, log path)."""
        return self.procs.start_listening(name, cmd + ["--stats-interval-s", "0"])

    def start_cloud(self, listen="tcp://127.0.0.1:*", model=None, extra=()):
        """Starts a cloud and waits until it listens; returns (process, endpoint)."""
        proc, endpoint, _ = self.procs.cloud(model or self.args.model, listen,
                                             [*extra, "--stats-interval-s", "0"])
        return proc, endpoint

    def start_link(self, cloud_endpoint, uplink, extra=()):
        """Starts deepcut-link in front of a cloud; returns (process, endpoint, log path)."""
        return self.procs.link(cloud_endpoint, uplink, [*extra, "--stats-interval-s", "0"])

    def edge_cmd(self, endpoint, *extra, model=None):
        return [self.edge_bin, "--cloud", endpoint, "--model", model or self.args.model,
                "--progress", "off", *extra]

    def run_edge(self, endpoint, *extra, model=None, check=True):
        out = os.path.join(self.tmp, "answers.jsonl")
        summary = os.path.join(self.tmp, "summary.json")
        cmd = self.edge_cmd(endpoint, "--out", out, "--summary", summary, *extra, model=model)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        print(res.stdout)
        print(res.stderr[-3000:], file=sys.stderr)
        if check:
            expect(res.returncode == 0, "edge exited with %d" % res.returncode)
            return read_answers(out), read_json(summary)
        return res

    def stop_all(self):
        self.procs.stop_all()


def read_answers(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def expect(cond, message):
    if not cond:
        raise AssertionError(message)


def expect_one_answer_each(answers, n):
    """Every frame 0..n-1 has exactly one answer, and nothing else does."""
    ids = [a["frame"] for a in answers]
    expect(len(ids) == n, "expected %d answers, got %d" % (n, len(ids)))
    expect(sorted(ids) == list(range(n)), "frame ids are not exactly 0..%d once each" % (n - 1))


def main(test):
    args = parse_args()
    env = Env(args)
    try:
        test(env)
    finally:
        env.stop_all()
    # Kept on failure, for a look at the logs.
    shutil.rmtree(env.tmp, ignore_errors=True)
    print("PASS")
