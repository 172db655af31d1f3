"""The reference pipeline: the training framework's pre-processing and a torch run of the
reference package's ONNX graphs, and the codec's quantiser as docs/model-package.md defines it."""
import json
import os

import numpy as np

from logfile import BadInput


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
