#!/usr/bin/env python3
"""Train the DeepCut Fashion-MNIST split network and write a deepcut-model/1 package.

Example (the committed package):
  /usr/bin/python3 splitnet/training/train.py --out models/fmnist --epochs 20 --seed 1
No-bottleneck baseline (full-precision features, for the rate-accuracy comparison):
  /usr/bin/python3 splitnet/training/train.py --baseline --out models/fmnist-baseline --epochs 18 --seed 1

The package (manifest.json, head.onnx, exit.onnx, tail.onnx) follows docs/model-package.md.
It is built in a temporary sibling directory and renamed into place only once everything
(including the OpenCV dnn check) has succeeded, so a failed run leaves no partial package.
"""
import argparse
import copy
import datetime
import json
import os
import random
import shlex
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import export  # noqa: E402
from model import ALL_RATES, EXIT_KINDS, RATES_BY_NAME, Rate, SplitNet, apply_rate, ste_mixed_rates  # noqa: E402

REQUIRED_RATES = ("8b", "4b", "2b")
FEATURE_HW = 7
BOTTLENECK_CHANNELS = 8
# Baseline: bottleneck.max is a round number >= this percentile of the validation features.
BASELINE_MAX_PERCENTILE = 99.99


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="package directory to (re)write")
    p.add_argument("--epochs", type=int, default=20, help="training epochs")
    p.add_argument("--seed", type=int, default=1, help="training seed (init, shuffling, augmentation, rates)")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test mode: 1 epoch on 3000 images, small val/test subsets")
    p.add_argument("--data-dir", default=data.DEFAULT_DATA_DIR, help="folder with the Fashion-MNIST IDX .gz files")
    p.add_argument("--val-size", type=int, default=5000, help="training images held out for validation/calibration")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size")
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (AdamW, one-cycle)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW decoupled weight decay")
    p.add_argument("--label-smoothing", type=float, default=0.05, help="label smoothing of both CE losses")
    p.add_argument("--exit-weight", type=float, default=0.3, help="loss = tail CE + w * exit CE")
    p.add_argument("--p-float", type=float, default=0.1,
                   help="probability that a training sample's features stay unquantised")
    p.add_argument("--rates", default=",".join(r.name for r in ALL_RATES),
                   help=f"rates to train and offer, best first; known: {', '.join(RATES_BY_NAME)}")
    p.add_argument("--keep-dominated", action="store_true",
                   help="keep optional rates that another rate beats at equal or lower cost (on validation)")
    p.add_argument("--default-rate", default="auto",
                   help="'auto' = cheapest rate within --default-tolerance of the best (validation)")
    p.add_argument("--default-tolerance", type=float, default=0.003,
                   help="accuracy tolerance (fraction) used by --default-rate auto")
    p.add_argument("--calib-bins", type=int, default=10, help="equal-count exit calibration bins")
    p.add_argument("--no-temperature", action="store_true", help="do not fit/bake an exit temperature")
    p.add_argument("--head-width", default="32,64", help="head conv widths w1,w2")
    p.add_argument("--tail-width", type=int, default=128, help="tail conv width")
    p.add_argument("--tail-blocks", type=int, default=1, help="residual blocks in the tail")
    p.add_argument("--exit-kind", choices=EXIT_KINDS, default="mlp",
                   help="exit classifier: mlp = 1x1 conv(16)+BN+ReLU, FC(64), FC; "
                        "linear = Flatten, FC (one Gemm); pool = MaxPool 3x3/2 (7x7 -> 4x4), "
                        "Flatten, FC; conv = 1x1 conv(16)+BN+ReLU, Flatten, FC")
    p.add_argument("--exit-detach", action="store_true",
                   help="train the exit on detached features: its loss does not reach the head, "
                        "so the features are shaped by the tail only")
    p.add_argument("--baseline", action="store_true",
                   help="no-bottleneck baseline: head = plain feature extractor (last ReLU map, "
                        "64x7x7), tail on full-precision features, no quantisation or channel "
                        "dropout, exit trained on detached features; one rate 8b over all channels")
    p.add_argument("--name", default=None,
                   help="manifest name (default: fmnist-split, or fmnist-baseline with --baseline)")
    p.add_argument("--camera", action="store_true",
                   help="train on what the edge's camera gives (data.camera: gain drift, noise, "
                        "blur, gamma, JPEG) and calibrate the exit on such frames")
    p.add_argument("--camera-fraction", type=float, default=0.5,
                   help="with --camera, the fraction of each batch that gets the camera's "
                        "treatment (the rest stays clean, so clean accuracy is kept)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-verify-cv2", action="store_true", help="skip the OpenCV dnn load/compare check")
    return p.parse_args(argv)


def rate_cost_bytes(rate):
    return rate.bits * rate.channels * FEATURE_HW * FEATURE_HW / 8.0


def nice_ceil(v):
    """Smallest multiple of half a power of ten that is >= v (7.3 -> 7.5, 13.2 -> 15)."""
    if v <= 0:
        return 1.0
    step = 0.5 * 10.0 ** np.floor(np.log10(v))
    return float(round(np.ceil(v / step - 1e-9) * step, 10))


@torch.no_grad()
def head_features(model, x, batch_size=500):
    model.eval()
    return torch.cat([model.head(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate(model, x, y, rates, batch_size=250, lo=0.0, hi=1.0):
    """Accuracy of the tail at each rate (and float) and of the exit; also exit logits.

    Rates quantise over the bottleneck range [lo, hi] (the codec of docs/model-package.md)."""
    model.eval()
    correct = {r.name: 0 for r in rates}
    correct["float"] = 0
    exit_logits = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        z = model.head(xb)
        correct["float"] += int((model.tail(z).argmax(1) == yb).sum())
        for r in rates:
            correct[r.name] += int((model.tail(apply_rate(z, r.bits, r.channels, lo=lo, hi=hi))
                                    .argmax(1) == yb).sum())
        exit_logits.append(model.exit(z))
    acc = {k: v / len(x) for k, v in correct.items()}
    exit_logits = torch.cat(exit_logits)
    acc["exit"] = float((exit_logits.argmax(1) == y).float().mean())
    return acc, exit_logits


def fit_temperature(logits, y):
    """Grid search (log-spaced) for the T minimising validation NLL of softmax(logits / T)."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.25), np.log(5.0), 301)):
        nll = float(F.cross_entropy(logits / float(t), y))
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t, best_nll


def calibration_bins(conf, wrong, n_bins):
    """Equal-count contiguous bins over [0,1]: [{confidence_min,max,error_rate,count}].

    Bin i holds confidences in [min_i, max_i) (the last one also holds 1.0). Edges sit
    half-way between neighbouring sorted confidences so the assignment is unambiguous.
    """
    order = np.argsort(conf, kind="stable")
    c = conf[order]
    n = len(c)
    edges = []
    for k in range(1, n_bins):
        i = int(round(k * n / n_bins))
        if 0 < i < n:
            e = float((c[i - 1] + c[i]) / 2.0)
            if 0.0 < e < 1.0 and (not edges or e > edges[-1]):
                edges.append(e)
    lows, highs = [0.0] + edges, edges + [1.0]
    idx = np.searchsorted(np.array(edges), conf, side="right")  # bin index per sample
    bins = []
    for b, (lo, hi) in enumerate(zip(lows, highs)):
        m = idx == b
        cnt = int(m.sum())
        bins.append({"confidence_min": round(lo, 6) if b else 0.0,
                     "confidence_max": round(hi, 6) if b < len(highs) - 1 else 1.0,
                     "error_rate": round(float(wrong[m].mean()), 6) if cnt else 0.0,
                     "count": cnt})
    # Rounded edges must stay contiguous.
    for a, b in zip(bins, bins[1:]):
        b["confidence_min"] = a["confidence_max"]
    return bins


def prune_dominated(rates, val_acc):
    """Drop optional rates for which another rate is at least as accurate at <= cost."""
    kept, dropped = [], []
    for r in rates:
        dominated = any(o is not r and rate_cost_bytes(o) <= rate_cost_bytes(r)
                        and val_acc[o.name] >= val_acc[r.name]
                        and (rate_cost_bytes(o) < rate_cost_bytes(r) or val_acc[o.name] > val_acc[r.name])
                        for o in rates)
        (dropped if dominated and r.name not in REQUIRED_RATES else kept).append(r)
    return kept, dropped


def pick_default(rates, val_acc, tol):
    best = max(val_acc[r.name] for r in rates)
    ok = [r for r in rates if val_acc[r.name] >= best - tol - 1e-12]
    return min(ok, key=lambda r: (rate_cost_bytes(r), -val_acc[r.name]))


def conv_macs(module, x):
    """Multiply-adds of the Conv2d and Linear layers of `module` on one input like x[:1]."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * \
                m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features
    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        module.eval()
        module(x[:1])
    for h in handles:
        h.remove()
    return int(total)


@torch.no_grad()
def tail_accuracy_per_bin(model, x, y, rates, conf, bins, lo=0.0, hi=1.0, batch_size=250):
    """For each calibration bin, the tail's accuracy at each rate on the frames whose exit
    confidence falls in it: what an offload is worth given what the edge knows."""
    model.eval()
    right = {r.name: [] for r in rates}
    for i in range(0, len(x), batch_size):
        z = model.head(x[i:i + batch_size])
        for r in rates:
            pred = model.tail(apply_rate(z, r.bits, r.channels, lo=lo, hi=hi)).argmax(1)
            right[r.name].append((pred == y[i:i + batch_size]).numpy())
    right = {k: np.concatenate(v) for k, v in right.items()}
    edges = [b["confidence_max"] for b in bins[:-1]]
    idx = np.searchsorted(np.array(edges), conf, side="right")
    for b, info in enumerate(bins):
        m = idx == b
        info["cloud_accuracy"] = {k: (round(float(v[m].mean()), 6) if m.any() else 0.0)
                                  for k, v in right.items()}


def fmt_pct(v):
    return f"{100 * v:5.2f}"


def main(argv=None):
    t_start = time.time()
    args = parse_args(argv)
    command = shlex.join([sys.executable] + sys.argv if argv is None else [sys.executable, sys.argv[0]] + list(argv))
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    baseline = args.baseline
    exit_detach = args.exit_detach or baseline
    manifest_name = args.name or ("fmnist-baseline" if baseline else "fmnist-split")
    rates = []
    for rname in ([] if baseline else [s.strip() for s in args.rates.split(",") if s.strip()]):
        if rname not in RATES_BY_NAME:
            sys.exit(f"unknown rate {rname!r}; known: {', '.join(RATES_BY_NAME)}")
        rates.append(RATES_BY_NAME[rname])
    missing = [n for n in REQUIRED_RATES if n not in {r.name for r in rates}]
    if missing and not baseline:
        sys.exit(f"rates {missing} are required")
    rates.sort(key=lambda r: -rate_cost_bytes(r))

    epochs = 1 if args.quick else args.epochs
    ds = data.load_fmnist(args.data_dir, args.val_size, args.split_seed,
                          limit_train=3000 if args.quick else None)
    xtr, ytr = ds["train"]
    xva, yva = ds["val"]
    xte, yte = ds["test"]
    if args.quick:
        xva, yva = xva[:1000], yva[:1000]
        xte, yte = xte[:2000], yte[:2000]
    # Fixed camera-like copies of validation and test (their own seed, so that every run
    # with --camera calibrates and reports on the same frames).
    cam_gen = torch.Generator().manual_seed(12345)
    xva_cam = data.camera(xva, generator=cam_gen) if args.camera else xva
    xte_cam = data.camera(xte, generator=cam_gen) if args.camera else xte
    print(f"data: train {len(xtr)}  val {len(xva)}  test {len(xte)}  "
          f"threads {args.threads}  torch {torch.__version__}", flush=True)

    w1, w2 = (int(v) for v in args.head_width.split(","))
    model = SplitNet(bottleneck=None if baseline else BOTTLENECK_CHANNELS, head_w1=w1, head_w2=w2,
                     tail_width=args.tail_width, tail_blocks=args.tail_blocks, exit_kind=args.exit_kind)
    model_kind = "baseline" if baseline else "split"
    print(f"model: {model_kind}, features {model.channels}x{FEATURE_HW}x{FEATURE_HW}, tail width "
          f"{args.tail_width} x {args.tail_blocks} block(s), exit {args.exit_kind}"
          f"{' (detached)' if exit_detach else ''}", flush=True)
    n_params = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in ("head", "exit", "tail")}
    print("params: " + "  ".join(f"{k} {v:,}" for k, v in n_params.items()), flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = (len(xtr) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=epochs,
                                                steps_per_epoch=steps_per_epoch, pct_start=0.2)

    header = "rates: " + " ".join(["float"] + [r.name for r in rates] + ["exit"])
    print(f"epochs {epochs}, {steps_per_epoch} steps/epoch; val accuracy columns -> {header}", flush=True)
    best_score, best_state, best_epoch, history = -1.0, None, 0, []
    t_train = time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.time()
        tot = {"loss": 0.0, "tail": 0.0, "exit": 0.0}
        seen = 0
        for xb, yb in data.batches(xtr, ytr, args.batch_size, shuffle=True, generator=gen):
            xb = data.augment(xb, generator=gen)
            if args.camera:
                cam = torch.rand(len(xb), generator=gen) < args.camera_fraction
                if cam.any():
                    xb = xb.clone()
                    xb[cam] = data.camera(xb[cam], generator=gen)
            z = model.head(xb)
            # Baseline: the tail sees the full-precision features (no quantisation/dropout).
            zt = z if baseline else ste_mixed_rates(z, rates, args.p_float, generator=gen)
            l_tail = F.cross_entropy(model.tail(zt), yb, label_smoothing=args.label_smoothing)
            l_exit = F.cross_entropy(model.exit(z.detach() if exit_detach else z), yb,
                                     label_smoothing=args.label_smoothing)
            loss = l_tail + args.exit_weight * l_exit
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n = len(xb)
            seen += n
            tot["loss"] += float(loss) * n
            tot["tail"] += float(l_tail) * n
            tot["exit"] += float(l_exit) * n
        t_ep = time.time() - t0
        acc, _ = evaluate(model, xva, yva, rates)
        score = float(np.mean([acc[r.name] for r in rates])) if rates else acc["float"]
        if args.camera:
            # Selected on clean and camera frames alike: the edge sees the latter.
            acc_cam, _ = evaluate(model, xva_cam, yva, rates)
            score = 0.5 * score + 0.5 * (float(np.mean([acc_cam[r.name] for r in rates]))
                                         if rates else acc_cam["float"])
        history.append({"epoch": epoch, **{k: v / seen for k, v in tot.items()}, "val": acc, "seconds": t_ep})
        mark = ""
        if score > best_score:
            best_score, best_state, best_epoch, mark = score, copy.deepcopy(model.state_dict()), epoch, " *"
        print(f"epoch {epoch:3d}/{epochs} loss {tot['loss'] / seen:.4f} (tail {tot['tail'] / seen:.4f} "
              f"exit {tot['exit'] / seen:.4f}) | val " +
              " ".join(fmt_pct(acc[k]) for k in ["float"] + [r.name for r in rates] + ["exit"]) +
              f" | train {t_ep:5.1f}s eval {time.time() - t0 - t_ep:4.1f}s{mark}", flush=True)
    train_seconds = time.time() - t_train
    model.load_state_dict(best_state)
    model.eval()
    print(f"training done in {train_seconds / 60:.1f} min; using epoch {best_epoch} "
          f"(best {'float' if baseline else 'mean'} validation accuracy"
          f"{'' if baseline else ' over rates'} {100 * best_score:.2f}%)", flush=True)

    # --- bottleneck range ----------------------------------------------------------------
    b_min, b_max, range_info = 0.0, 1.0, None
    if baseline:
        # Unbounded ReLU features: the codec range is [0, a round number >= the 99.99th
        # percentile on validation]; the codec clamps the rare larger values.
        fva = head_features(model, xva)
        pct = float(np.percentile(fva.numpy(), BASELINE_MAX_PERCENTILE))
        b_max = nice_ceil(pct)
        fte = head_features(model, xte)
        range_info = {"percentile": BASELINE_MAX_PERCENTILE, "validation_percentile_value": round(pct, 4),
                      "validation_max": round(float(fva.max()), 4),
                      "validation_fraction_above_max": round(float((fva > b_max).float().mean()), 8),
                      "test_max": round(float(fte.max()), 4),
                      "test_fraction_above_max": round(float((fte > b_max).float().mean()), 8)}
        del fva, fte
        rates = [Rate("8b", 8, model.channels)]
        print(f"baseline features: validation {BASELINE_MAX_PERCENTILE}th percentile {pct:.4f} -> "
              f"bottleneck.max {b_max:g}; validation max {range_info['validation_max']:.3f}, "
              f"{100 * range_info['validation_fraction_above_max']:.4f}% of values above; test max "
              f"{range_info['test_max']:.3f}, {100 * range_info['test_fraction_above_max']:.4f}% above",
              flush=True)

    # --- validation: rate choice, temperature, calibration -----------------------------
    val_acc, _ = evaluate(model, xva, yva, rates, lo=b_min, hi=b_max)
    # The exit is calibrated on the frames the edge sees (camera-like with --camera).
    val_cam_acc, val_exit_logits = evaluate(model, xva_cam, yva, rates, lo=b_min, hi=b_max)
    offered, dropped = (rates, []) if (args.keep_dominated or baseline) else prune_dominated(rates, val_acc)
    for r in dropped:
        print(f"dropping rate {r.name}: another rate is as accurate at no higher cost (validation)")
    if args.default_rate == "auto":
        default = pick_default(offered, val_acc, args.default_tolerance)
    else:
        if args.default_rate not in {r.name for r in offered}:
            sys.exit(f"--default-rate {args.default_rate} is not an offered rate")
        default = RATES_BY_NAME[args.default_rate]
    temperature = 1.0
    if not args.no_temperature:
        nll_before = float(F.cross_entropy(val_exit_logits, yva))
        temperature, nll_after = fit_temperature(val_exit_logits, yva)
        print(f"exit temperature T={temperature:.4f} (validation NLL {nll_before:.4f} -> {nll_after:.4f})")
    probs = torch.softmax(val_exit_logits / temperature, 1)
    conf = probs.max(1).values.numpy().astype(np.float64)
    wrong = (probs.argmax(1) != yva).numpy().astype(np.float64)
    bins = calibration_bins(conf, wrong, args.calib_bins)
    tail_accuracy_per_bin(model, xva_cam, yva, offered, conf, bins, lo=b_min, hi=b_max)

    # --- test metrics ---------------------------------------------------------------
    test_acc, _ = evaluate(model, xte, yte, offered, lo=b_min, hi=b_max)
    test_cam_acc, _ = evaluate(model, xte_cam, yte, offered, lo=b_min, hi=b_max)
    macs = {"head": conv_macs(model.head, xva),
            "exit": conv_macs(model.exit, model.head(xva[:1])),
            "tail": conv_macs(model.tail, model.head(xva[:1]))}
    print("multiply-adds per image: " + "  ".join(f"{k} {v:,}" for k, v in macs.items()) +
          f"  (tail / head {macs['tail'] / max(1, macs['head']):.1f}x)", flush=True)

    # --- export into a temporary sibling directory, verify, then swap into place -------
    out = os.path.abspath(args.out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out)}.tmp-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        exit_export = export.exit_with_temperature(model.exit, temperature)
        files = {"head": "head.onnx", "exit": "exit.onnx", "tail": "tail.onnx"}
        ex_img = xva[:8].clone()
        with torch.no_grad():
            ex_feat = model.head(ex_img)
        ex_tail_in = apply_rate(ex_feat, default.bits, default.channels, lo=b_min, hi=b_max)
        export.export_onnx(model.head, ex_img, os.path.join(tmp, files["head"]), "image", "features")
        export.export_onnx(exit_export, ex_feat, os.path.join(tmp, files["exit"]), "features", "logits")
        export.export_onnx(model.tail, ex_tail_in, os.path.join(tmp, files["tail"]), "features", "logits")
        io = {k: export.onnx_io(os.path.join(tmp, f)) for k, f in files.items()}

        verify = None
        if not args.no_verify_cv2:
            if not export.cv2_available():
                raise RuntimeError("python3-opencv is not installed (apt-get install -y python3-opencv) "
                                   "or pass --no-verify-cv2")
            verify = {
                "head": export.verify_cv2(model.head, os.path.join(tmp, files["head"]), ex_img),
                "exit": export.verify_cv2(exit_export, os.path.join(tmp, files["exit"]), ex_feat),
                "tail": export.verify_cv2(model.tail, os.path.join(tmp, files["tail"]), ex_tail_in),
            }
            # End to end through OpenCV at the default rate on test images.
            n_e2e = min(1000, len(xte))
            feats = export.cv2_forward(os.path.join(tmp, files["head"]), xte[:n_e2e].numpy())
            feats_q = apply_rate(torch.from_numpy(feats), default.bits, default.channels,
                                 lo=b_min, hi=b_max).numpy()
            cv_pred = export.cv2_forward(os.path.join(tmp, files["tail"]), feats_q).argmax(1)
            with torch.no_grad():
                z = model.head(xte[:n_e2e])
                pt_pred = model.tail(apply_rate(z, default.bits, default.channels,
                                                lo=b_min, hi=b_max)).argmax(1).numpy()
            agree = float((cv_pred == pt_pred).mean())
            verify["e2e_agreement"] = agree
            if agree < 0.99:
                raise RuntimeError(f"OpenCV vs torch end-to-end prediction agreement only {agree:.4f}")

        manifest = {
            "format": "deepcut-model/1",
            "name": manifest_name,
            "files": files,
            "input": {"channels": 1, "height": 28, "width": 28, "layout": "NCHW",
                      "scale": data.SCALE, "mean": [data.MEAN], "std": [data.STD]},
            "bottleneck": {"channels": model.channels, "height": FEATURE_HW, "width": FEATURE_HW,
                           "min": b_min, "max": b_max, "fill": 0.0},
            "rates": [{"name": r.name, "bits": r.bits, "channels": r.channels} for r in offered],
            "default_rate": default.name,
            "classes": data.CLASSES,
            "exit_calibration": {"bins": bins},
            "provenance": {
                "dataset": "fashion-mnist (Debian dataset-fashion-mnist)",
                "kind": model_kind,
                "seed": args.seed,
                "command": command,
                "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "torch_version": torch.__version__,
                "exit_temperature": round(temperature, 6),
                "architecture": {"head_width": [w1, w2], "bottleneck": model.bottleneck,
                                 "tail_width": args.tail_width, "tail_blocks": args.tail_blocks,
                                 "exit_kind": args.exit_kind, "exit_detach": exit_detach,
                                 "parameters": n_params, "multiply_adds": macs,
                                 "camera_augmentation": args.camera,
                                 "camera_fraction": args.camera_fraction if args.camera else 0.0},
                "epochs": epochs,
                "best_epoch": best_epoch,
                "training_seconds": round(train_seconds, 1),
                "metrics": {
                    "test_images": len(xte),
                    "tail_accuracy": {r.name: round(test_acc[r.name], 4) for r in offered},
                    "exit_accuracy": round(test_acc["exit"], 4),
                    "float_tail_accuracy": round(test_acc["float"], 4),
                    "validation_images": len(xva),
                    "validation_tail_accuracy": {r.name: round(val_acc[r.name], 4) for r in offered},
                    "validation_exit_accuracy": round(val_acc["exit"], 4),
                    "validation_float_tail_accuracy": round(val_acc["float"], 4),
                    # The same on camera-like copies (data.camera), which the exit's
                    # calibration and its bins' cloud accuracies are measured on.
                    "camera_test_tail_accuracy": {r.name: round(test_cam_acc[r.name], 4)
                                                  for r in offered},
                    "camera_test_exit_accuracy": round(test_cam_acc["exit"], 4),
                    "camera_validation_exit_accuracy": round(val_cam_acc["exit"], 4),
                },
            },
        }
        if range_info is not None:
            manifest["provenance"]["bottleneck_range"] = range_info
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")

        export.place_package(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    # --- summary ---------------------------------------------------------------------
    print()
    print(f"package written: {out} ({export.package_size(out) / 1024:.1f} KiB)")
    print(f"{'rate':8s} {'bits':>4s} {'ch':>3s} {'bytes/img':>9s} {'val acc':>8s} {'test acc':>8s}")
    for r in offered:
        print(f"{r.name:8s} {r.bits:4d} {r.channels:3d} {rate_cost_bytes(r):9.1f} "
              f"{fmt_pct(val_acc[r.name]):>8s} {fmt_pct(test_acc[r.name]):>8s}"
              + ("   <- default" if r is default else ""))
    for r in dropped:
        print(f"{r.name:8s} {r.bits:4d} {r.channels:3d} {rate_cost_bytes(r):9.1f} "
              f"{fmt_pct(val_acc[r.name]):>8s} {'':>8s}   (dropped)")
    print(f"{'float':8s} {'32':>4s} {model.channels:3d} {model.channels * 4 * 49:9.1f} {fmt_pct(val_acc['float']):>8s} "
          f"{fmt_pct(test_acc['float']):>8s}")
    print(f"{'exit':8s} {'':4s} {'':3s} {'0':>9s} {fmt_pct(val_acc['exit']):>8s} {fmt_pct(test_acc['exit']):>8s}")
    print(f"\nexit calibration (validation, T={temperature:.3f}):")
    for b in bins:
        print(f"  [{b['confidence_min']:.4f}, {b['confidence_max']:.4f})  error {100 * b['error_rate']:6.2f}%  "
              f"n={b['count']}")
    for k, v in io.items():
        print(f"{k}.onnx: " + "  ".join(f"{kind} {name} {shape}" for kind, name, shape in v))
    if verify:
        print("OpenCV dnn vs torch max abs diff: " + "  ".join(
            f"{k} " + "/".join(f"b{bs}={d:.1e}" for bs, d in verify[k].items()) for k in files)
              + f"; end-to-end prediction agreement {100 * verify['e2e_agreement']:.2f}%")
    print(f"total time {(time.time() - t_start) / 60:.1f} min (training {train_seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
