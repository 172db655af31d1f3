"""Camera profiles in Python: the steps of eval/camera_profile.h for training-time augmentation.

The C++ runtime's `deepcut-eval instability` applies profiles to measure; the robust
fine-tuning (finetune_robust.py) applies them here, with the same step semantics (8-bit
BGR between steps, OpenCV's filters and codecs). tests/e2e/test_profiles_agree.py checks the two
agree on the deterministic steps. `jitter` draws a nearby profile: the fine-tuning trains on
variations of a profile set, never on the held-out set itself.
"""
import json

import cv2
import numpy as np

# op -> [(parameter, min, max, min_open, integer)]: the ranges the C++ parser enforces.
SPECS = {
    "gain": [("value", 0, 8, True, False)],
    "channel_gain": [("b", 0, 8, True, False), ("g", 0, 8, True, False), ("r", 0, 8, True, False)],
    "gamma": [("value", 0.1, 10, False, False)],
    "gaussian_noise": [("sigma", 0, 100, False, False)],
    "shot_noise": [("scale", 0, 50, False, False)],
    "blur": [("sigma", 0, 20, True, False)],
    "sharpen": [("amount", 0, 10, False, False), ("sigma", 0, 20, True, False)],
    "resize": [("scale", 0.05, 1, False, False)],
    "jpeg": [("quality", 1, 100, False, True)],
    "webp": [("quality", 1, 100, False, True)],
}
INTERP = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
          "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


def load(path):
    """The profiles of a deepcut-profiles/1 file; ValueError naming what is wrong."""
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("format") != "deepcut-profiles/1":
        raise ValueError(f'{path}: not a profile file ("format" must be "deepcut-profiles/1")')
    profiles = doc.get("profiles")
    if not isinstance(profiles, list) or not profiles:
        raise ValueError(f'{path}: "profiles" must be a non-empty list')
    for i, p in enumerate(profiles):
        for s, step in enumerate(p.get("steps", [])):
            where = f"{path}: profile {i} ({p.get('name')}), step {s}"
            spec = SPECS.get(step.get("op"))
            if spec is None:
                raise ValueError(f'{where}: unknown step "{step.get("op")}"')
            for name, lo, hi, lo_open, integer in spec:
                v = step.get(name)
                if not isinstance(v, (int, float)) or (v <= lo if lo_open else v < lo) or v > hi:
                    raise ValueError(f"{where} ({step['op']}): {name} = {v} is out of range")
    return profiles


def _pointwise(img, gains=None, gamma=None):
    f = img.astype(np.float32)
    if gains is not None:
        f = f * np.asarray(gains, np.float32)  # float32 products, as OpenCV's
    if gamma is not None:
        f = np.power(np.clip(f, 0, 255) / np.float32(255.0), np.float32(gamma)) * np.float32(255.0)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def apply(profile, image, rng):
    """8-bit gray or BGR image through the profile's steps -> 8-bit BGR."""
    img = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    for s in profile["steps"]:
        op = s["op"]
        if op == "gain":
            img = _pointwise(img, gains=[s["value"]] * 3)
        elif op == "channel_gain":
            img = _pointwise(img, gains=[s["b"], s["g"], s["r"]])
        elif op == "gamma":
            img = _pointwise(img, gamma=s["value"])
        elif op in ("gaussian_noise", "shot_noise"):
            f = img.astype(np.float32)
            sd = s["sigma"] if op == "gaussian_noise" else np.sqrt(s["scale"] * f)
            img = np.clip(np.rint(f + sd * rng.standard_normal(f.shape)), 0, 255).astype(np.uint8)
        elif op == "blur":
            img = cv2.GaussianBlur(img, (0, 0), s["sigma"])
        elif op == "sharpen":
            blurred = cv2.GaussianBlur(img, (0, 0), s["sigma"])
            img = cv2.addWeighted(img, 1.0 + s["amount"], blurred, -s["amount"], 0.0)
        elif op == "resize":
            h, w = img.shape[:2]
            small = (max(1, int(round(w * s["scale"]))), max(1, int(round(h * s["scale"]))))
            down = cv2.resize(img, small, interpolation=INTERP[s.get("down", "area")])
            img = cv2.resize(down, (w, h), interpolation=INTERP[s.get("up", "linear")])
        elif op in ("jpeg", "webp"):
            flag = cv2.IMWRITE_JPEG_QUALITY if op == "jpeg" else cv2.IMWRITE_WEBP_QUALITY
            ok, buf = cv2.imencode(".jpg" if op == "jpeg" else ".webp", img, [flag, int(s["quality"])])
            if not ok:
                raise RuntimeError(f"{op} encoding failed")
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        else:
            raise ValueError(f"unknown step {op!r}")
    return img


def jitter(profile, rng, amount=0.25):
    """A nearby profile: every parameter moved by up to +-amount of itself (kept in range),
    interpolations redrawn with probability amount, steps kept in order."""
    out = {"name": profile["name"] + "~", "steps": []}
    for s in profile["steps"]:
        t = dict(s)
        for name, lo, hi, lo_open, integer in SPECS[s["op"]]:
            v = s[name] * (1.0 + rng.uniform(-amount, amount))
            if s["op"] in ("jpeg", "webp"):
                v = s[name] + rng.uniform(-amount, amount) * (100 - s[name] + 10)
            v = min(hi, max(lo + (1e-3 if lo_open else 0), v))
            t[name] = int(round(v)) if integer else float(v)
        if s["op"] == "resize":
            for key in ("down", "up"):
                if rng.random() < amount:
                    t[key] = str(rng.choice(list(INTERP)))
        out["steps"].append(t)
    return out


def capture(profile, gray, rng, scale):
    """A gray image as a camera with `profile` captures it: upscaled `scale` times (cubic: the
    scene at the sensor's resolution), through the profile, then converted to gray and resized
    back with the runtime's default pre-processing (INTER_AREA). deepcut-eval instability does
    the same in C++."""
    h, w = gray.shape[:2]
    big = cv2.resize(gray, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC) if scale > 1 else gray
    out = to_gray(apply(profile, big, rng))
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA) if scale > 1 else out


def to_gray(bgr):
    """The reference's BGR -> gray (ITU-R BT.601 weights, as OpenCV's and the runtime's)."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
