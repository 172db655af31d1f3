#!/usr/bin/env python3
"""Checks deploy/ (docs/deploy.md) without a cluster or a container runtime.

    /usr/bin/python3 tests/deploy/test_manifests.py --root /work/main [--bin-dir BUILD]

What it checks: every YAML under deploy/k8s parses and names itself; each
kustomization lists exactly the files beside it; the cloud Deployment's probes,
grace period, resources, Services, HPA, adapter rule and PDB agree with each other
and with the container's own arguments; the Dockerfile's bases, entry point, user,
ports and COPY sources are sound; and every flag the manifests and the Dockerfile
pass exists in the binary's --help (when the binary is built and already has
--metrics-listen; otherwise that check is skipped with a note). With kubectl on
PATH it also renders each kustomization offline (`kubectl kustomize`).

Standard library and PyYAML only. Exit 0 when every check passes, 1 otherwise.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

CLOUD = "deepcut-cloud"  # the Deployment, its headless Service and its HPA target
NAMESPACE = "deepcut"


class CheckFailed(Exception):
    pass


class Skipped(Exception):
    pass


def require(cond, message):
    if not cond:
        raise CheckFailed(message)


# ---------------------------------------------------------------------------
# Reading the files


def yaml_files(k8s_dir):
    out = []
    for dirpath, dirnames, filenames in os.walk(k8s_dir):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith((".yaml", ".yml")):
                out.append(os.path.join(dirpath, name))
    return out


def load_all(k8s_dir):
    """{path: [documents]}; a parse error is a failure of the first check."""
    docs = {}
    for path in yaml_files(k8s_dir):
        with open(path, encoding="utf-8") as f:
            try:
                docs[path] = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                raise CheckFailed(f"{path}: does not parse: {e}")
    return docs


def parse_args_list(args):
    """['--a', 'x', '--b=y', '--c'] -> {'--a': ['x'], '--b': ['y'], '--c': [None]}."""
    flags = {}
    i = 0
    while i < len(args):
        tok = str(args[i])
        if tok.startswith("--"):
            if "=" in tok:
                name, value = tok.split("=", 1)
            elif i + 1 < len(args) and not str(args[i + 1]).startswith("--"):
                name, value = tok, str(args[i + 1])
                i += 1
            else:
                name, value = tok, None
            flags.setdefault(name, []).append(value)
        i += 1
    return flags


def one_value(flags, name, where):
    values = flags.get(name)
    require(values and values[0] is not None, f"{where}: no {name} VALUE in the container args")
    require(len(values) == 1, f"{where}: {name} given {len(values)} times")
    return values[0]


def port_of(endpoint, where):
    """tcp://0.0.0.0:5555 or 0.0.0.0:9100 -> 5555 / 9100."""
    m = re.search(r":(\d+)$", endpoint)
    require(m, f"{where}: no port in {endpoint!r}")
    return int(m.group(1))


def parse_dockerfile(path):
    """[(stage_name, [(INSTRUCTION, rest)])], continuation lines joined, comments dropped."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    instructions, current = [], ""
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # Docker drops comment lines, also inside a continuation
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
        current = ""
    stages = []
    for word, rest in instructions:
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            require(m, f"{path}: cannot read FROM {rest!r}")
            stages.append({"base": m.group(1), "name": m.group(2) or str(len(stages)), "ins": []})
        else:
            require(stages, f"{path}: {word} before the first FROM")
            stages[-1]["ins"].append((word, rest))
    return stages


def last(stage_ins, word, stages_by_name, stage):
    """The last `word` instruction of a stage, inherited through FROM <stage>."""
    seen = set()
    while stage and stage["name"] not in seen:
        seen.add(stage["name"])
        found = [rest for w, rest in stage["ins"] if w == word]
        if found:
            return found[-1]
        stage = stages_by_name.get(stage["base"])
    return None


def exec_form(rest, where):
    require(rest is not None and rest.startswith("["),
            f"{where}: not in exec (JSON) form; a shell as PID 1 would swallow SIGTERM")
    try:
        value = json.loads(rest)
    except json.JSONDecodeError as e:
        raise CheckFailed(f"{where}: bad JSON {rest!r}: {e}")
    require(isinstance(value, list) and all(isinstance(v, str) for v in value),
            f"{where}: not a list of strings")
    return value


def dockerignore_patterns(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]


def _glob_to_regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def ignored(rel_path, patterns):
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    rel_path = rel_path.strip("/")
    if rel_path in ("", "."):
        return False
    parts = rel_path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pat in patterns:
        negate = pat.startswith("!")
        rx = _glob_to_regex(os.path.normpath(pat.lstrip("!").strip("/")))
        if any(rx.match(p) for p in prefixes):
            excluded = not negate
    return excluded


# ---------------------------------------------------------------------------
# The model of deploy/ the checks share


class Deploy:
    def __init__(self, root, bin_dir):
        self.root = root
        self.bin_dir = bin_dir
        self.k8s = os.path.join(root, "deploy", "k8s")
        self.dockerfile = os.path.join(root, "deploy", "Dockerfile")
        require(os.path.isdir(self.k8s), f"{self.k8s}: missing")
        require(os.path.isfile(self.dockerfile), f"{self.dockerfile}: missing")
        self.docs = load_all(self.k8s)
        self.kustomizations = {}  # dir -> Kustomization document
        self.resources = []  # (path, doc, effective namespace)
        for path, docs in self.docs.items():
            if os.path.basename(path) in ("kustomization.yaml", "kustomization.yml"):
                self.kustomizations[os.path.dirname(path)] = docs[0] if docs else {}
        for path, docs in self.docs.items():
            if os.path.dirname(path) in self.kustomizations and path.endswith(
                    ("kustomization.yaml", "kustomization.yml")):
                continue
            kz = self.kustomizations.get(os.path.dirname(path), {})
            for d in docs:
                meta = d.get("metadata") or {} if isinstance(d, dict) else {}
                ns = kz.get("namespace") or meta.get("namespace")
                self.resources.append((path, d, ns))
        self.stages = parse_dockerfile(self.dockerfile)
        self.stages_by_name = {s["name"]: s for s in self.stages}

    def rel(self, path):
        return os.path.relpath(path, self.root)

    def find(self, kind, name, namespace=NAMESPACE):
        hits = [d for _, d, ns in self.resources
                if d.get("kind") == kind and d.get("metadata", {}).get("name") == name
                and (kind == "Namespace" or ns == namespace)]
        require(len(hits) == 1, f"expected one {kind} {namespace}/{name}, found {len(hits)}")
        return hits[0]

    def of_kind(self, kind):
        return [(p, d, ns) for p, d, ns in self.resources if d.get("kind") == kind]

    def cloud(self):
        dep = self.find("Deployment", CLOUD)
        pod = dep["spec"]["template"]
        containers = pod["spec"]["containers"]
        require(len(containers) == 1, f"Deployment {CLOUD}: expected one container")
        c = containers[0]
        return dep, pod, c, parse_args_list(c.get("args") or [])

    def container_port(self, container, port, where):
        """A probe's or Service's port (number or name) -> the container's port number."""
        if isinstance(port, int):
            return port
        named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
        require(named, f"{where}: port {port!r} is not a named port of container {container['name']}")
        return named[0]

    def binary_for(self, name):
        """deepcut-cloud -> <bin-dir>/cloud/deepcut-cloud, from the Dockerfile's COPY --from=builder."""
        builder = self.stages_by_name.get("builder")
        workdir = (last(builder["ins"] if builder else [], "WORKDIR", self.stages_by_name, builder)
                   or "/").rstrip("/") + "/"
        for stage in self.stages:
            for word, rest in stage["ins"]:
                if word != "COPY" or "--from=builder" not in rest:
                    continue
                for src in rest.split()[:-1]:
                    if src.startswith("--") or os.path.basename(src) != name:
                        continue
                    rel = src[len(workdir):] if src.startswith(workdir) else src.lstrip("/")
                    if rel.startswith("build/"):
                        return os.path.join(self.bin_dir, rel[len("build/"):])
                    return os.path.join(self.root, rel)
        return None


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---------------------------------------------------------------------------
# The checks: each returns a line saying what it saw, raises CheckFailed or Skipped.


def check_documents_named(d):
    n = 0
    for path, docs in d.docs.items():
        require(docs, f"{d.rel(path)}: no document")
        for doc in docs:
            require(isinstance(doc, dict), f"{d.rel(path)}: a document is not a mapping")
            for key in ("apiVersion", "kind"):
                require(doc.get(key), f"{d.rel(path)}: a document has no {key}")
            if doc["kind"] != "Kustomization":  # a Kustomization needs no name
                require((doc.get("metadata") or {}).get("name"),
                        f"{d.rel(path)}: {doc['kind']} has no metadata.name")
            n += 1
    return f"{n} documents in {len(d.docs)} files parse and have apiVersion, kind, metadata.name"


def check_kustomizations_list_files(d):
    dirs_with_yaml = {os.path.dirname(p) for p in d.docs}
    for dirpath in sorted(dirs_with_yaml):
        require(dirpath in d.kustomizations,
                f"{d.rel(dirpath)}: YAML without a kustomization.yaml listing it")
    lines = []
    for dirpath, kz in sorted(d.kustomizations.items()):
        require(kz.get("kind") == "Kustomization", f"{d.rel(dirpath)}/kustomization.yaml: kind is not Kustomization")
        listed = kz.get("resources") or []
        require(len(listed) == len(set(listed)), f"{d.rel(dirpath)}: a resource is listed twice")
        files = {r for r in listed if not os.path.isdir(os.path.join(dirpath, r))}
        subdirs = [r for r in listed if os.path.isdir(os.path.join(dirpath, r))]
        for sub in subdirs:
            require(os.path.normpath(os.path.join(dirpath, sub)) in d.kustomizations,
                    f"{d.rel(dirpath)}: lists directory {sub} without a kustomization")
        present = {os.path.basename(p) for p in d.docs if os.path.dirname(p) == dirpath
                   and os.path.basename(p) not in ("kustomization.yaml", "kustomization.yml")}
        require(files == present, f"{d.rel(dirpath)}/kustomization.yaml lists {sorted(files)}, "
                                  f"the directory has {sorted(present)}")
        lines.append(f"{d.rel(dirpath)} ({len(files)})")
    return "each kustomization lists exactly its directory's files: " + ", ".join(lines)


def check_namespaces(d):
    d.find("Namespace", NAMESPACE)
    for path, doc, ns in d.resources:
        if doc["kind"] == "Namespace":
            continue
        kz = d.kustomizations.get(os.path.dirname(path), {})
        own = (doc.get("metadata") or {}).get("namespace")
        require(not (own and kz.get("namespace") and own != kz["namespace"]),
                f"{d.rel(path)}: metadata.namespace {own} but the kustomization sets {kz.get('namespace')}")
        require(ns, f"{d.rel(path)}: {doc['kind']} {doc['metadata']['name']} has no namespace")
    others = sorted({ns for _, doc, ns in d.resources if doc["kind"] != "Namespace" and ns != NAMESPACE})
    return (f"Namespace {NAMESPACE} exists; every other resource is in {NAMESPACE}"
            + (f" except the adapter's ({', '.join(others)})" if others else ""))


def check_deployment_selects_its_pods(d):
    dep, pod, c, _ = d.cloud()
    labels = pod["metadata"]["labels"]
    require(selects(dep["spec"]["selector"]["matchLabels"], labels),
            f"Deployment {CLOUD}: selector does not match its pod template labels")
    return f"Deployment {CLOUD}: selector {dep['spec']['selector']['matchLabels']} matches its pods"


def check_probes(d):
    _, _, c, flags = d.cloud()
    metrics_port = port_of(one_value(flags, "--metrics-listen", CLOUD), CLOUD)
    seen = []
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/ready")):
        p = c.get(probe)
        require(p and "httpGet" in p, f"{CLOUD}: no httpGet {probe}")
        require(p["httpGet"].get("path") == path,
                f"{CLOUD}: {probe} path {p['httpGet'].get('path')!r}, expected {path}")
        port = d.container_port(c, p["httpGet"].get("port"), f"{CLOUD} {probe}")
        require(port == metrics_port,
                f"{CLOUD}: {probe} on port {port}, --metrics-listen says {metrics_port}")
        seen.append(f"{probe} GET {path} :{port}")
    r = c["readinessProbe"]
    require(r.get("periodSeconds") == 2 and r.get("failureThreshold") == 1,
            f"{CLOUD}: readinessProbe should be periodSeconds 2, failureThreshold 1 "
            f"(leave the Service at the first 503), is {r.get('periodSeconds')}/{r.get('failureThreshold')}")
    return "; ".join(seen) + " = --metrics-listen port; readiness every 2 s, 1 failure"


def check_grace_covers_drain(d):
    _, pod, _, flags = d.cloud()
    delay = float(one_value(flags, "--drain-delay-s", CLOUD))
    timeout = float(one_value(flags, "--drain-timeout-s", CLOUD))
    grace = pod["spec"].get("terminationGracePeriodSeconds")
    require(grace is not None, f"{CLOUD}: no terminationGracePeriodSeconds (default 30 s, say it)")
    require(grace > delay + timeout,
            f"{CLOUD}: terminationGracePeriodSeconds {grace} <= drain delay {delay} + timeout {timeout}")
    return f"terminationGracePeriodSeconds {grace} > --drain-delay-s {delay:g} + --drain-timeout-s {timeout:g}"


def check_resources_fit_threads(d):
    _, _, c, flags = d.cloud()
    threads = int(one_value(flags, "--threads", CLOUD))
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        require(res.get(kind, {}).get("cpu") and res.get(kind, {}).get("memory"),
                f"{CLOUD}: resources.{kind} needs cpu and memory")
    cpu = str(res["requests"]["cpu"])
    cores = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    require(cores >= threads, f"{CLOUD}: requests.cpu {cpu} < --threads {threads}")
    return f"requests.cpu {cpu} >= --threads {threads}; requests and limits set"


def check_headless_service(d):
    _, pod, c, flags = d.cloud()
    svc = d.find("Service", CLOUD)
    spec = svc["spec"]
    require(spec.get("clusterIP") == "None", f"Service {CLOUD}: clusterIP is {spec.get('clusterIP')!r}, not None")
    require(spec.get("publishNotReadyAddresses") is False,
            f"Service {CLOUD}: publishNotReadyAddresses must be false (draining replicas leave DNS)")
    require(selects(spec.get("selector"), pod["metadata"]["labels"]),
            f"Service {CLOUD}: selector {spec.get('selector')} does not select the Deployment's pods")
    listen_ports = {port_of(v, CLOUD) for v in flags.get("--listen", []) if v}
    require(listen_ports, f"{CLOUD}: no --listen in the container args")
    matched = []
    for p in spec.get("ports", []):
        target = d.container_port(c, p.get("targetPort", p["port"]), f"Service {CLOUD}")
        require(target in listen_ports, f"Service {CLOUD}: targetPort {target} is not a --listen port {listen_ports}")
        matched.append(p["port"])
    require(any(p in listen_ports for p in matched),
            f"Service {CLOUD}: port {matched} differs from the --listen port {sorted(listen_ports)}")
    return f"Service {CLOUD}: headless, not-ready excluded, selects the pods, port {matched} = --listen"


def check_metrics_service(d):
    _, pod, c, flags = d.cloud()
    metrics_port = port_of(one_value(flags, "--metrics-listen", CLOUD), CLOUD)
    svc = d.find("Service", CLOUD + "-metrics")
    require(selects(svc["spec"].get("selector"), pod["metadata"]["labels"]),
            f"Service {CLOUD}-metrics: does not select the Deployment's pods")
    for p in svc["spec"]["ports"]:
        target = d.container_port(c, p.get("targetPort", p["port"]), f"Service {CLOUD}-metrics")
        require(target == metrics_port, f"Service {CLOUD}-metrics: targets {target}, metrics are on {metrics_port}")
    ann = pod["metadata"].get("annotations") or {}
    require(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(metrics_port),
            f"{CLOUD}: prometheus.io/scrape and prometheus.io/port ({metrics_port}) annotations")
    return f"Service {CLOUD}-metrics and the scrape annotations point at :{metrics_port}"


def adapter_metric_names(d):
    """Names the prometheus-adapter rules expose: name.as applied to the seriesQuery's metric."""
    names = set()
    for path, doc, _ in d.of_kind("ConfigMap"):
        for key, text in (doc.get("data") or {}).items():
            if not key.endswith((".yaml", ".yml")):
                continue
            config = yaml.safe_load(text) or {}
            for rule in config.get("rules") or []:
                for field in ("seriesQuery", "resources", "name", "metricsQuery"):
                    require(field in rule, f"{d.rel(path)}: an adapter rule has no {field}")
                series = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", rule["seriesQuery"].strip("'\" "))
                require(series, f"{d.rel(path)}: cannot read the metric of {rule['seriesQuery']!r}")
                m = re.search(rule["name"].get("matches", ".*"), series.group(0))
                require(m, f"{d.rel(path)}: name.matches does not match {series.group(0)}")
                as_ = rule["name"].get("as")
                exposed = series.group(0) if as_ is None else m.expand(re.sub(r"\$\{(\d+)\}", r"\\\1", as_))
                overrides = (rule["resources"].get("overrides") or {})
                require("pod" in overrides or rule["resources"].get("template"),
                        f"{d.rel(path)}: rule {exposed} maps no label to pods; a Pods metric needs one")
                names.add(exposed)
    return names


def check_hpa(d):
    dep, _, _, _ = d.cloud()
    hpas = [doc for _, doc, ns in d.of_kind("HorizontalPodAutoscaler") if ns == NAMESPACE]
    require(len(hpas) == 1, f"expected one HorizontalPodAutoscaler, found {len(hpas)}")
    hpa = hpas[0]
    require(hpa["apiVersion"] == "autoscaling/v2", f"HPA: apiVersion {hpa['apiVersion']}, want autoscaling/v2")
    ref = hpa["spec"]["scaleTargetRef"]
    require(ref.get("kind") == "Deployment" and ref.get("name") == dep["metadata"]["name"],
            f"HPA: targets {ref.get('kind')} {ref.get('name')}, not Deployment {CLOUD}")
    lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
    replicas = dep["spec"].get("replicas", 1)
    require(lo <= replicas <= hi, f"HPA: Deployment replicas {replicas} outside [{lo}, {hi}]")
    exposed = adapter_metric_names(d)
    wanted = []
    for metric in hpa["spec"].get("metrics", []):
        require(metric["type"] == "Pods", f"HPA: metric type {metric['type']}; only Pods metrics are set up")
        name = metric["pods"]["metric"]["name"]
        require(name in exposed, f"HPA: metric {name} is not one the adapter rules expose {sorted(exposed)}")
        require(metric["pods"]["target"]["type"] == "AverageValue", f"HPA: {name} target is not AverageValue")
        wanted.append(f"{name} avg {metric['pods']['target']['averageValue']}")
    require(wanted, "HPA: no metrics")
    down = (hpa["spec"].get("behavior") or {}).get("scaleDown") or {}
    require(down.get("stabilizationWindowSeconds", 0) > 0, "HPA: no scale-down stabilisation window")
    return (f"HPA -> Deployment {CLOUD}, {lo}..{hi} replicas (Deployment {replicas}), "
            f"{', '.join(wanted)} exposed by the adapter rules, scale-down window {down['stabilizationWindowSeconds']} s")


def check_pdb(d):
    _, pod, _, _ = d.cloud()
    pdb = d.find("PodDisruptionBudget", CLOUD)
    require(selects(pdb["spec"]["selector"].get("matchLabels"), pod["metadata"]["labels"]),
            f"PDB {CLOUD}: does not select the Deployment's pods")
    require(pdb["spec"].get("maxUnavailable") == 1, f"PDB {CLOUD}: maxUnavailable is not 1")
    hpa_min = [doc["spec"].get("minReplicas", 1) for _, doc, _ in d.of_kind("HorizontalPodAutoscaler")]
    require(all(m > 1 for m in hpa_min), "PDB: with minReplicas 1 a drain leaves no replica")
    return f"PDB {CLOUD}: maxUnavailable 1 over the Deployment's pods"


def check_edge_examples(d):
    """An edge's --cloud names tcp://SERVICE.NAMESPACE.svc.cluster.local:PORT of a headless Service."""
    edges = []
    for path, doc, ns in d.of_kind("Deployment"):
        for c in doc["spec"]["template"]["spec"]["containers"]:
            flags = parse_args_list(c.get("args") or [])
            if "--cloud" not in flags:
                continue
            for endpoint in one_value(flags, "--cloud", c["name"]).split(","):
                m = re.match(r"tcp://([^:/]+):(\d+)$", endpoint)
                require(m, f"{d.rel(path)}: --cloud {endpoint!r} is not tcp://host:port")
                host, port = m.group(1), int(m.group(2))
                svc_m = re.match(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local$", host)
                if svc_m:
                    svc = d.find("Service", svc_m.group(1), svc_m.group(2))
                    require(svc["spec"].get("clusterIP") == "None",
                            f"{d.rel(path)}: --cloud {host} is not a headless Service")
                    require(port in [p["port"] for p in svc["spec"]["ports"]],
                            f"{d.rel(path)}: --cloud port {port} is not a port of Service {host}")
                edges.append(f"{doc['metadata']['name']} -> {endpoint}")
    if not edges:
        raise Skipped("no edge Deployment in deploy/k8s")
    return "edge --cloud endpoints name the headless Service and its port: " + ", ".join(edges)


def check_dockerfile(d):
    rel = d.rel(d.dockerfile)
    bases = [s["base"] for s in d.stages if s["base"] not in d.stages_by_name]
    builder = d.stages_by_name.get("builder")
    require(builder and builder["base"] == "debian:bookworm",
            f"{rel}: the builder stage must be FROM debian:bookworm (scripts/install-deps.sh targets it)")
    for b in bases:
        require(b in ("debian:bookworm", "debian:bookworm-slim"), f"{rel}: base image {b} is not Debian bookworm")
    require(any("install-deps.sh run" in rest for w, rest in builder["ins"] if w == "RUN"),
            f"{rel}: the builder does not run scripts/install-deps.sh run")
    require(any("CMAKE_BUILD_TYPE=Release" in rest for w, rest in builder["ins"] if w == "RUN"),
            f"{rel}: the builder does not build Release")
    final = d.stages[-1]
    entry = exec_form(last(final["ins"], "ENTRYPOINT", d.stages_by_name, final), f"{rel} ENTRYPOINT")
    require(any(os.path.basename(x) == CLOUD for x in entry), f"{rel}: the default target's ENTRYPOINT is not {CLOUD}")
    for stage in d.stages:
        if last(stage["ins"], "ENTRYPOINT", d.stages_by_name, stage) is None:
            continue
        user = last(stage["ins"], "USER", d.stages_by_name, stage)
        require(user and re.match(r"\d+(:\d+)?$", user) and not user.startswith("0"),
                f"{rel}: stage {stage['name']} runs as {user!r}; want a numeric non-root USER (runAsNonRoot checks it)")
        stop = last(stage["ins"], "STOPSIGNAL", d.stages_by_name, stage)
        require(stop == "SIGTERM", f"{rel}: stage {stage['name']} STOPSIGNAL {stop!r}, want SIGTERM")
    cmd = exec_form(last(final["ins"], "CMD", d.stages_by_name, final), f"{rel} CMD")
    flags = parse_args_list(cmd)
    exposed = set()
    for w, rest in final["ins"]:
        if w == "EXPOSE":
            exposed |= {int(p.split("/")[0]) for p in rest.split()}
    for flag in ("--listen", "--metrics-listen"):
        port = port_of(one_value(flags, flag, f"{rel} CMD"), f"{rel} CMD")
        require(port in exposed, f"{rel}: {flag} port {port} is not EXPOSEd ({sorted(exposed)})")
    model = one_value(flags, "--model", f"{rel} CMD")
    return (f"{rel}: builder debian:bookworm runs install-deps.sh and builds Release; bases {sorted(set(bases))}; "
            f"exec-form ENTRYPOINT {entry[-1]}, numeric non-root USER, STOPSIGNAL SIGTERM, "
            f"EXPOSE {sorted(exposed)} covers --listen/--metrics-listen; --model {model}")


def check_dockerfile_sources(d):
    rel = d.rel(d.dockerfile)
    ignore_file = d.dockerfile + ".dockerignore"
    patterns = dockerignore_patterns(ignore_file)
    require(patterns, f"{d.rel(ignore_file)}: missing or empty")
    copied = []
    for stage in d.stages:
        for w, rest in stage["ins"]:
            if w != "COPY":
                continue
            parts = rest.split()
            srcs = [s for s in parts[:-1] if not s.startswith("--")]
            if "--from=builder" in rest:
                for src in srcs:  # /src/build/DIR/NAME: DIR/CMakeLists.txt must build NAME
                    m = re.search(r"/build/(.+)/([^/]+)$", src)
                    require(m, f"{rel}: COPY --from=builder {src} is not a build-tree binary")
                    cml = os.path.join(d.root, m.group(1), "CMakeLists.txt")
                    require(os.path.exists(cml) and f"add_executable({m.group(2)} " in open(cml).read(),
                            f"{rel}: {src}: {d.rel(cml)} has no add_executable({m.group(2)} ...)")
                    copied.append(f"{m.group(1)}/{m.group(2)}")
                continue
            for src in srcs:
                require(os.path.exists(os.path.join(d.root, src)), f"{rel}: COPY source {src} is not in the repo")
                require(not ignored(src, patterns), f"{rel}: COPY source {src} is excluded by {d.rel(ignore_file)}")
    for entry in sorted(os.listdir(d.root)):
        if entry.startswith("build") or entry in (".git", "out"):
            require(ignored(entry, patterns), f"{d.rel(ignore_file)}: {entry}/ is sent to the builder")
    return (f"COPY sources exist and pass {d.rel(ignore_file)}; build trees and .git are excluded; "
            f"binaries from the build tree: {', '.join(copied)}")


def help_flags(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", out.stdout + out.stderr))


def check_flags_exist(d):
    uses = []  # (binary name, flags, where)
    for path, doc, _ in d.of_kind("Deployment"):
        for c in doc["spec"]["template"]["spec"]["containers"]:
            command = c.get("command")
            name = os.path.basename(command[-1]) if command else None
            if name is None:  # the image's ENTRYPOINT: the default target's binary
                entry = exec_form(last(d.stages[-1]["ins"], "ENTRYPOINT", d.stages_by_name, d.stages[-1]), "ENTRYPOINT")
                name = os.path.basename(entry[-1])
            uses.append((name, set(parse_args_list(c.get("args") or [])), d.rel(path)))
    for stage in d.stages:
        entry = next((r for w, r in stage["ins"] if w == "ENTRYPOINT"), None)
        if entry is None:
            continue
        entry = exec_form(entry, "ENTRYPOINT")
        cmd = next((r for w, r in stage["ins"] if w == "CMD"), None)
        argv = exec_form(cmd, "CMD") if cmd else []  # what the binary (ENTRYPOINT's last word) gets;
        # tini's own "--" before it is not a program flag
        uses.append((os.path.basename(entry[-1]), set(parse_args_list(argv)), f"Dockerfile stage {stage['name']}"))
    checked, notes = [], []
    for name in sorted({u[0] for u in uses}):
        binary = d.binary_for(name)
        if not binary or not os.access(binary, os.X_OK):
            notes.append(f"{name}: not built at {binary or '?'}")
            continue
        known = help_flags(binary)
        if "--metrics-listen" not in known:
            notes.append(f"{name}: {d.rel(binary)} --help has no --metrics-listen yet (older build)")
            continue
        for uname, flags, where in uses:
            if uname != name:
                continue
            unknown = sorted(f for f in flags if f not in known)
            require(not unknown, f"{where}: {name} has no {', '.join(unknown)} (per {d.rel(binary)} --help)")
            checked.append(f"{where} ({len(flags)} flags)")
    if not checked:
        raise Skipped("flags not checked against --help: " + "; ".join(notes))
    return ("every flag is in the binary's --help: " + ", ".join(checked)
            + (f" [not checked: {'; '.join(notes)}]" if notes else ""))


def check_kustomize_renders(d):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise Skipped("kubectl not on PATH: kustomizations not rendered")
    seen = []
    for dirpath, kz in sorted(d.kustomizations.items()):
        out = subprocess.run([kubectl, "kustomize", dirpath], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, KUBECONFIG=os.devnull))
        require(out.returncode == 0, f"kubectl kustomize {d.rel(dirpath)}: {out.stderr.strip()[-400:]}")
        rendered = [x for x in yaml.safe_load_all(out.stdout) if x]
        want = sum(len(docs) for p, docs in d.docs.items()
                   if os.path.dirname(p) == dirpath and os.path.basename(p) != "kustomization.yaml")
        require(len(rendered) == want, f"kubectl kustomize {d.rel(dirpath)}: {len(rendered)} objects, files hold {want}")
        for obj in rendered:
            if obj["kind"] != "Namespace" and kz.get("namespace"):
                require(obj["metadata"].get("namespace") == kz["namespace"],
                        f"kubectl kustomize {d.rel(dirpath)}: {obj['kind']} {obj['metadata']['name']} "
                        f"not in {kz['namespace']}")
        seen.append(f"{d.rel(dirpath)} ({len(rendered)} objects)")
    return "kubectl kustomize renders offline: " + ", ".join(seen)


CHECKS = [
    check_documents_named,
    check_kustomizations_list_files,
    check_namespaces,
    check_deployment_selects_its_pods,
    check_probes,
    check_grace_covers_drain,
    check_resources_fit_threads,
    check_headless_service,
    check_metrics_service,
    check_hpa,
    check_pdb,
    check_edge_examples,
    check_dockerfile,
    check_dockerfile_sources,
    check_flags_exist,
    check_kustomize_renders,
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="the repository root")
    ap.add_argument("--bin-dir", help="the CMake build tree whose binaries' --help is checked (default ROOT/build)")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    try:
        d = Deploy(root, os.path.abspath(a.bin_dir or os.path.join(root, "build")))
    except CheckFailed as e:
        print(f"FAIL loading deploy/: {e}")
        print("deploy: 0 passed, 1 failed")
        return 1
    passed = failed = skipped = 0
    for check in CHECKS:
        name = check.__name__[len("check_"):]
        try:
            line = check(d)
            print(f"ok    {name}: {line}")
            passed += 1
        except Skipped as e:
            print(f"skip  {name}: {e}")
            skipped += 1
        except CheckFailed as e:
            print(f"FAIL  {name}: {e}")
            failed += 1
        except (KeyError, TypeError, ValueError, IndexError) as e:
            print(f"FAIL  {name}: malformed manifest ({type(e).__name__}: {e})")
            failed += 1
    print(f"deploy: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
