#!/usr/bin/python3
"""Robust fine-tuning: a package made stable under camera variation (Cidon et al., 2020).

Starts from a package's own graphs (onnx_torch.OnnxModule: the ONNX files as torch modules,
weights trainable, graph unchanged) and trains on pairs: a training image, and the same image as
a camera with a profile drawn from --profiles and jittered (profiles.jitter, profiles.capture)
captures it, both with the same shift and flip. The loss keeps both right and pulls both, the
perturbed one above all, to what the source package (frozen, the teacher) answers on the clean
image:

    CE(tail) + CE(exit)                                  on the clean and the perturbed image
    + consistency * (KL(teacher tail || tail) + KL(teacher exit || exit))            on both
    + feature_consistency * squared distance of the features to the teacher's clean ones

A fixed target (not the student's own clean answer) is what keeps the consistency terms from
pulling the model towards one answer for everything. By default the exit's losses reach the
head, so the features become stable for the exit as well (--detach-exit keeps them off, as the
package was trained); the tail gets features quantised at a random rate, straight through. The epoch kept is the one with the most
stable validation answers among those whose clean validation accuracy stays within
--max-accuracy-drop of the source. Then the exit's temperature and calibration bins are refitted
on validation frames (half clean, half through the profiles), the entropy model is refitted
(fit_entropy.py), and the package is written next to --out and moved into place.

    /usr/bin/python3 splitnet/training/finetune_robust.py --from models/fmnist \\
        --out models/fmnist-robust --profiles eval/profiles/phones.json

Measure on profiles it did not see: deepcut-eval instability --profiles eval/profiles/heldout.json.
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import export  # noqa: E402
import profiles as camprof  # noqa: E402
from model import Rate, apply_rate, ste_mixed_rates  # noqa: E402
from onnx_torch import OnnxModule  # noqa: E402
from train import calibration_bins, fit_temperature, tail_accuracy_per_bin  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--from", dest="source", required=True, help="package to start from")
    p.add_argument("--out", required=True, help="package directory to write")
    p.add_argument("--profiles", default=os.path.join(HERE, "..", "..", "eval", "profiles", "phones.json"),
                   help="training camera profiles (deepcut-profiles/1)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (AdamW, cosine)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--consistency", type=float, default=2.0, help="weight of the KL terms")
    p.add_argument("--feature-consistency", type=float, default=20.0,
                   help="weight of the features' squared distance")
    p.add_argument("--detach-exit", action="store_true",
                   help="keep the exit's losses from reaching the head (as the package was trained); "
                        "by default they do, so the features become stable for the exit too")
    p.add_argument("--exit-weight", type=float, default=1.0, help="weight of the exit's CE and KL")
    p.add_argument("--jitter", type=float, default=0.35, help="profiles.jitter amount")
    p.add_argument("--p-float", type=float, default=0.1, help="share of unquantised features")
    p.add_argument("--max-accuracy-drop", type=float, default=0.003,
                   help="clean validation accuracy (tail at the default rate, exit) an epoch may lose")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=data.DEFAULT_DATA_DIR)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--split-seed", type=int, default=0, help="must be the source's split seed")
    p.add_argument("--capture-scale", type=int, default=4,
                   help="profiles act on the image upscaled this much (the camera's resolution), "
                        "then the edge's pre-processing brings it back (as deepcut-eval instability)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 epoch on 2,000 images")
    return p.parse_args(argv)


class Package(torch.nn.Module):
    """head / exit / tail graphs with the names train.py's evaluation helpers expect."""

    def __init__(self, d):
        super().__init__()
        self.head = OnnxModule(os.path.join(d, "head.onnx"))
        self.exit = OnnxModule(os.path.join(d, "exit.onnx"))
        self.tail = OnnxModule(os.path.join(d, "tail.onnx"))


def shift_flip(images, rng, pad=2):
    """The same random shift (zero padding) and flip as training, on uint8 [N,H,W]."""
    n, h, w = images.shape
    padded = np.zeros((n, h + 2 * pad, w + 2 * pad), np.uint8)
    padded[:, pad:pad + h, pad:pad + w] = images
    out = np.empty_like(images)
    for i in range(n):
        dy, dx = rng.integers(0, 2 * pad + 1, 2)
        out[i] = padded[i, dy:dy + h, dx:dx + w]
        if rng.random() < 0.5:
            out[i] = out[i][:, ::-1]
    return out


def perturb(images, profile_list, rng, jitter, capture_scale):
    """Each image as a camera with a jittered random profile captures it (profiles.capture),
    back at the model's size through the reference pre-processing."""
    out = np.empty_like(images)
    for i in range(len(images)):
        prof = camprof.jitter(profile_list[rng.integers(len(profile_list))], rng, jitter)
        out[i] = camprof.capture(prof, images[i], rng, capture_scale)
    return out


def tensor(images_u8, inp):
    x = torch.from_numpy(images_u8.astype(np.float32)).unsqueeze(1)
    return (x * inp["scale"] - inp["mean"][0]) / inp["std"][0]


@torch.no_grad()
def answers(model, x, rate, lo, hi, bs=500):
    tail, ex, conf = [], [], []
    for i in range(0, len(x), bs):
        z = model.head(x[i:i + bs])
        tail.append(model.tail(apply_rate(z, rate.bits, rate.channels, lo=lo, hi=hi)).argmax(1))
        p = torch.softmax(model.exit(z), 1)
        c, e = p.max(1)
        ex.append(e)
        conf.append(c)
    return torch.cat(tail).numpy(), torch.cat(ex).numpy(), torch.cat(conf).numpy()


def val_score(model, xc, xps, y, rate, lo, hi, threshold):
    """Clean accuracies and the share of images whose delivered answer is not the same
    under every perturbed copy and the clean image (the instability it is selected on)."""
    t0, e0, c0 = answers(model, xc, rate, lo, hi)
    deliv0 = np.where(c0 < threshold, t0, e0)
    differs = np.zeros(len(y), bool)
    for xp in xps:
        t, e, c = answers(model, xp, rate, lo, hi)
        differs |= np.where(c < threshold, t, e) != deliv0
    return {"tail": float((t0 == y).mean()), "exit": float((e0 == y).mean()),
            "delivered": float((deliv0 == y).mean()), "instability": float(differs.mean())}


def offload_threshold(bins, fraction):
    """The exit confidence below which `fraction` of the calibration frames lie (as the
    runtime's eval::OffloadThreshold: interpolated within a bin)."""
    total = sum(b["count"] for b in bins)
    below, lo = 0.0, 0.0
    for b in bins:
        share = b["count"] / total
        if below + share >= fraction:
            return lo + (b["confidence_max"] - lo) * ((fraction - below) / share if share else 0.0)
        below, lo = below + share, b["confidence_max"]
    return bins[-1]["confidence_max"]


def main(argv=None):
    args = parse_args(argv)
    command = shlex.join([sys.executable] + (sys.argv if argv is None else [sys.argv[0]] + list(argv)))
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.time()

    src = os.path.abspath(args.source)
    with open(os.path.join(src, "manifest.json")) as f:
        manifest = json.load(f)
    profile_list = camprof.load(args.profiles)
    inp, bott = manifest["input"], manifest["bottleneck"]
    if inp["channels"] != 1:
        sys.exit("finetune_robust: only gray (1-channel) packages are supported")
    lo, hi = bott["min"], bott["max"]
    rates = [Rate(r["name"], r["bits"], r["channels"]) for r in manifest["rates"]]
    default = next(r for r in rates if r.name == manifest["default_rate"])
    model = Package(src)
    teacher = Package(src).eval()  # frozen: what the clean image is answered as
    for q in teacher.parameters():
        q.requires_grad_(False)

    xtr, ytr = data.load_split(args.data_dir, "train")
    xte, yte = data.load_split(args.data_dir, "t10k")
    tr_idx, val_idx = data.split_indices(len(xtr), args.val_size, args.split_seed)
    if args.quick:
        tr_idx, val_idx, xte, yte = tr_idx[:2000], val_idx[:500], xte[:1000], yte[:1000]
    xva_u8, yva = xtr[val_idx], ytr[val_idx]
    # Fixed perturbed validation copies (their own generator): what epochs are compared on.
    vrng = np.random.default_rng(12345)
    xva_c = tensor(xva_u8, inp)
    xva_p = [tensor(perturb(xva_u8, profile_list, vrng, args.jitter, args.capture_scale), inp) for _ in range(3)]
    bins = manifest["exit_calibration"]["bins"]
    threshold = offload_threshold(bins, 0.25)
    yva_t = torch.from_numpy(yva)
    start = val_score(model, xva_c, xva_p, yva, default, lo, hi, threshold)
    print(f"source {src}: val tail@{default.name} {start['tail']:.4f} exit {start['exit']:.4f} "
          f"delivered {start['delivered']:.4f} instability {start['instability']:.4f}", flush=True)

    epochs = 1 if args.quick else args.epochs
    steps = (len(tr_idx) + args.batch_size - 1) // args.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=epochs,
                                                steps_per_epoch=steps, pct_start=0.1)
    best, best_state, history = None, None, []
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.train()
        order = rng.permutation(tr_idx)
        tot, seen = {"ce": 0.0, "kl": 0.0, "z": 0.0}, 0
        for s in range(steps):
            idx = order[s * args.batch_size:(s + 1) * args.batch_size]
            clean_u8 = shift_flip(xtr[idx], rng)
            pert_u8 = perturb(clean_u8, profile_list, rng, args.jitter, args.capture_scale)
            y = torch.from_numpy(ytr[idx])
            x = torch.cat([tensor(clean_u8, inp), tensor(pert_u8, inp)])
            z = model.head(x)
            n = len(idx)
            zq = ste_mixed_rates(z, rates, args.p_float)
            t = model.tail(zq)
            e = model.exit(z.detach() if args.detach_exit else z)
            yy = torch.cat([y, y])
            # The targets: the source package's answers and features on the clean image.
            with torch.no_grad():
                zt = teacher.head(x[:n])
                pt, pe = F.softmax(teacher.tail(zt), 1), F.softmax(teacher.exit(zt), 1)
            ce = F.cross_entropy(t, yy) + args.exit_weight * F.cross_entropy(e, yy)
            kl = (F.kl_div(F.log_softmax(t, 1), torch.cat([pt, pt]), reduction="batchmean")
                  + args.exit_weight * F.kl_div(F.log_softmax(e, 1), torch.cat([pe, pe]),
                                                reduction="batchmean"))
            zl = F.mse_loss(z, torch.cat([zt, zt]))
            loss = ce + args.consistency * kl + args.feature_consistency * zl
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot["ce"] += float(ce) * n
            tot["kl"] += float(kl) * n
            tot["z"] += float(zl) * n
            seen += n
            if (s + 1) % 100 == 0:
                print(f"  epoch {epoch} step {s + 1}/{steps}  ce {tot['ce'] / seen:.4f} "
                      f"kl {tot['kl'] / seen:.4f} z {tot['z'] / seen:.5f}", flush=True)
        model.eval()
        score = val_score(model, xva_c, xva_p, yva, default, lo, hi, threshold)
        ok = args.quick or (score["tail"] >= start["tail"] - args.max_accuracy_drop and
              score["exit"] >= start["exit"] - args.max_accuracy_drop)
        history.append({"epoch": epoch, **{k: v / seen for k, v in tot.items()}, "val": score,
                        "seconds": round(time.time() - t0, 1), "eligible": ok})
        mark = ""
        if ok and (best is None or score["instability"] < best["val"]["instability"]):
            best, best_state, mark = history[-1], {k: v.clone() for k, v in model.state_dict().items()}, " *"
        print(f"epoch {epoch}/{epochs}: val tail {score['tail']:.4f} exit {score['exit']:.4f} "
              f"delivered {score['delivered']:.4f} instability {score['instability']:.4f} "
              f"({time.time() - t0:.0f}s){mark}", flush=True)
    if best_state is None:
        sys.exit("finetune_robust: no epoch kept the clean validation accuracy within "
                 f"{args.max_accuracy_drop}; nothing written (try a lower --lr or --consistency)")
    model.load_state_dict(best_state)
    model.eval()

    # Temperature and calibration on validation frames as the edge sees them.
    xcal = torch.cat([xva_c[: len(yva) // 2], xva_p[0][len(yva) // 2:]])
    with torch.no_grad():
        logits = torch.cat([model.exit(model.head(xcal[i:i + 500])) for i in range(0, len(xcal), 500)])
    temperature, _ = fit_temperature(logits, yva_t)
    last = [n for n in model.exit.nodes if n[0] == "Gemm"][-1]
    with torch.no_grad():
        for name in last[2][1:3]:
            model.exit.params[model.exit._key[name]].div_(temperature)
        probs = torch.softmax(model.exit(torch.cat([model.head(xcal[i:i + 500])
                                                    for i in range(0, len(xcal), 500)])), 1)
    conf, pred = probs.max(1)
    conf = conf.numpy()
    new_bins = calibration_bins(conf, (pred != yva_t).numpy().astype(float), len(bins))
    tail_accuracy_per_bin(model, xcal, yva_t, rates, conf, new_bins, lo=lo, hi=hi)

    xte_t, yte_t = tensor(xte, inp), torch.from_numpy(yte)

    @torch.no_grad()
    def accuracy(m):
        out = {}
        zs = torch.cat([m.head(xte_t[i:i + 500]) for i in range(0, len(xte_t), 500)])
        for r in rates:
            out[r.name] = round(float((m.tail(apply_rate(zs, r.bits, r.channels, lo=lo, hi=hi))
                                       .argmax(1) == yte_t).float().mean()), 4)
        out["exit"] = round(float((m.exit(zs).argmax(1) == yte_t).float().mean()), 4)
        return out
    test_acc, src_acc = accuracy(model), accuracy(Package(src))
    print("clean test accuracy (source -> robust): " +
          "  ".join(f"{k} {src_acc[k]:.4f}->{test_acc[k]:.4f}" for k in test_acc), flush=True)

    out = os.path.abspath(args.out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp)
        for part in ("head", "exit", "tail"):
            getattr(model, part).save(os.path.join(tmp, manifest["files"][part]))
        manifest["name"] = manifest["name"] + "-robust"
        manifest["exit_calibration"] = {"bins": new_bins}
        manifest.pop("entropy_model", None)  # refitted below for the new features
        prov = manifest.get("provenance", {})
        metrics = dict(prov.get("metrics", {}))
        metrics.update({"test_images": len(yte),
                        "tail_accuracy": {r.name: test_acc[r.name] for r in rates},
                        "exit_accuracy": test_acc["exit"],
                        "validation_tail_accuracy": {r.name: round(float(
                            (model.tail(apply_rate(model.head(xva_c), r.bits, r.channels, lo=lo, hi=hi))
                             .argmax(1) == yva_t).float().mean()), 4) for r in rates},
                        "validation_exit_accuracy": round(best["val"]["exit"], 4)})
        for k in [k for k in metrics if k.startswith("camera_")]:
            metrics.pop(k)
        manifest["provenance"] = {
            "kind": "robust-finetune",
            "command": command,
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "torch_version": torch.__version__,
            "source": {"dir": os.path.relpath(src), "name": manifest["name"][:-len("-robust")],
                       "command": prov.get("command"), "test_accuracy": src_acc},
            "profiles": os.path.relpath(os.path.abspath(args.profiles)),
            "settings": {k: getattr(args, k) for k in ("epochs", "lr", "batch_size", "consistency",
                                                       "feature_consistency", "detach_exit", "exit_weight", "jitter", "capture_scale", "p_float",
                                                       "max_accuracy_drop", "seed")},
            "exit_temperature": round(temperature, 6),
            "epochs": history,
            "best_epoch": best["epoch"],
            "validation_instability": {"source": start["instability"],
                                       "robust": best["val"]["instability"]},
            "training_seconds": round(time.time() - t_start, 1),
            "metrics": metrics,
            "kept_from_source": "fusion settings and policy.json were tuned for the source package",
        }
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        subprocess.run([sys.executable, os.path.join(HERE, "fit_entropy.py"), "--package", tmp]
                       + (["--images", "2000"] if args.quick else []), check=True)
        export.place_package(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {out} in {time.time() - t_start:.0f}s (best epoch {best['epoch']}, validation "
          f"instability {start['instability']:.4f} -> {best['val']['instability']:.4f})", flush=True)


if __name__ == "__main__":
    main()
