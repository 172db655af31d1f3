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
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "splitnet", "training"))

STAGES = ("preprocess", "head", "quantize", "exit")
EXIT_BAD_INPUT, EXIT_FAILED = 2, 5
INTERPOLATIONS = ("area", "linear", "nearest", "cubic", "lanczos")


class BadInput(Exception):
    """Input the tool refuses (exit code 2); the message names what is wrong."""


# --- reading the log -------------------------------------------------------------------------

def load_npz(path):
    """A record's .npz, checked whole: a truncated or malformed one is refused by name."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                raise ValueError(f"member {bad} fails its CRC")
            out = {}
            for name in z.namelist():
                with z.open(name) as f:
                    out[name[:-4] if name.endswith(".npy") else name] = np.lib.format.read_array(f)
            return out
    except FileNotFoundError:
        raise BadInput(f"{path}: missing (the index lists it)")
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
        raise BadInput(f"{path}: not a whole .npz file ({e})")


def read_log(log_dir):
    try:
        with open(os.path.join(log_dir, "log.json")) as f:
            header = json.load(f)
    except FileNotFoundError:
        raise BadInput(f"{log_dir}: no log.json (not a deepcut-exray log)")
    except json.JSONDecodeError as e:
        raise BadInput(f"{log_dir}/log.json: not valid JSON ({e})")
    if header.get("format") != "deepcut-exray/1":
        raise BadInput(f"{log_dir}/log.json: format is {header.get('format')!r}, expected 'deepcut-exray/1'")
    if not isinstance(header.get("manifest"), dict):
        raise BadInput(f"{log_dir}/log.json: no manifest of the edge's model")
    records = []
    index = os.path.join(log_dir, "index.jsonl")
    try:
        lines = open(index).read().splitlines()  # noqa: SIM115
    except FileNotFoundError:
        raise BadInput(f"{index}: missing")
    text = open(index).read()
    if text and not text.endswith("\n"):
        lines = lines[:-1]  # a line still being written (the recorder appends whole lines)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            for key in ("frame_id", "file", "arrays", "head", "exit", "rate", "exit_class"):
                rec[key]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise BadInput(f"{index}:{n}: not a record ({e})")
        records.append(rec)
    if not records:
        raise BadInput(f"{index}: no records (was anything recorded? --exray-every)")
    return header, records


def load_record(log_dir, rec):
    path = os.path.join(log_dir, rec["file"])
    arrays = load_npz(path)
    out = {}
    for key, name in rec["arrays"].items():
        if name not in arrays:
            raise BadInput(f"{path}: no array {name!r} (the index lists it)")
        out[key] = arrays[name]
    for part in ("head", "exit"):
        out[part] = []
        for l in rec[part]:
            if l["array"] not in arrays:
                raise BadInput(f"{path}: no array {l['array']!r} for layer {l['layer']}")
            a = arrays[l["array"]]
            if list(a.shape) != list(l["shape"]):
                raise BadInput(f"{path}: {l['array']} has shape {list(a.shape)}, the index says {l['shape']}")
            out[part].append((l["layer"], a, float(l.get("ms", 0.0))))
    for key in ("raw", "input", "features", "quantized", "scores"):
        if key not in out:
            raise BadInput(f"{path}: the index names no {key!r} array")
    return out


# --- the reference ----------------------------------------------------------------------------

class Reference:
    def __init__(self, model_dir):
        from onnx_torch import OnnxModule
        try:
            with open(os.path.join(model_dir, "manifest.json")) as f:
                self.manifest = json.load(f)
            files = self.manifest["files"]
            self.head = OnnxModule(os.path.join(model_dir, files["head"]))
            self.exit = OnnxModule(os.path.join(model_dir, files["exit"]))
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
            raise BadInput(f"{model_dir}: not a usable reference package ({e})")
        self.input = self.manifest["input"]
        self.bottleneck = self.manifest["bottleneck"]
        self.rates = {r["name"]: r for r in self.manifest["rates"]}

    def layer_tensor(self, module, layer):
        """The reference tensor a runtime layer name stands for, or None."""
        name = layer[len("onnx_node!"):] if layer.startswith("onnx_node!") else None
        for node, _, out in module.node_outputs():
            if node == name or (name is None and out == layer):
                return out
        return None

    def run(self, module, x):
        import torch
        with torch.no_grad():
            out, env = module(torch.from_numpy(np.array(x, np.float32)), trace=True)
        return out.numpy(), {k: v.numpy() for k, v in env.items()}

    def quantize(self, features, rate_name):
        """The codec as docs/model-package.md defines it, at the reference package's rate."""
        r = self.rates[rate_name]
        lo, hi, fill = self.bottleneck["min"], self.bottleneck["max"], self.bottleneck["fill"]
        levels = (1 << r["bits"]) - 1
        q = np.clip(np.floor((np.clip(features, lo, hi) - lo) / (hi - lo) * levels + 0.5), 0, levels)
        out = (lo + q * (hi - lo) / levels).astype(np.float32)
        out[:, r["channels"]:] = fill
        return out


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def nrmse(edge, ref):
    edge, ref = np.asarray(edge, np.float64), np.asarray(ref, np.float64)
    if edge.shape != ref.shape:
        return float("inf")
    return float(np.sqrt(np.mean((edge - ref) ** 2)) / (np.std(ref) + 1e-8))


# --- checks -----------------------------------------------------------------------------------

def check_same_model(header, ref):
    """A log from another model is refused: shapes, classes and rates must be the reference's."""
    m = header["manifest"]
    problems = []
    for key in ("channels", "height", "width"):
        if m.get("input", {}).get(key) != ref.input[key]:
            problems.append(f"input.{key} {m.get('input', {}).get(key)} vs {ref.input[key]}")
    for key in ("channels", "height", "width"):
        if m.get("bottleneck", {}).get(key) != ref.bottleneck[key]:
            problems.append(f"bottleneck.{key} {m.get('bottleneck', {}).get(key)} vs {ref.bottleneck[key]}")
    if m.get("classes") != ref.manifest["classes"]:
        problems.append("the classes differ")
    if sorted(r.get("name") for r in m.get("rates", [])) != sorted(ref.rates):
        problems.append("the rates differ")
    if m.get("name") != ref.manifest["name"]:
        problems.append(f"name {m.get('name')!r} vs {ref.manifest['name']!r}")
    if problems:
        raise BadInput(f"the log was recorded with another model than the reference "
                       f"({header['model'].get('name')} vs {ref.manifest['name']}): " + "; ".join(problems))


def check_layers(records, ref):
    for rec in records:
        for part, module in (("head", ref.head), ("exit", ref.exit)):
            names = [l["layer"] for l in rec[part]]
            if not names or not any(ref.layer_tensor(module, n) for n in names):
                raise BadInput(f"record {rec.get('record')}: none of its {part} layers is in the "
                               f"reference's {part} graph (another model?)")


def diagnose_preprocess(raw, edge_in, ref, ref_in):
    """Which known mistake turns the reference's pre-processing into the edge's."""
    from data import preprocess_frame
    tol = 1e-3
    c = ref.input["channels"]
    if raw.ndim == 3 and raw.shape[2] >= 3:
        other = "rgb" if ref.input.get("channel_order", "bgr") == "bgr" else "bgr"
        if nrmse(edge_in, preprocess_frame(raw, ref.input, channel_order=other)) < tol:
            return "channel_order", (f"channel order: the edge reads the frame's colour channels as "
                                     f"{other.upper()}, the reference as "
                                     f"{ref.input.get('channel_order', 'bgr').upper()}")
    if c > 1:
        h, w = ref.input["height"], ref.input["width"]
        hwc = ref_in.transpose(1, 2, 0).reshape(c, h, w)
        if nrmse(edge_in, hwc) < tol:
            return "input_layout", "input layout: the edge's tensor is HWC data read as CHW"
    if raw.shape[0] != ref.input["height"] or raw.shape[1] != ref.input["width"]:
        mine = ref.input.get("interpolation", "area")
        for interp in INTERPOLATIONS:
            if interp != mine and nrmse(edge_in, preprocess_frame(raw, ref.input, interpolation=interp)) < tol:
                return "resize_interpolation", (f"resize interpolation: the edge resizes the "
                                                f"{raw.shape[1]}x{raw.shape[0]} frame with {interp}, "
                                                f"the reference with {mine}")
    # An affine relation: edge = a * ref + b means another scale, mean or std.
    r, e = ref_in.ravel().astype(np.float64), edge_in.ravel().astype(np.float64)
    a, b = np.polyfit(r, e, 1)
    if nrmse(e, a * r + b) < tol:
        std, mean = ref.input["std"][0], ref.input["mean"][0]
        # Pixels p: ref = (p s - m) / d and edge = a ref + b; a = 255 is the 0..255 mistake.
        if abs(a / 255.0 - 1) < 0.05 and abs(b) < 0.5 * 255 * (1 + abs(mean / std)):
            return "value_range", ("value range: the edge's input is about 255 times the "
                                   "reference's: pixels in 0..255 where the model expects 0..1 "
                                   "(input.scale)")
        if abs(a * 255.0 - 1) < 0.05:
            return "value_range", ("value range: the edge's input is about 1/255 of the "
                                   "reference's: pixels scaled to 0..1 twice (input.scale)")
        # At the reference's scale: edge = (p s - m') / d' gives d' = d / a, m' = m - b d'.
        implied_mean = mean - b * std / a if a else float("nan")
        return "normalisation", (f"normalisation: the edge's input is {a:.4g} x reference "
                                 f"{b:+.4g}: its mean/std differ from the reference's "
                                 f"(mean {mean:.4g}, std {std:.4g}; the edge's look like mean "
                                 f"{implied_mean:.4g}, std {std / a:.4g} at the same scale)")
    return "unrecognised", ("the edge's pre-processing differs in a way no built-in check "
                            "recognises (not channel order, layout, interpolation or an affine "
                            "scale/normalisation)")


def diagnose_quantize(edge_q, ref_q, rate, ref):
    r = ref.rates[rate]
    lo, hi = ref.bottleneck["min"], ref.bottleneck["max"]
    want = 1 << r["bits"]
    ref_step = (hi - lo) / (want - 1)
    sent = edge_q[:, :r["channels"]].ravel()
    levels = np.unique(np.round(sent, 5))
    grid_says = f"the package's rate {rate} has {want} levels over [{lo:g}, {hi:g}], {ref_step:.4g} apart"
    if len(levels) > want:
        return "quantizer_levels", (f"quantiser levels: the edge's features at rate {rate} take "
                                    f"{len(levels)} values; {grid_says}")
    gaps = np.diff(levels)
    step = float(gaps.min()) if len(gaps) else ref_step
    off = np.min(np.abs(levels[:, None] - (lo + np.arange(want) * ref_step)[None, :]), axis=1)
    implied = np.log2((hi - lo) / step + 1) if step > 0 else 0
    if abs(implied - round(implied)) < 0.02 and round(implied) != r["bits"]:
        b = int(round(implied))
        grid = lo + np.arange(1 << b) * (hi - lo) / ((1 << b) - 1)
        if np.all(np.min(np.abs(levels[:, None] - grid[None, :]), axis=1) < 0.01 * step):
            return "quantizer_bits", (f"quantiser bits: the edge's values at rate {rate} are on a "
                                      f"{int(round(implied))}-bit grid over the package's range; "
                                      f"{grid_says} ({r['bits']} bits)")
    if abs(step - ref_step) > 1e-3 * ref_step or np.any(off > 1e-3 * ref_step):
        return "quantizer_range", (f"quantiser range: the edge's values at rate {rate} lie on "
                                   f"levels {step:.4g} apart between {levels.min():.4g} and "
                                   f"{levels.max():.4g}; {grid_says}: the range (or bits) the edge "
                                   f"quantises over disagrees with the package's rates")
    unsent = edge_q[:, r["channels"]:]
    if unsent.size and not np.allclose(unsent, ref.bottleneck["fill"]):
        return "quantizer_channels", (f"channels: rate {rate} sends {r['channels']} channels; the "
                                      f"edge fills the others with other values than "
                                      f"{ref.bottleneck['fill']:g}")
    return "quantizer_rounding", (f"quantisation at {rate}: the edge's levels are on the package's "
                                  f"grid but other levels are chosen (rounding or clamping differs)")


# --- rules ------------------------------------------------------------------------------------

RULE_CHECKS = ("range", "mean", "std", "finite", "shape", "max_nrmse", "agreement")


def load_rules(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(f"{path}: cannot read the rules ({e})")
    rules = doc.get("rules") if isinstance(doc, dict) else None
    if doc.get("format") != "deepcut-exray-rules/1" or not isinstance(rules, list):
        raise BadInput(f'{path}: not a rule file ("format": "deepcut-exray-rules/1", "rules": [...])')
    for i, r in enumerate(rules):
        where = f"{path}: rule {i} ({r.get('name', '?')})"
        if r.get("stage") not in STAGES:
            raise BadInput(f"{where}: stage must be one of {', '.join(STAGES)}")
        if r.get("check") not in RULE_CHECKS:
            raise BadInput(f"{where}: check must be one of {', '.join(RULE_CHECKS)}")
        need = {"range": ("min", "max"), "mean": ("min", "max"), "std": ("min", "max"),
                "shape": ("shape",), "max_nrmse": ("value",), "agreement": ("value",)}.get(r["check"], ())
        for key in need:
            if key not in r:
                raise BadInput(f"{where}: check {r['check']} needs {key!r}")
    return rules


def apply_rules(rules, edge_tensors, ref_tensors, agreement):
    """Findings for the rules that fail. edge_tensors[(stage, layer)] = list over records."""
    findings = []
    for r in rules:
        stage, layer = r["stage"], r.get("layer")
        key = (stage, layer)
        name = f"rule:{r.get('name', r['check'])}"
        if r["check"] == "agreement":
            if agreement < r["value"]:
                findings.append(finding(stage, layer, name, f"answer agreement {agreement:.4f} < {r['value']}"))
            continue
        if key not in edge_tensors:
            findings.append(finding(stage, layer, name, f"no tensor {layer or stage} in the log"))
            continue
        values = edge_tensors[key]
        allv = np.concatenate([np.ravel(v) for v in values])
        bad = None
        if r["check"] == "range" and (allv.min() < r["min"] or allv.max() > r["max"]):
            bad = f"values in [{allv.min():.4g}, {allv.max():.4g}], rule [{r['min']}, {r['max']}]"
        elif r["check"] == "mean" and not r["min"] <= allv.mean() <= r["max"]:
            bad = f"mean {allv.mean():.4g}, rule [{r['min']}, {r['max']}]"
        elif r["check"] == "std" and not r["min"] <= allv.std() <= r["max"]:
            bad = f"std {allv.std():.4g}, rule [{r['min']}, {r['max']}]"
        elif r["check"] == "finite" and not np.all(np.isfinite(allv)):
            bad = f"{int((~np.isfinite(allv)).sum())} values are not finite"
        elif r["check"] == "shape" and list(values[0].shape) != list(r["shape"]):
            bad = f"shape {list(values[0].shape)}, rule {r['shape']}"
        elif r["check"] == "max_nrmse":
            e = np.mean([nrmse(a, b) for a, b in zip(values, ref_tensors.get(key, []))]) \
                if key in ref_tensors else float("inf")
            if e > r["value"]:
                bad = f"nRMSE {e:.3g} > {r['value']}"
        if bad:
            findings.append(finding(stage, layer, name, bad))
    return findings


def finding(stage, layer, check, message):
    return {"stage": stage, "layer": layer, "check": check, "message": message}


# --- the validation ---------------------------------------------------------------------------

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
