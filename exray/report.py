"""The report's markdown and plot, and writing files whole."""
import os
import tempfile


def markdown(rep):
    lines = [f"# deepcut-exray: {'ok' if rep['ok'] else 'DIVERGES'}", "",
             f"Log `{rep['log']}` ({rep['records']} records of {rep['model'].get('name')}) against "
             f"the reference `{rep['reference']}`.", ""]
    fd = rep["first_divergence"]
    lines.append(f"First divergence: **{fd['stage']}**" + (f", layer `{fd['layer']}`" if fd and fd["layer"] else "")
                 if fd else "First divergence: none.")
    lines += ["", "| stage | layer | check | message |", "|---|---|---|---|"]
    lines += [f"| {f['stage']} | {f['layer'] or ''} | {f['check']} | {f['message']} |" for f in rep["findings"]]
    if not rep["findings"]:
        lines.append("| | | | no finding |")
    a = rep["answer_agreement"]
    lines += ["", f"Answers: the edge's exit agrees with the reference on {a['end_to_end']:.2%} of the "
              f"frames end to end, {a['exit_on_edge_features']:.2%} on the edge's own features.", "",
              "| stage | layer | metric | mean | max | tolerance | diverges |", "|---|---|---|---|---|---|---|"]
    for s in rep["stages"]:
        lines.append(f"| {s['stage']} | {s['layer'] or ''} | {s['metric']} | {s['mean']:.3g} | "
                     f"{s['max']:.3g} | {s['tolerance']:g} | {'**yes**' if s['diverges'] else 'no'} |")
    st = rep["latency"]["stages_ms"]
    lines += ["", "Mean time per stage (ms): " + ", ".join(f"{k} {v:.3f}" for k, v in st.items()), "",
              "Slowest layers:", "", "| part | layer | mean ms | max ms |", "|---|---|---|---|"]
    for r in rep["latency"]["layers"][:8]:
        lines.append(f"| {r['part']} | {r['layer']} | {r['mean_ms']:.4f} | {r['max_ms']:.4f} |")
    return "\n".join(lines) + "\n"


def plot(rep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [s for s in rep["stages"]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5))
    labels = [f"{s['stage']}:{(s['layer'] or '').replace('onnx_node!', '')[-22:]}" for s in rows]
    vals = [max(s["mean"], 1e-9) for s in rows]
    colours = ["tab:red" if s["diverges"] else "tab:green" for s in rows]
    a1.barh(range(len(rows)), vals, color=colours)
    a1.set_yticks(range(len(rows)))
    a1.set_yticklabels(labels, fontsize=7)
    a1.invert_yaxis()
    a1.set_xscale("log")
    a1.axvline(rep["tolerance"], color="k", ls="--", lw=1)
    a1.set_xlabel("nRMSE vs reference (quantize: share of values on another level)")
    a1.set_title("where the edge diverges" + ("" if rep["ok"] else f": {rep['first_divergence']['stage']}"))
    lat = rep["latency"]["layers"][:12]
    a2.barh(range(len(lat)), [r["mean_ms"] for r in lat])
    a2.set_yticks(range(len(lat)))
    a2.set_yticklabels([f"{r['part']}:{r['layer'].replace('onnx_node!', '')[-26:]}" for r in lat], fontsize=7)
    a2.invert_yaxis()
    a2.set_xlabel("mean ms per recorded frame")
    a2.set_title("slowest layers")
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True)


def write_atomically(path, write, binary=False):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".exray-", dir=d)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
