"""Which known mistake explains a divergence (the built-in checks of docs/exray.md), that a log
belongs to the reference's model, and the user's rules (deepcut-exray-rules/1)."""
import json

import numpy as np

from logfile import BadInput
from reference import nrmse

STAGES = ("preprocess", "head", "quantize", "exit")
INTERPOLATIONS = ("area", "linear", "nearest", "cubic", "lanczos")


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
