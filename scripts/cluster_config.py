"""Configuration text for a local DeepCut cluster: HAProxy in front of cloud replicas
(TCP mode, each replica's /ready as its health check) and Prometheus scraping every
process. Used by scripts/cluster.py, which writes them into its run directory, and by
tests that import it. Standard library only.

    haproxy_config([(5555, 9100), (5556, 9101)], 5500, stats_port=8404)
    prometheus_config({"deepcut-cloud": ["127.0.0.1:9100"],
                       "deepcut-edge": [("127.0.0.1:9200", {"edge": "edge0"})]})
"""
import json


def _backend(entry, host):
    """(port, metrics_port) or (host, port, metrics_port) -> (host, port, metrics_port)."""
    if len(entry) == 2:
        return (host, int(entry[0]), int(entry[1]))
    if len(entry) == 3:
        return (entry[0], int(entry[1]), int(entry[2]))
    raise ValueError("a backend is (port, metrics_port) or (host, port, metrics_port): %r"
                     % (entry,))


def haproxy_config(backends, listen_port, listen_host="127.0.0.1", backend_host="127.0.0.1",
                   balance="leastconn", stats_port=None, stats_host="127.0.0.1",
                   check_inter="250ms", fall=1, rise=2, timeout_check="1s",
                   timeout_connect="1s", timeout_session="1h", retries=3, maxconn=4096,
                   names=None):
    """HAProxy's configuration (text) for edges reaching cloud replicas through one port.

    backends: one entry per replica, (port, metrics_port) on backend_host or
    (host, port, metrics_port): its ZeroMQ port and the port of its --metrics-listen,
    whose /ready is the health check (200 while serving, 503 from SIGTERM on, so a
    draining replica leaves the rotation while it still answers what it has).
    listen_port: where the edges connect (--cloud tcp://LISTEN_HOST:LISTEN_PORT).
    balance: leastconn (HAProxy's advice for long sessions: an edge holds one TCP
    connection for its whole run) or roundrobin.
    stats_port: when given, a `frontend stats` in HTTP mode there: HAProxy's own
    Prometheus exporter on /metrics (haproxy_* series; needs a build with PROMEX, as
    Debian's is) and the stats page on /stats (CSV: /stats;csv).
    names: the servers' names (default cloud0, cloud1, ...).
    """
    rows = [_backend(b, backend_host) for b in backends]
    if not rows:
        raise ValueError("haproxy_config needs at least one backend")
    if balance not in ("leastconn", "roundrobin", "first", "source"):
        raise ValueError("unsupported balance %r" % balance)
    names = list(names) if names is not None else ["cloud%d" % i for i in range(len(rows))]
    if len(names) != len(rows):
        raise ValueError("%d names for %d backends" % (len(names), len(rows)))
    servers = "\n".join(
        "  server %s %s:%d check port %d inter %s fall %d rise %d"
        % (name, host, port, mport, check_inter, fall, rise)
        for name, (host, port, mport) in zip(names, rows))
    text = """# DeepCut edges -> HAProxy (TCP) -> deepcut-cloud replicas. Written by
# scripts/cluster_config.py.
global
  maxconn %(maxconn)d

defaults
  mode tcp
  # An edge keeps its ZeroMQ connection for the whole run: long client/server
  # timeouts, or HAProxy would cut idle edges (an edge-only policy sends nothing).
  timeout connect %(timeout_connect)s
  timeout client %(timeout_session)s
  timeout server %(timeout_session)s
  # A health check may take this long to answer (connect: min(timeout connect, inter)).
  timeout check %(timeout_check)s
  # A connection to a replica that has just died is tried again, on another replica.
  retries %(retries)d
  option redispatch

frontend edges
  bind %(listen_host)s:%(listen_port)d
  default_backend clouds

backend clouds
  balance %(balance)s
  # Each replica's readiness probe on its metrics port: out of rotation on the first
  # failed check (SIGTERM makes it 503; kill -9 refuses the connection), back after two.
  option httpchk GET /ready
  http-check expect status 200
%(servers)s
""" % dict(maxconn=maxconn, timeout_connect=timeout_connect, timeout_session=timeout_session,
           timeout_check=timeout_check, retries=retries, listen_host=listen_host,
           listen_port=int(listen_port), balance=balance, servers=servers)
    if stats_port:
        text += """
frontend stats
  mode http
  bind %s:%d
  timeout client 10s
  http-request use-service prometheus-exporter if { path /metrics }
  stats enable
  stats uri /stats
  stats refresh 2s
""" % (stats_host, int(stats_port))
    return text


def prometheus_config(jobs, scrape_interval="1s", scrape_timeout=None):
    """Prometheus's configuration (YAML text). jobs: {job name: [target, ...]}, a target
    "HOST:PORT" or ("HOST:PORT", {label: value}); each is scraped on /metrics.
    scrape_timeout defaults to scrape_interval (Prometheus's own default, 10 s, would
    exceed a short interval and be refused)."""
    q = json.dumps  # a JSON string is a YAML string
    lines = ["# Written by scripts/cluster_config.py.",
             "global:",
             "  scrape_interval: %s" % scrape_interval,
             "  scrape_timeout: %s" % (scrape_timeout or scrape_interval),
             "  evaluation_interval: %s" % scrape_interval,
             "scrape_configs:"]
    for job, targets in jobs.items():
        if not targets:
            continue
        lines += ["  - job_name: %s" % q(job), "    metrics_path: /metrics", "    static_configs:"]
        for t in targets:
            address, labels = (t, {}) if isinstance(t, str) else (t[0], dict(t[1]))
            lines.append("      - targets: [%s]" % q(address))
            if labels:
                lines.append("        labels: {%s}" % ", ".join(
                    "%s: %s" % (k, q(str(v))) for k, v in sorted(labels.items())))
    return "\n".join(lines) + "\n"
