#!/usr/bin/python3
"""deepcut-exray: where does the edge's pipeline diverge from the reference? (ML-EXray)

    deepcut-exray validate --log DIR --reference MODEL_DIR --out report.json
                           [--markdown report.md] [--plot report.png] [--rules RULES.json]

Reads a log that `deepcut-edge --exray-out DIR` wrote (docs/exray.md), replays every logged raw
frame through the reference pipeline -- the training framework's pre-processing
(splitnet/training/data.py: preprocess_frame) and forward pass (splitnet/training/onnx_torch.py:
the reference package's ONNX graphs run by torch, float32), nothing of the C++ runtime -- and
compares stage by stage:

    preprocess  the edge's input tensor    vs the reference's pre-processing of the raw frame
    head        every named layer          vs the reference head run on the edge's input
    quantize    the edge's quantised features vs the reference codec's (the reference package's
                rate and range) on the edge's features
    exit        every named layer, scores  vs the reference exit run on the edge's features

Each stage is fed the edge's own input, so a divergence is located where it arises and not
where it is inherited. A stage diverges when its normalised rMSE (rMSE / standard deviation of the
reference) exceeds --tolerance (quantize: when more than --quantize-tolerance of the values sit on
another level). Where one diverges, built-in checks name a likely cause (channel order, value
range, normalisation, input layout, resize interpolation, quantiser range or levels, a layer
whose output diverges while its input agrees). User rules (--rules, docs/exray.md) assert what
must hold on the edge's tensors. Also: the answers' agreement, end to end (raw frame -> reference
pipeline -> exit answer vs the edge's), and a per-layer latency table.

Exit codes: 0 the log validated (report.ok says whether the edge agrees), 2 bad input (a log
from another model, a truncated or malformed file, a bad option or rule), 5 the run failed.
Nothing is written unless the whole report is.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "splitnet", "training"))
sys.path.insert(0, HERE)

from checks import (STAGES, apply_rules, check_layers, check_same_model, diagnose_preprocess,  # noqa: E402
                    diagnose_quantize, finding, load_rules)
from logfile import BadInput, load_record, read_log  # noqa: E402
from reference import Reference, nrmse, softmax  # noqa: E402
from report import markdown, plot, write_atomically  # noqa: E402

EXIT_BAD_INPUT, EXIT_FAILED = 2, 5


def validate(args):
    from data import preprocess_frame
    t0 = time.time()
    header, index = read_log(args.log)
    ref = Reference(args.reference)
    check_same_model(header, ref)
    check_layers(index, ref)
    rules = load_rules(args.rules) if args.rules else []
    # Every file is read and checked before any comparison.
    records = []
    for i, rec in enumerate(index):
        records.append(load_record(args.log, rec))
        if rec["rate"] not in ref.rates:
            raise BadInput(f"record {rec.get('record')}: rate {rec['rate']!r} is not the reference's")
        if sys.stderr.isatty() or (i + 1) % 50 == 0 or i + 1 == len(index):
            print(f"exray: read {i + 1}/{len(index)} records", file=sys.stderr, flush=True)

    stats = {}   # (stage, layer) -> list of nRMSE over records
    extra = {}   # (stage, layer) -> list of (input nRMSE) where known
    edge_t, ref_t = {}, {}
    latency = {}
    agree, e2e_agree, flips, q_total = 0, 0, 0, 0
    diag = {}
    for n, (rec, arr) in enumerate(zip(index, records)):
        raw = arr["raw"]
        ref_in = preprocess_frame(raw, ref.input)[None]
        edge_in = arr["input"].reshape(ref_in.shape) if arr["input"].size == ref_in.size else arr["input"]
        key = ("preprocess", None)
        stats.setdefault(key, []).append(nrmse(edge_in, ref_in))
        edge_t.setdefault(key, []).append(edge_in)
        ref_t.setdefault(key, []).append(ref_in)
        if stats[key][-1] > args.tolerance and "preprocess" not in diag:
            diag["preprocess"] = diagnose_preprocess(raw, edge_in[0], ref, ref_in[0])

        for part, module, edge_x in (("head", ref.head, edge_in),
                                     ("exit", ref.exit, arr["features"])):
            out, env = ref.run(module, edge_x)
            prev_edge = edge_x
            prev_ref = edge_x
            for layer, value, ms in arr[part]:
                latency.setdefault((part, layer), []).append(ms)
                tensor = ref.layer_tensor(module, layer)
                if tensor is None:
                    continue  # a layer the runtime adds (not in the ONNX graph)
                r = env[tensor]
                k = (part, layer)
                stats.setdefault(k, []).append(nrmse(value, r))
                extra.setdefault(k, []).append(nrmse(prev_edge, prev_ref))
                edge_t.setdefault(k, []).append(value)
                ref_t.setdefault(k, []).append(r)
                prev_edge, prev_ref = value, r
            if part == "exit":
                k = ("exit", "scores")
                stats.setdefault(k, []).append(nrmse(arr["scores"], softmax(out)))
                edge_t.setdefault(("exit", None), []).append(arr["scores"])
                ref_t.setdefault(("exit", None), []).append(softmax(out))
                agree += int(np.argmax(out) == rec["exit_class"])

        # Quantisation at the rate the edge used, on the edge's own features.
        ref_q = ref.quantize(arr["features"].reshape(arr["quantized"].shape), rec["rate"])
        r = ref.rates[rec["rate"]]
        step = (ref.bottleneck["max"] - ref.bottleneck["min"]) / ((1 << r["bits"]) - 1)
        wrong = np.abs(arr["quantized"] - ref_q) > 0.5 * step
        flips += int(wrong.sum())
        q_total += wrong.size
        k = ("quantize", None)
        stats.setdefault(k, []).append(float(wrong.mean()))
        edge_t.setdefault(k, []).append(arr["quantized"])
        ref_t.setdefault(k, []).append(ref_q)
        if wrong.mean() > args.quantize_tolerance and "quantize" not in diag:
            diag["quantize"] = diagnose_quantize(arr["quantized"], ref_q, rec["rate"], ref)

        # End to end: raw frame -> reference pipeline -> the exit's answer.
        z, _ = ref.run(ref.head, ref_in)
        logits, _ = ref.run(ref.exit, z)
        e2e_agree += int(np.argmax(logits) == rec["exit_class"])
        if (n + 1) % 50 == 0 or n + 1 == len(records):
            print(f"exray: compared {n + 1}/{len(records)} records", file=sys.stderr, flush=True)

    count = len(records)
    findings, stages_report = [], []
    first = None
    tol = {"quantize": args.quantize_tolerance}
    for stage in STAGES:
        keys = [k for k in stats if k[0] == stage]
        for k in keys:
            mean = float(np.mean(stats[k]))
            layer = k[1]
            row = {"stage": stage, "layer": layer, "metric": "level_mismatch" if stage == "quantize" else "nrmse",
                   "mean": mean, "max": float(np.max(stats[k])),
                   "tolerance": tol.get(stage, args.tolerance)}
            row["diverges"] = mean > row["tolerance"]
            if k in extra:
                row["input_nrmse"] = float(np.mean(extra[k]))
            stages_report.append(row)
            if not row["diverges"] or (first is not None and first["stage"] != stage):
                continue
            if first is None:
                first = {"stage": stage, "layer": layer if layer != "scores" else None}
                if stage in diag:
                    check, message = diag[stage]
                elif row.get("input_nrmse", 0.0) <= args.tolerance and stage in ("head", "exit"):
                    check = "layer_divergence"
                    message = (f"{layer}: its output diverges from the reference (nRMSE {mean:.3g}) "
                               f"while its input agrees (nRMSE {row.get('input_nrmse', 0.0):.2g}): "
                               f"the layer computes differently (its weights, or the kernel)")
                else:
                    check, message = "divergence", f"nRMSE {mean:.3g} > {row['tolerance']:g}"
                findings.append(finding(stage, first["layer"], check, message))
    agreement = agree / count
    e2e = e2e_agree / count
    if first is None and e2e < 1.0 - args.answer_tolerance:
        first = {"stage": "exit", "layer": None}
        findings.append(finding("exit", None, "answers", f"the edge's answers agree with the "
                                f"reference pipeline's on only {e2e:.2%} of the frames"))
    findings += apply_rules(rules, edge_t, ref_t, e2e)

    lat = sorted(({"part": p, "layer": l, "mean_ms": float(np.mean(v)), "max_ms": float(np.max(v))}
                  for (p, l), v in latency.items()), key=lambda r: -r["mean_ms"])
    stage_ms = {k: float(np.mean([r.get("times_ms", {}).get(k, 0.0) for r in index]))
                for k in ("preprocess", "head", "exit", "quantize")}
    return {
        "format": "deepcut-exray-report/1",
        "ok": not findings,
        "findings": findings,
        "first_divergence": first,
        "log": os.path.abspath(args.log),
        "reference": os.path.abspath(args.reference),
        "model": header["model"],
        "reference_model": ref.manifest["name"],
        "records": count,
        "answer_agreement": {"exit_on_edge_features": agreement, "end_to_end": e2e},
        "quantize_level_mismatch": flips / max(1, q_total),
        "tolerance": args.tolerance,
        "quantize_tolerance": args.quantize_tolerance,
        "stages": stages_report,
        "latency": {"stages_ms": stage_ms, "layers": lat},
        "seconds": round(time.time() - t0, 2),
    }


def main(argv=None):
    p = argparse.ArgumentParser(prog="deepcut-exray", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Exit codes: 0 validated, 2 bad input, 5 failed.")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="compare a log with a reference package, stage by stage",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    v.add_argument("--log", required=True, help="the directory deepcut-edge --exray-out wrote")
    v.add_argument("--reference", required=True, help="the reference model package")
    v.add_argument("--out", required=True, help="report.json")
    v.add_argument("--markdown", help="report.md")
    v.add_argument("--plot", help="report.png: nRMSE per stage and layer, slowest layers")
    v.add_argument("--rules", help="user assertions (deepcut-exray-rules/1, docs/exray.md)")
    v.add_argument("--tolerance", type=float, default=1e-3, help="nRMSE above which a stage diverges")
    v.add_argument("--quantize-tolerance", type=float, default=0.005,
                   help="share of quantised values on another level above which quantize diverges")
    v.add_argument("--answer-tolerance", type=float, default=0.01,
                   help="share of end-to-end answer disagreements tolerated when no stage diverges")
    args = p.parse_args(argv)
    for path in [args.out, args.markdown, args.plot]:
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            print(f"deepcut-exray: {path}: its directory does not exist", file=sys.stderr)
            return EXIT_BAD_INPUT
    if not (args.tolerance > 0 and 0 <= args.quantize_tolerance < 1):
        print("deepcut-exray: tolerances must be > 0 (quantize: in [0, 1))", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        rep = validate(args)
    except BadInput as e:
        print(f"deepcut-exray: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - a bug of ours: say so, write nothing
        import traceback
        traceback.print_exc()
        print(f"deepcut-exray: the validation failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    md = markdown(rep)
    written = []
    try:
        if args.plot:
            plot(rep, args.plot)
            written.append(args.plot)
        if args.markdown:
            write_atomically(args.markdown, lambda f: f.write(md))
            written.append(args.markdown)
        write_atomically(args.out, lambda f: (json.dump(rep, f, indent=2), f.write("\n")))
    except Exception as e:  # noqa: BLE001 - nothing partial stays behind
        for w in written:
            os.unlink(w)
        print(f"deepcut-exray: writing the report failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
