#!/usr/bin/python3
"""Close the loop: fine-tune a package's edge part on the frames its edges harvested.

The edges keep some frames for retraining in a harvest store (deepcut-harvest/1: SQLite, written
by the C++ edge or cloud). This trains the package's exit on them (--part exit, the default: the
head stays, so the features, fingerprint and model tag stay and a running cloud keeps serving
the new version) or its head and exit (--part head: the tail stays frozen and the loss keeps the
tail's answers and the features near the parent's; the entropy model is refitted, so the
fingerprint changes and the cloud must load the new package), and writes a new package version
whose manifest says where it came from (provenance.parent, provenance.harvest).

Labels: --labels cloud (the default, what a deployment has) takes the cloud's answer where the
frame was offloaded and otherwise what the package's own tail answers on it at full precision
(what the cloud would have said); --labels true takes the stored true label (frames without one
are skipped). Inputs are recomputed from the stored PNG with data.preprocess_frame, not taken
from the stored features, so the head can train. A share of the frames (--val-fraction) is held
out: the epoch kept is the one with the lowest held-out loss among those whose exit agrees with
at least as many held-out labels as the parent's (and, with --part head, whose tail loses at
most --max-tail-drop of its agreement); if no epoch qualifies, or the store has fewer than 20
usable frames, the new version keeps the parent's weights and the summary says so. The exit's
temperature and calibration bins are refitted from 200 labelled frames on (else the parent's
stay), and provenance.metrics are re-measured on the package's own data set where it can be
read (verify_package.py then still passes).

    /usr/bin/python3 splitnet/training/finetune_harvest.py --model models/fmnist \\
        --store harvest.db --out models/fmnist-h1 --summary h1.json

Exit status: 0 package written (also when it keeps the parent's weights); 2 bad input (one line
on stderr naming what is wrong, nothing written); 1 anything else (nothing written).
--summary FILE (JSON) is written in every case, with "ok" and, on failure, "error".
"""
import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

import cv2
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import export  # noqa: E402
from finetune_robust import Package  # noqa: E402
from model import Rate, apply_rate, ste_mixed_rates  # noqa: E402
from train import (calibration_bins, evaluate, fit_temperature, head_features,  # noqa: E402
                   tail_accuracy_per_bin)

STORE_FORMAT = "deepcut-harvest/1"
SUMMARY_FORMAT = "deepcut-harvest-finetune/1"
MIN_FRAMES = 20  # fewer usable frames: too few to train on and hold out, the parent is kept
DEFAULTS = dict(labels="cloud", part="exit", epochs=40, max_steps=300, lr=None, batch_size=0,
                seed=1, threads=2, val_fraction=0.2, weight_anchor=0.01, feature_anchor=10.0,
                max_tail_drop=0.02, patience=8, min_calibration=200, metrics=True,
                data_dir=data.DEFAULT_DATA_DIR)
DEFAULT_LR = {"exit": 3e-3, "head": 3e-4}


class InputError(Exception):
    """Bad input: one line, exit status 2, nothing written."""


def log(quiet, *a):
    if not quiet:
        print(*a, file=sys.stderr, flush=True)


def fingerprint(manifest):
    """The package's fingerprint as the runtime computes it (docs/protocol.md, "Model tag"):
    FNV-1a over the fingerprint text, then over every rate's entropy tables (uint16 LE)."""
    b = manifest["bottleneck"]

    def g(v):
        return "%g" % float(np.float32(v))  # C's %g of the float32 value
    text = "%s|%dx%dx%d|%s,%s,%s|%d" % (manifest["name"], b["channels"], b["height"], b["width"],
                                        g(b["min"]), g(b["max"]), g(b["fill"]),
                                        len(manifest["classes"]))
    text += "".join("|%s:%d:%d" % (r["name"], r["bits"], r["channels"]) for r in manifest["rates"])
    tables = manifest.get("entropy_model", {}).get("rates", {})
    blob = text.encode() + b"".join(np.asarray(tables[r["name"]], "<u2").tobytes()
                                    for r in manifest["rates"] if r["name"] in tables)
    h = 2166136261
    for byte in blob:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def model_tag(fp):
    return (fp >> 16) ^ (fp & 0xFFFF)


def sha256_of(*paths):
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_package(model_dir):
    if not os.path.isdir(model_dir):
        raise InputError(f"--model {model_dir}: no such package directory")
    path = os.path.join(model_dir, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise InputError(f"--model {model_dir}: no manifest.json (not a package directory)")
    except (OSError, ValueError) as e:
        raise InputError(f"--model {path}: cannot read it: {e}")
    if not isinstance(manifest, dict) or manifest.get("format") != "deepcut-model/1":
        raise InputError(f'--model {path}: not a package manifest '
                         '("format" must be "deepcut-model/1")')
    try:
        model = Package(model_dir).eval()
    except Exception as e:  # a missing or unreadable graph: onnx's own error says which
        raise InputError(f"--model {model_dir}: cannot load its graphs: {e}")
    return manifest, model


def read_store(path, manifest, model_dir):
    """(meta, rows) of a harvest store made for this package; InputError naming what is wrong."""
    if not os.path.exists(path):
        raise InputError(f"--store {path}: no such file")
    if not os.path.isfile(path):
        raise InputError(f"--store {path}: not a file")
    try:
        # Read-only: the edge or cloud may be writing it (WAL: readers never block it).
        db = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            check = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
            if check != ["ok"]:
                raise InputError(f"--store {path}: the store is corrupt (quick_check: "
                                 + "; ".join(c.replace("\n", " ") for c in check) + ")")
            tables = {r[0] for r in
                      db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "frames"} <= tables:
                raise InputError(f"--store {path}: not a harvest store (no meta or frames table)")
            meta = dict(db.execute("SELECT key, value FROM meta"))
            if meta.get("format") != STORE_FORMAT:
                raise InputError(f"--store {path}: format is '{meta.get('format', '(none)')}', "
                                 f"expected '{STORE_FORMAT}'")
            if meta.get("model_name") != manifest["name"]:
                raise InputError(f"--store {path} was made for model '{meta.get('model_name')}', "
                                 f"package {model_dir} is '{manifest['name']}'")
            b = manifest["bottleneck"]
            for key, want in (("classes", len(manifest["classes"])),
                              ("feature_count", b["channels"] * b["height"] * b["width"])):
                if meta.get(key) != str(want):
                    raise InputError(f"--store {path}: {key} is {meta.get(key, '(none)')}, "
                                     f"package {model_dir} has {want}")
            rows = db.execute("SELECT id, edge_id, label, image, cloud_class, sampler, package "
                              "FROM frames ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:  # "file is not a database", "... image is malformed"
        raise InputError(f"--store {path}: cannot read it as a harvest store ({e})")
    if not rows:
        raise InputError(f"--store {path}: the store holds no frames")
    return meta, rows


def decode_frames(rows, manifest, labels):
    """Model inputs (the reference pre-processing of the stored PNG), the label the store gives
    each usable frame (-1: ask the tail), and counts of what was skipped and why."""
    k, inp = len(manifest["classes"]), manifest["input"]
    xs, ys, sources, kept = [], [], [], []
    skipped = {"unlabelled": 0, "bad_label": 0, "bad_image": 0}
    for fid, edge, label, image, cloud, sampler, package in rows:
        if labels == "true" and not 0 <= label < k:
            skipped["unlabelled" if label == -1 else "bad_label"] += 1
            continue
        try:
            img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED)
        except (TypeError, cv2.error):
            img = None
        if img is None or img.dtype != np.uint8:
            skipped["bad_image"] += 1
            continue
        xs.append(data.preprocess_frame(img, inp))
        if labels == "true":
            ys.append(label)
            sources.append("true")
        else:  # the cloud's answer where it gave one; a value out of range counts as none
            ok = 0 <= cloud < k
            ys.append(cloud if ok else -1)
            sources.append("cloud" if ok else "tail")
        kept.append((fid, edge, label, sampler, package))
    return xs, ys, sources, kept, skipped


def shift_flip(x, black, gen, pad=2):
    """The training augmentation (random shift of up to `pad` pixels filled with black, and a
    horizontal flip; data.augment) on normalised [N,C,H,W] of any channel count."""
    n, c, h, w = x.shape
    xp = black.view(1, c, 1, 1).repeat(n, 1, h + 2 * pad, w + 2 * pad)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    d = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen).tolist()
    out = torch.stack([xp[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(d)])
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)


@torch.no_grad()
def heldout_score(model, x, y, target, rate, bn, part):
    """The exit's agreement with the held-out labels and its loss against the training targets;
    with --part head also the tail's agreement at the default rate (the cloud's answers)."""
    z = model.head(x)
    logits = model.exit(z)
    s = {"exit_agreement": round(float((logits.argmax(1) == y).float().mean()), 4),
         "exit_loss": round(float(F.cross_entropy(logits, target)), 5)}
    if part == "head":
        t = model.tail(apply_rate(z, rate.bits, rate.channels, bn["fill"], bn["min"], bn["max"]))
        s["tail_agreement"] = round(float((t.argmax(1) == y).float().mean()), 4)
    return s


def parent_cloud_accuracy(bins, parent_bins):
    """For each new bin, the parent bin's per-rate tail accuracy at its middle confidence: with
    cloud labels the tail cannot be scored against its own answers."""
    for b in bins:
        mid = (b["confidence_min"] + b["confidence_max"]) / 2
        src = next((p for p in parent_bins if mid < p["confidence_max"]), parent_bins[-1])
        if "cloud_accuracy" in src:
            b["cloud_accuracy"] = dict(src["cloud_accuracy"])


def validation_split(prov):
    """(size, seed) of the parent's validation split: recorded by this script, else train.py's
    --val-size / --split-seed (defaults 5000 / 0) as the parent's command gives them."""
    rec = prov.get("metrics", {}).get("validation_split")
    if rec:
        return rec["size"], rec["seed"]
    args = shlex.split(prov.get("command") or "")

    def opt(name, default):
        return int(args[args.index(name) + 1]) if name in args[:-1] else default
    return opt("--val-size", 5000), opt("--split-seed", 0)


def measure_metrics(model, manifest, data_dir, part, rates, notes):
    """The parent's provenance.metrics with those this run changed re-measured on the same
    images (Fashion-MNIST test set and validation split, clean), so they stay honest and
    verify_package.py still passes; what cannot be re-measured is left and named in `notes`."""
    prov = manifest.get("provenance", {})
    metrics = dict(prov.get("metrics", {}))
    if manifest["classes"] != data.CLASSES or "test_images" not in metrics:
        notes.append("provenance.metrics are the parent's: its data set is not Fashion-MNIST")
        return metrics, None
    try:
        xtr, ytr = data.load_split(data_dir, "train")
        xte, yte = data.load_split(data_dir, "t10k")
    except (OSError, ValueError) as e:
        notes.append(f"provenance.metrics are the parent's: cannot read the data set ({e})")
        return metrics, None
    inp = manifest["input"]
    bn = manifest["bottleneck"]

    def norm(u8):  # data.preprocess_frame, vectorised: the images are gray at the model's size
        x = torch.from_numpy(u8.astype(np.float32)).unsqueeze(1)
        return (x * inp["scale"] - inp["mean"][0]) / inp["std"][0]
    n = metrics["test_images"]
    sets = [("", norm(xte[:n]), torch.from_numpy(yte[:n]))]
    size, seed = validation_split(prov)
    if metrics.get("validation_images") == size:
        _, val_idx = data.split_indices(len(xtr), size, seed)
        sets.append(("validation_", norm(xtr[val_idx]), torch.from_numpy(ytr[val_idx])))
        metrics["validation_split"] = {"size": size, "seed": seed}
    else:
        notes.append("provenance.metrics.validation_* are the parent's: its validation split "
                     "is unknown")
    measured = {}
    for prefix, x, y in sets:
        if part == "head":
            acc, _ = evaluate(model, x, y, rates, lo=bn["min"], hi=bn["max"])
            measured[prefix + "tail_accuracy"] = {r.name: round(acc[r.name], 4) for r in rates}
            measured[prefix + "float_tail_accuracy"] = round(acc["float"], 4)
        else:  # the tail did not change: the exit alone
            with torch.no_grad():
                pred = model.exit(head_features(model, x)).argmax(1)
            acc = {"exit": float((pred == y).float().mean())}
        measured[prefix + "exit_accuracy"] = round(acc["exit"], 4)
    old = dict(metrics)
    metrics.update({k: v for k, v in measured.items() if k in metrics})  # the fields it has
    stale = [k for k in metrics if k.startswith("camera_") and ("exit" in k or part == "head")]
    if stale:
        notes.append("provenance.metrics." + ", ".join(stale)
                     + " are the parent's (not re-measured)")
    return metrics, {k: {"parent": old[k], "new": v} for k, v in measured.items() if k in old}


def train(model, model_dir, x, y, target, part, rates, default, bn, inp, gen, quiet, lr, epochs,
          max_steps, batch_size, seed, val_fraction, weight_anchor, feature_anchor, max_tail_drop,
          patience):
    """Trains the exit (or head and exit) of `model` in place on the frames x with training
    targets `target` (labels y), holding out val_fraction of them; leaves the kept weights in
    `model` and returns what happened."""
    n = len(y)
    # Held-out split (its own generator: the split does not move with the training's draws).
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    va, tr = torch.from_numpy(order[:n_val]), torch.from_numpy(order[n_val:])
    xva, yva, tva = x[va], y[va], target[va]

    for q in model.parameters():
        q.requires_grad_(False)
    if part == "head":  # frozen: what the features are anchored to
        parent = Package(model_dir).eval()
        for q in parent.parameters():
            q.requires_grad_(False)
    train_parts = [model.exit] + ([model.head] if part == "head" else [])
    params = [q for m in train_parts for q in m.parameters()]
    for q in params:
        q.requires_grad_(True)
    origin = [q.detach().clone() for q in params]
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    before = heldout_score(model, xva, yva, tva, default, bn, part)
    log(quiet, f"held-out {n_val} frames, parent: exit agreement {before['exit_agreement']:.4f} "
        f"loss {before['exit_loss']:.4f}"
        + (f", tail@{default.name} {before['tail_agreement']:.4f}" if part == "head" else ""))

    # The shift/flip augmentation is for the head only: with the head frozen the exit gains
    # nothing from invariances (it lost 1 point with them on harvested frames), and its
    # features can be computed once.
    z_all = None
    if part == "exit":
        with torch.no_grad():
            z_all = torch.cat([model.head(x[i:i + 256]) for i in range(0, n, 256)])
    black = torch.tensor([(0.0 * inp["scale"] - m) / s for m, s in zip(inp["mean"], inp["std"])],
                         dtype=torch.float32)
    # Auto batch: about 8 steps an epoch, so a store of thousands of frames still gets tens of
    # epochs within max_steps (the exit needs thousands of frames to gain its last points).
    batch_size = batch_size or min(512, max(32, -(-len(tr) // 8)))
    steps_per_epoch = (len(tr) + batch_size - 1) // batch_size
    epochs = max(1, min(epochs, max_steps // steps_per_epoch))
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    best, best_state, best_epoch, history, steps = before, None, 0, [], 0
    t_train = time.time()
    for epoch in range(1, epochs + 1):
        perm = tr[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            yb = target[idx]
            if part == "exit":
                loss = F.cross_entropy(model.exit(z_all[idx]), yb)
            else:
                xb = shift_flip(x[idx], black, gen)
                z = model.head(xb)
                with torch.no_grad():
                    z0 = parent.head(xb)
                # The tail sees the features as the codec delivers them (straight through), as
                # in training; a bottleneck not over [0, 1] gets them at full precision.
                unit = (bn["min"], bn["max"]) == (0.0, 1.0)
                zt = ste_mixed_rates(z, rates, 0.1, gen) if unit else z
                loss = (F.cross_entropy(model.exit(z), yb) + F.cross_entropy(model.tail(zt), yb)
                        + feature_anchor * F.mse_loss(z, z0))
            # Weight decay towards the parent's weights (L2-SP): tens of frames must not
            # undo what 55,000 taught.
            loss = loss + weight_anchor * sum(((q - q0) ** 2).sum()
                                              for q, q0 in zip(params, origin))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            steps += 1
        score = heldout_score(model, xva, yva, tva, default, bn, part)
        # Kept: the epoch of the lowest held-out loss (on a few dozen frames far less noisy than
        # the agreement, whose best epoch is mostly luck) among those agreeing with at least
        # as many held-out labels as the parent and, for the head, costing the cloud's answers
        # on them at most max_tail_drop.
        eligible = score["exit_agreement"] >= before["exit_agreement"] and (
            part == "exit" or score["tail_agreement"] >= before["tail_agreement"] - max_tail_drop)
        mark = ""
        if eligible and score["exit_loss"] < best["exit_loss"]:
            best, best_epoch, mark = score, epoch, " *"
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        history.append({"epoch": epoch, "loss": round(total / len(tr), 4), **score})
        log(quiet, f"epoch {epoch}/{epochs} step {steps}: loss {total / len(tr):.4f}  "
            f"held-out exit agreement {score['exit_agreement']:.4f} loss {score['exit_loss']:.4f}"
            + (f" tail {score['tail_agreement']:.4f}" if part == "head" else "") + mark)
        if epoch - max(best_epoch, 1) >= patience:
            log(quiet, f"no better held-out score for {patience} epochs: stopping")
            break
    improved = best_state is not None
    model.load_state_dict(best_state if improved else start_state)
    model.eval()
    after = heldout_score(model, xva, yva, tva, default, bn, part)
    return {"improved": improved, "va": va, "train_frames": len(tr), "heldout_frames": n_val,
            "before": before, "after": after, "history": history, "steps": steps,
            "best_epoch": best_epoch if improved else 0, "epochs": epochs, "batch_size": batch_size,
            "seconds": round(time.time() - t_train, 1)}


def finetune(model_dir, store_path, out_dir, labels="cloud", part="exit", epochs=40, max_steps=300,
             lr=None, batch_size=0, seed=1, threads=2, val_fraction=0.2, weight_anchor=0.01,
             feature_anchor=10.0, max_tail_drop=0.02, patience=8, min_calibration=200, metrics=True,
             data_dir=data.DEFAULT_DATA_DIR, quiet=False, command=None):
    """Fine-tunes `model_dir`'s exit (or head and exit) on the store's frames and writes the new
    package to `out_dir` (atomically). Returns the summary dict; raises InputError on bad input
    before any work."""
    t_start = time.time()
    if labels not in ("cloud", "true") or part not in ("exit", "head"):
        raise InputError(f"--labels must be cloud or true, --part exit or head "
                         f"(got {labels}, {part})")
    if not 0.0 < val_fraction <= 0.5:
        raise InputError(f"--val-fraction must be in (0, 0.5], got {val_fraction}")
    if epochs < 1 or max_steps < 1 or batch_size < 0 or threads < 1:
        raise InputError("--epochs, --max-steps and --threads must be at least 1, "
                         "--batch-size at least 0")
    model_dir, store_path, out_dir = (os.path.abspath(p) for p in (model_dir, store_path, out_dir))
    if os.path.exists(out_dir) and not (os.path.isdir(out_dir) and (
            not os.listdir(out_dir) or os.path.isfile(os.path.join(out_dir, "manifest.json")))):
        raise InputError(f"--out {out_dir} exists and is not a package directory")
    if out_dir == model_dir or out_dir.startswith(model_dir + os.sep):
        raise InputError(f"--out {out_dir} must not be the --model package or inside it")
    above = os.path.dirname(out_dir)
    while not os.path.exists(above):
        above = os.path.dirname(above)
    try:  # the package is made in a folder beside --out: check that one can be made there
        os.rmdir(tempfile.mkdtemp(dir=above))
    except OSError as e:
        raise InputError(f"--out {out_dir}: cannot write in {above} ({e.strerror})")
    lr = DEFAULT_LR[part] if lr is None else lr
    command = command or (f"finetune_harvest.finetune({model_dir!r}, {store_path!r}, {out_dir!r}, "
                          f"labels={labels!r}, part={part!r}, seed={seed})")
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    manifest, model = load_package(model_dir)
    meta, rows = read_store(store_path, manifest, model_dir)
    xs, ys, sources, kept, skipped = decode_frames(rows, manifest, labels)
    if labels == "true" and not xs and not skipped["bad_image"]:
        raise InputError(f"--store {store_path}: --labels true, but no frame has a true label "
                         "(a deployment's frames have none: use --labels cloud)")
    if not xs:
        raise InputError(f"--store {store_path}: none of its {len(rows)} frames is usable ("
                         + ", ".join(f"{v} {k}" for k, v in skipped.items() if v) + ")")
    bn, inp = manifest["bottleneck"], manifest["input"]
    rates = [Rate(r["name"], r["bits"], r["channels"]) for r in manifest["rates"]]
    default = next(r for r in rates if r.name == manifest["default_rate"])
    parent_fp = fingerprint(manifest)
    x = torch.from_numpy(np.stack(xs))
    y = torch.tensor(ys)
    target = F.one_hot(y.clamp(min=0), len(manifest["classes"])).float()
    need = (y < 0).nonzero().flatten()
    if len(need):  # what the cloud would answer: the package's own tail at full precision
        with torch.no_grad():
            p = torch.cat([F.softmax(model.tail(model.head(x[need[i:i + 256]])), 1)
                           for i in range(0, len(need), 256)])
        # Trained towards the tail's whole answer (distillation: more than its argmax says, which
        # on a few hundred frames is worth +0.5 points of exit accuracy), scored on its argmax.
        y[need], target[need] = p.argmax(1), p
    n = len(y)
    label_counts = {s: sources.count(s) for s in ("cloud", "tail", "true")}
    # How right the cloud labels are, where the store knows (a test store): the label noise.
    truth = [(int(y[i]), r[2]) for i, r in enumerate(kept)
             if labels == "cloud" and 0 <= r[2] < len(manifest["classes"])]
    samplers, packages = {}, {}
    for r in kept:
        samplers[r[3]] = samplers.get(r[3], 0) + 1
        packages[r[4]] = packages.get(r[4], 0) + 1
    edges = len({r[1] for r in kept})
    log(quiet, f"store {store_path}: {len(rows)} frames, {n} used ({edges} edges; samplers "
        + ", ".join(f"{k} {v}" for k, v in sorted(samplers.items())) + "); labels: "
        + ", ".join(f"{v} {k}" for k, v in label_counts.items() if v)
        + "".join(f"; skipped {v} {k}" for k, v in skipped.items() if v))
    notes = []
    if meta.get("model_fingerprint") != str(parent_fp):
        notes.append(f"the store was made with fingerprint {meta.get('model_fingerprint')}, the "
                     f"package has {parent_fp} (another version; its frames are used all the same)")
        log(quiet, "note: " + notes[-1])

    if n < MIN_FRAMES:  # a store this small teaches nothing: the new version is the parent
        run = {"improved": False, "train_frames": 0, "heldout_frames": 0, "before": None,
               "after": None, "history": [], "steps": 0, "best_epoch": 0, "epochs": 0,
               "batch_size": 0, "seconds": 0.0}
        notes.append(f"{n} usable frames, fewer than {MIN_FRAMES}: too few to train on and hold "
                     "some out, the parent's weights are kept")
    else:
        run = train(model, model_dir, x, y, target, part, rates, default, bn, inp, gen, quiet, lr,
                    epochs, max_steps, batch_size, seed, val_fraction, weight_anchor,
                    feature_anchor, max_tail_drop, patience)
        if not run["improved"]:
            notes.append("no epoch did better than the parent on the held-out frames: its "
                         "weights are kept")
    improved = run["improved"]
    if notes and not improved:
        log(quiet, "note: " + notes[-1])

    # Calibration: with enough labelled frames, a temperature fitted on the held-out frames
    # (the training frames would make it overconfident) and bins over all of them.
    new_manifest = json.loads(json.dumps(manifest))
    calibration = {"refitted": False, "temperature": None}
    if not improved:
        calibration["reason"] = "the parent's weights are kept"
    elif n < min_calibration:
        calibration["reason"] = (f"{n} labelled frames, fewer than {min_calibration}: the parent's "
                                 "calibration is kept")
    else:
        xva, yva = x[run["va"]], y[run["va"]]
        with torch.no_grad():
            temperature, _ = fit_temperature(model.exit(model.head(xva)), yva)
            gemm = [nd for nd in model.exit.nodes if nd[0] == "Gemm"][-1]
            for name in gemm[2][1:3]:  # logits / T, folded into the output layer (as train.py)
                model.exit.params[model.exit._key[name]].div_(temperature)
            probs = torch.softmax(torch.cat([model.exit(model.head(x[i:i + 256]))
                                             for i in range(0, n, 256)]), 1)
        conf, pred = probs.max(1)
        parent_bins = manifest["exit_calibration"]["bins"]
        bins = calibration_bins(conf.numpy(), (pred != y).numpy().astype(float),
                                max(1, min(len(parent_bins), n // 20)))
        if labels == "true":
            tail_accuracy_per_bin(model, x, y, rates, conf.numpy(), bins,
                                  lo=bn["min"], hi=bn["max"])
        else:
            parent_cloud_accuracy(bins, parent_bins)
        new_manifest["exit_calibration"] = {"bins": bins}
        calibration.update(refitted=True, temperature=round(temperature, 6), bins=len(bins),
                           reason=f"{n} labelled frames: temperature on the {len(yva)} "
                                  f"held-out, bins on all; error rates against the {labels} labels"
                                  + ("" if labels == "true" else
                                     ", cloud_accuracy from the parent's bins by confidence"))
    log(quiet, "exit calibration: " + ("refitted, T " + str(calibration["temperature"])
                                       if calibration["refitted"] else calibration["reason"]))

    prov = manifest.get("provenance", {})
    new_metrics, measured = prov.get("metrics", {}), None
    if improved and metrics:
        new_metrics, measured = measure_metrics(model, manifest, data_dir, part, rates, notes)
    elif improved:
        notes.append("provenance.metrics are the parent's (--no-metrics)")

    files = manifest["files"]
    harvest = {"store": store_path, "store_sha256": sha256_of(store_path),
               "role": meta.get("role"), "frames": n, "store_frames": len(rows),
               "labels": label_counts, "label_source": labels, "samplers": samplers,
               "edges": edges, "packages": packages, "part": part}
    new_manifest["provenance"] = {
        "kind": "harvest-finetune",
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "dataset": prov.get("dataset"),
        "parent": {"name": manifest["name"], "dir": model_dir, "fingerprint": parent_fp,
                   "model_tag": model_tag(parent_fp), "kind": prov.get("kind"),
                   "command": prov.get("command"),
                   "sha256": sha256_of(*(os.path.join(model_dir, files[p])
                                         for p in ("head", "exit")))},
        "harvest": harvest,
        "training": {"lr": lr, "epochs": run["epochs"], "max_steps": max_steps,
                     "batch_size": run["batch_size"], "seed": seed, "val_fraction": val_fraction,
                     "weight_anchor": weight_anchor,
                     "feature_anchor": feature_anchor if part == "head" else None,
                     "max_tail_drop": max_tail_drop if part == "head" else None,
                     "history": run["history"], "best_epoch": run["best_epoch"],
                     "kept_parent": not improved,
                     "heldout": {"frames": run["heldout_frames"], "before": run["before"],
                                 "after": run["after"]}},
        "exit_calibration": calibration,
        "metrics": new_metrics,
        "notes": notes,
    }

    parent_out = os.path.dirname(out_dir)
    os.makedirs(parent_out, exist_ok=True)
    tmp = os.path.join(parent_out, f".{os.path.basename(out_dir)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(model_dir, tmp)  # policy.json and the rest come along
        if improved:
            for p in ["exit"] + (["head"] if part == "head" else []):
                getattr(model, p).save(os.path.join(tmp, files[p]))
            # The runtime runs them in OpenCV dnn: check it reads them and agrees with torch.
            with torch.no_grad():
                export.verify_cv2(model.exit, os.path.join(tmp, files["exit"]), model.head(x[:8]))
            if part == "head":
                export.verify_cv2(model.head, os.path.join(tmp, files["head"]), x[:8])
        if improved and part == "head":
            new_manifest.pop("entropy_model", None)  # refitted for the new features just below
        write_json(os.path.join(tmp, "manifest.json"), new_manifest)
        if improved and part == "head":
            subprocess.run([sys.executable, os.path.join(HERE, "fit_entropy.py"), "--package", tmp,
                            "--data-dir", data_dir], check=True,
                           stderr=subprocess.DEVNULL if quiet else None)
            with open(os.path.join(tmp, "manifest.json")) as f:
                new_manifest = json.load(f)
            # fit_entropy records the command it ran, on the temporary folder: name the package.
            cmd = new_manifest["provenance"].get("entropy_model_command", "")
            new_manifest["provenance"]["entropy_model_command"] = cmd.replace(tmp, out_dir)
            write_json(os.path.join(tmp, "manifest.json"), new_manifest)
        export.place_package(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    new_fp = fingerprint(new_manifest)
    summary = {
        "format": SUMMARY_FORMAT, "ok": True, "model": model_dir, "store": store_path,
        "out": out_dir, "part": part, "labels": labels, "store_frames": len(rows), "frames": n,
        "train_frames": run["train_frames"], "heldout_frames": run["heldout_frames"],
        "skipped": skipped,
        "label_sources": label_counts,
        "labels_vs_true": round(sum(a == b for a, b in truth) / len(truth), 4) if truth else None,
        "samplers": samplers, "edges": edges,
        "heldout": {"before": run["before"], "after": run["after"]}, "improved": improved,
        "kept_parent": not improved, "best_epoch": run["best_epoch"],
        "epochs_run": len(run["history"]), "steps": run["steps"], "calibration": calibration,
        "fingerprint": {"parent": parent_fp, "new": new_fp},
        "model_tag": {"parent": model_tag(parent_fp), "new": model_tag(new_fp)},
        "cloud_must_reload": new_fp != parent_fp,
        "store_fingerprint_matches": meta.get("model_fingerprint") == str(parent_fp),
        "metrics": measured, "notes": notes,
        "seconds": {"training": run["seconds"], "total": round(time.time() - t_start, 1)},
    }
    return summary


def report(s):
    """The summary, readable (stderr, also with --quiet: it is the result, not progress)."""
    def counts(d):
        return ", ".join(f"{v} {k}" for k, v in d.items() if v)
    h, m, cal = s["heldout"], s["metrics"] or {}, s["calibration"]
    lines = [f"finetune_harvest: wrote {s['out']} (part {s['part']}, "
             f"{s['seconds']['total']:.0f} s)",
             f"  frames       {s['frames']} of {s['store_frames']} in the store "
             f"({s['edges']} edges; {counts(s['samplers'])})"
             + (f"; skipped {counts(s['skipped'])}" if any(s["skipped"].values()) else ""),
             f"  labels       {counts(s['label_sources'])}"
             + ("" if s["labels_vs_true"] is None
                else f" (agree with the true label on {s['labels_vs_true']:.1%})")]
    if h["before"]:
        b, a = h["before"], h["after"]
        lines.append(f"  held-out     {s['heldout_frames']} frames: exit agreement "
                     f"{b['exit_agreement']:.4f} -> {a['exit_agreement']:.4f}"
                     + (f", tail {b['tail_agreement']:.4f} -> {a['tail_agreement']:.4f}"
                        if "tail_agreement" in b else "")
                     + (f" (epoch {s['best_epoch']} of {s['epochs_run']})" if s["improved"]
                        else " (parent's weights kept)"))
    else:
        lines.append("  held-out     none (too few frames)")
    lines.append("  calibration  " + (f"refitted (T {cal['temperature']})" if cal["refitted"]
                                      else cal["reason"]))
    if "exit_accuracy" in m:
        lines.append(f"  test         exit accuracy {m['exit_accuracy']['parent']} -> "
                     f"{m['exit_accuracy']['new']} (the data set's clean test images)")
    lines.append(f"  model tag    {s['model_tag']['parent']} -> {s['model_tag']['new']} ("
                 + ("the cloud must load the new package" if s["cloud_must_reload"]
                    else "same: a running cloud keeps serving it") + ")")
    lines += [f"  note: {note}" for note in s["notes"]]
    print("\n".join(lines), file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="the package to start from (parent)")
    p.add_argument("--store", required=True, help="harvest store (deepcut-harvest/1 SQLite file)")
    p.add_argument("--out", required=True, help="package directory to write (replaced atomically)")
    p.add_argument("--labels", choices=("cloud", "true"), default=DEFAULTS["labels"],
                   help="cloud: the cloud's answer, else the package's tail; "
                        "true: the stored label")
    p.add_argument("--part", choices=("exit", "head"), default=DEFAULTS["part"],
                   help="exit: train the exit only; head: head and exit, tail frozen")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                   help="at most this many epochs")
    p.add_argument("--max-steps", type=int, default=DEFAULTS["max_steps"],
                   help="fewer epochs if they would take more steps")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (Adam, cosine); default {DEFAULT_LR['exit']} for "
                        f"--part exit, {DEFAULT_LR['head']} for --part head")
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                   help="frames per step; 0: about 8 steps an epoch, 32 to 512")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                   help="split, order and augmentation")
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"],
                   help="torch and OpenCV threads")
    p.add_argument("--val-fraction", type=float, default=DEFAULTS["val_fraction"],
                   help="share of the frames held out to choose the epoch and fit the temperature")
    p.add_argument("--weight-anchor", type=float, default=DEFAULTS["weight_anchor"],
                   help="weight of the squared distance of the trained weights to the parent's")
    p.add_argument("--feature-anchor", type=float, default=DEFAULTS["feature_anchor"],
                   help="--part head: weight of the features' squared distance to the parent's")
    p.add_argument("--max-tail-drop", type=float, default=DEFAULTS["max_tail_drop"],
                   help="--part head: held-out agreement of the tail (default rate) an "
                        "epoch may lose")
    p.add_argument("--patience", type=int, default=DEFAULTS["patience"],
                   help="stop after this many epochs without a better held-out score")
    p.add_argument("--min-calibration", type=int, default=DEFAULTS["min_calibration"],
                   help="labelled frames needed to refit the exit's temperature and bins")
    p.add_argument("--no-metrics", dest="metrics", action="store_false",
                   help="do not re-measure provenance.metrics on the data set "
                        "(they stay the parent's)")
    p.add_argument("--data-dir", default=DEFAULTS["data_dir"],
                   help="Fashion-MNIST, for provenance.metrics and the entropy model")
    p.add_argument("--summary", help="write the summary here as JSON (also on failure)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines (the summary at the end still goes to stderr)")
    return p.parse_args(argv)


def write_json(path, obj):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join([sys.executable, sys.argv[0]] + argv)
    kwargs = {k: getattr(args, k) for k in DEFAULTS}
    can_summarise = (not args.summary
                     or os.path.isdir(os.path.dirname(os.path.abspath(args.summary))))
    try:
        if not can_summarise:
            raise InputError(f"--summary {args.summary}: its folder does not exist")
        summary = finetune(args.model, args.store, args.out, quiet=args.quiet, command=command,
                           **kwargs)
        report(summary)
        code = 0
    except InputError as e:
        summary, code = {"format": SUMMARY_FORMAT, "ok": False, "error": str(e)}, 2
        print(f"finetune_harvest: {e}", file=sys.stderr)
    except Exception as e:
        summary = {"format": SUMMARY_FORMAT, "ok": False, "error": f"{type(e).__name__}: {e}"}
        code = 1
        import traceback
        traceback.print_exc()
    if args.summary and can_summarise:
        write_json(args.summary, summary)
    return code


if __name__ == "__main__":
    sys.exit(main())
