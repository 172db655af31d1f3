"""ONNX export (opset 11, dynamic batch, one input/one output) and OpenCV-dnn verification."""
import copy
import os
import shutil

import numpy as np
import torch
import torch.nn as nn

OPSET = 11
# Ops OpenCV dnn 4.6 is known to import for these graphs.
CV_SAFE_OPS = {"Conv", "BatchNormalization", "Relu", "Sigmoid", "MaxPool", "GlobalAveragePool",
               "Flatten", "Gemm", "Add", "Concat"}


def exit_with_temperature(exit_module, temperature):
    """Copy of the exit whose output (last registered) Linear is scaled by 1/T (logits / T, no extra graph op)."""
    from model import output_linear
    m = copy.deepcopy(exit_module).eval()
    last = output_linear(m)
    with torch.no_grad():
        last.weight.div_(temperature)
        last.bias.div_(temperature)
    return m


def place_package(tmp, out):
    """Moves the finished package directory `tmp` to `out`, replacing what is there: the old
    one is renamed aside first, so `out` is always a whole package (old or new)."""
    parent = os.path.dirname(out)
    old = None
    if os.path.exists(out):
        old = os.path.join(parent, f".{os.path.basename(out)}.old-{os.getpid()}")
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old)


def export_onnx(module, example, path, input_name, output_name):
    module = module.eval()
    with torch.no_grad():
        torch.onnx.export(module, example, path, opset_version=OPSET,
                          input_names=[input_name], output_names=[output_name],
                          dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}},
                          do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
    check_onnx(path)


def check_onnx(path):
    """onnx.checker + op whitelist + exactly one input and one output. Returns op types."""
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = {n.op_type for n in m.graph.node}
    bad = ops - CV_SAFE_OPS
    if bad:
        raise RuntimeError(f"{path}: ops not on the OpenCV-safe list: {sorted(bad)}")
    init = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in init]
    if len(inputs) != 1 or len(m.graph.output) != 1:
        raise RuntimeError(f"{path}: expected one input and one output")
    return sorted(ops)


def onnx_io(path):
    """[(kind, name, shape)] with 'N' for the dynamic batch axis."""
    import onnx
    m = onnx.load(path)
    init = {i.name for i in m.graph.initializer}

    def shape(v):
        return [d.dim_param if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim]

    out = [("input", v.name, shape(v)) for v in m.graph.input if v.name not in init]
    out += [("output", v.name, shape(v)) for v in m.graph.output]
    return out


def cv2_forward(path, x):
    import cv2
    net = cv2.dnn.readNetFromONNX(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.setInput(np.ascontiguousarray(x, dtype=np.float32))
    return net.forward()


def verify_cv2(module, path, example_batch, batch_sizes=(1, 8), tol=1e-4):
    """Run the ONNX file through OpenCV dnn and compare with torch. Returns {bs: max_abs_diff}.

    Raises if OpenCV cannot load it or the outputs differ by more than tol.
    """
    module = module.eval()
    diffs = {}
    for bs in batch_sizes:
        x = example_batch[:bs]
        with torch.no_grad():
            ref = module(x).numpy()
        got = cv2_forward(path, x.numpy())
        if got.shape != ref.shape:
            raise RuntimeError(f"{path}: cv2 output shape {got.shape} != torch {ref.shape}")
        d = float(np.max(np.abs(got - ref)))
        diffs[bs] = d
        if not d <= tol:
            raise RuntimeError(f"{path}: cv2 vs torch max abs diff {d:.3g} > {tol:g} at batch {bs}")
    return diffs


def cv2_available():
    try:
        import cv2  # noqa: F401
        return True
    except ImportError:
        return False


def package_size(directory):
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory))
