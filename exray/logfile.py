"""Reading a deepcut-exray/1 log (docs/exray.md): log.json, index.jsonl, one .npz per record,
each checked whole; what is wrong is refused as BadInput, naming the file."""
import json
import os

import numpy as np


class BadInput(Exception):
    """Input the tool refuses (exit code 2); the message names what is wrong."""

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
