"""Starting and stopping DeepCut's processes from Python: one way, for the end-to-end
tests (tests/e2e/harness.py), the load test (scripts/load_test.py) and the examples.

    with Processes(bin_dir, tmp) as procs:
        proc, endpoint, log = procs.cloud(model, extra=["--threads", "2"])
        proc, link_endpoint, log = procs.link(endpoint, "2M")
        edge = procs.add(subprocess.Popen([...]))

A server is started with --ready-file and waited for until it has written its bound
endpoint (so `tcp://127.0.0.1:*` works: nothing hard-codes a port). Everything started is
stopped on exit: SIGTERM, then SIGKILL after 10 s. Standard library only.

For the metrics and the local cluster (scripts/cluster.py, tests/e2e/test_prometheus.py):

    proc, endpoints, metrics_url, log = procs.cloud_with_metrics(model)   # --metrics-listen
    proc, log = procs.start("edge-0", [...])                              # any process, logged
    proc, url, log = procs.prometheus(config, data_dir, free_port())      # waits for /-/ready
    samples = read_metrics(metrics_url)   # {(name, ((label, value), ...)): value}
"""
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


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

    def start(self, name, cmd, log_path=None, new_session=False):
        """Starts `cmd` with its stdout and stderr in a log (default TMP/NAME.log) and tracks
        it; returns (process, log path). new_session: not in this process group, so a
        terminal's Ctrl-C reaches only the caller, which stops it in its own time."""
        log_path = log_path or os.path.join(self.tmp, "%s.log" % name)
        with open(log_path, "w") as log:
            proc = self.add(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=new_session))
        return proc, log_path

    def start_listening_lines(self, name, cmd, log_path=None, timeout_s=60, new_session=False):
        """start_listening, but returns every line of the ready file: (process, lines, log
        path). The file is written at once (renamed into place), so it is whole when seen."""
        n = len(self.procs)
        ready = os.path.join(self.tmp, "%s-ready-%d" % (name, n))
        if os.path.exists(ready):
            os.remove(ready)
        proc, log_path = self.start(name, cmd + ["--ready-file", ready],
                                    log_path or os.path.join(self.tmp, "%s-%d.log" % (name, n)),
                                    new_session)
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                with open(ready) as f:
                    return proc, [line.strip() for line in f if line.strip()], log_path
            if proc.poll() is not None:
                raise StartFailed("%s exited with %d (log: %s)" % (name, proc.returncode, log_path))
            time.sleep(0.05)
        proc.kill()
        raise StartFailed("%s did not start within %d s (log: %s)" % (name, timeout_s, log_path))

    def cloud_with_metrics(self, model, listen="tcp://127.0.0.1:*", metrics_listen="127.0.0.1:0",
                           extra=(), log_path=None, name="cloud", new_session=False):
        """A cloud with --metrics-listen; returns (process, [ZeroMQ endpoints], metrics URL
        (http://HOST:PORT, the last line of its ready file), log path)."""
        proc, lines, log_path = self.start_listening_lines(
            name, [os.path.join(self.bin_dir, "cloud", "deepcut-cloud"), "--listen", listen,
                   "--model", model, "--metrics-listen", metrics_listen, *extra],
            log_path, new_session=new_session)
        urls = [line for line in lines if line.startswith("http://")]
        if not urls:
            proc.kill()
            raise StartFailed("%s wrote no metrics URL into its ready file: %s (log: %s)"
                              % (name, lines, log_path))
        return proc, [line for line in lines if not line.startswith("http://")], urls[-1], log_path

    def prometheus(self, config, data_dir, port, host="127.0.0.1", binary=None, extra=(),
                   log_path=None, timeout_s=60, new_session=False):
        """A Prometheus server (config: its YAML file; data_dir: its TSDB) listening on
        HOST:PORT; waits for /-/ready. Returns (process, URL, log path)."""
        binary = binary or prometheus_binary()
        if not binary:
            raise StartFailed("prometheus is not installed")
        url = "http://%s:%d" % (host, port)
        proc, log_path = self.start("prometheus", [
            binary, "--config.file=" + config, "--storage.tsdb.path=" + data_dir,
            "--web.listen-address=%s:%d" % (host, port), "--storage.tsdb.retention.time=1d",
            *extra], log_path, new_session)
        wait_http(url + "/-/ready", timeout_s, proc, "prometheus", log_path)
        return proc, url, log_path

    def haproxy(self, config, ready_url=None, binary=None, log_path=None, timeout_s=30,
                new_session=False):
        """HAProxy in the foreground (-db) on a config file, checked first with -c; waits
        for ready_url (e.g. its stats frontend) to answer 200 when given. Returns (process,
        log path); its stderr (server UP/DOWN transitions included) goes to the log."""
        binary = binary or shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(binary):
            raise StartFailed("haproxy is not installed")
        check = subprocess.run([binary, "-c", "-f", config], capture_output=True, text=True)
        if check.returncode != 0:
            raise StartFailed("haproxy rejects %s:\n%s%s" % (config, check.stdout, check.stderr))
        proc, log_path = self.start("haproxy", [binary, "-f", config, "-db"], log_path,
                                    new_session)
        if ready_url:
            wait_http(ready_url, timeout_s, proc, "haproxy", log_path)
        return proc, log_path

    def terminate_all(self, timeout_s=10):
        """Like stop_all, but all at once: SIGTERM to every live process, then wait for
        them together (a draining cloud's delay is waited for once, not once each);
        SIGKILL to what is left after timeout_s."""
        live = [p for p in self.procs if p.poll() is None]
        for p in live:
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
        deadline = time.time() + timeout_s
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (bound to port 0, read, closed)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def prometheus_binary():
    """The Prometheus server binary, or None."""
    found = shutil.which("prometheus")
    if found:
        return found
    return "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None


def http_get(url, timeout_s=2.0):
    """(HTTP status, body text) of a GET, or (None, reason) when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError) as e:  # refused, reset, timed out
        return None, str(e)


def wait_http(url, timeout_s=30, proc=None, name=None, log_path=None, status=200):
    """Waits until GET url answers `status`; raises StartFailed when proc exits first
    or the time is up."""
    deadline = time.time() + timeout_s
    last = None
    while time.time() < deadline:
        code, body = http_get(url, 1.0)
        if code == status:
            return body
        last = (code, body[:200])
        if proc is not None and proc.poll() is not None:
            raise StartFailed("%s exited with %d (log: %s)" % (name or url, proc.returncode,
                                                              log_path))
        time.sleep(0.1)
    raise StartFailed("%s: %s did not answer %d within %d s (last: %s; log: %s)"
                      % (name or "server", url, status, timeout_s, last, log_path))


def parse_metrics(text):
    """Prometheus text format to {(name, ((label, value), ...)): value}, labels sorted.
    Enough for what DeepCut and HAProxy serve (no escaped quotes in label values)."""
    samples = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_text, value_text = rest.rsplit("}", 1)
            labels = []
            for part in labels_text.split('",'):
                if "=" in part:
                    k, v = part.split("=", 1)
                    labels.append((k.strip(), v.strip().strip('"')))
            key = (name, tuple(sorted(labels)))
        else:
            name, value_text = line.split(None, 1)
            key = (name, ())
        try:
            samples[key] = float(value_text.split()[0])
        except (ValueError, IndexError):
            continue
    return samples


def read_metrics(url, timeout_s=2.0):
    """Scrapes url (a server's base URL, or its /metrics) and parses it; None when it
    does not answer 200."""
    if not url.rstrip("/").endswith("/metrics"):
        url = url.rstrip("/") + "/metrics"
    code, body = http_get(url, timeout_s)
    return parse_metrics(body) if code == 200 else None


def metric(samples, name, **labels):
    """The sum of the samples named `name` whose labels include `labels` (0.0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in (samples or {}).items() if n == name and want <= set(ls))
