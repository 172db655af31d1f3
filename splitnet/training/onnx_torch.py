"""An ONNX graph as a torch module: the training framework's own forward pass of a package.

`OnnxModule(path)` reads a head, exit or tail graph with the `onnx` package and runs its
nodes with torch.nn.functional, in graph order. It is independent of the runtime (OpenCV
dnn), so it serves as the reference pipeline of `deepcut-exray validate`; its weights are
torch Parameters, so the robust fine-tuning trains the package's graphs as they are and
writes them back (`save`) with the graph untouched.

`forward(x)` returns the graph's output; `forward(x, trace=True)` returns
(output, {tensor name: value}) with every node's outputs. `node_outputs()` lists
(node name, op type, output tensor name) in graph order: the runtime names its layers
after the node (OpenCV: "onnx_node!" + node name) or, for the last one, after the output.

Ops: the OpenCV-safe set the exporter allows (Conv, BatchNormalization, Relu, Sigmoid,
MaxPool, GlobalAveragePool, Flatten, Gemm, Add, Concat), BatchNormalization in inference
mode (its running statistics stay fixed; scale and bias train).
"""
import numpy as np
import torch
import torch.nn.functional as F


def _attrs(node):
    import onnx.helper
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(p):
    """ONNX pads [x1_begin, x2_begin, x1_end, x2_end] -> symmetric torch padding, or None."""
    if not p:
        return (0, 0)
    n = len(p) // 2
    if list(p[:n]) != list(p[n:]):
        return None
    return tuple(int(v) for v in p[:n])


class OnnxModule(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        import onnx
        import onnx.numpy_helper
        self.path = str(path)
        self.model = onnx.load(self.path)
        g = self.model.graph
        self.params = torch.nn.ParameterDict()
        self._key = {}  # initializer name -> ParameterDict key (names may hold '.' or ':')
        for i, init in enumerate(g.initializer):
            key = f"p{i}"
            self._key[init.name] = key
            arr = onnx.numpy_helper.to_array(init).astype(np.float32)
            self.params[key] = torch.nn.Parameter(torch.from_numpy(arr.copy()))
        init_names = set(self._key)
        inputs = [v.name for v in g.input if v.name not in init_names]
        if len(inputs) != 1 or len(g.output) != 1:
            raise ValueError(f"{self.path}: expected one input and one output")
        self.input_name, self.output_name = inputs[0], g.output[0].name
        self.nodes = [(n.op_type, n.name, list(n.input), list(n.output), _attrs(n)) for n in g.node]
        for op, name, *_ in self.nodes:
            if op not in _OPS:
                raise ValueError(f"{self.path}: node {name} has op {op}, which the reference "
                                 f"does not run (known: {', '.join(sorted(_OPS))})")

    def node_outputs(self):
        return [(name, op, outs[0]) for op, name, _, outs, _ in self.nodes]

    def _value(self, env, name):
        if name in env:
            return env[name]
        return self.params[self._key[name]]

    def forward(self, x, trace=False):
        env = {self.input_name: x}
        for op, name, ins, outs, at in self.nodes:
            args = [self._value(env, n) if n else None for n in ins]
            env[outs[0]] = _OPS[op](args, at, name)
        out = env[self.output_name]
        return (out, env) if trace else out

    @torch.no_grad()
    def save(self, path):
        """The graph with its initializers replaced by the current parameter values."""
        import onnx
        import onnx.numpy_helper
        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        for init in m.graph.initializer:
            arr = self.params[self._key[init.name]].detach().cpu().numpy().astype(np.float32)
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
        onnx.checker.check_model(m)
        onnx.save(m, str(path))


def _conv(a, at, name):
    pad = _pads(at.get("pads"))
    if pad is None:
        raise ValueError(f"{name}: asymmetric padding is not supported")
    return F.conv2d(a[0], a[1], a[2] if len(a) > 2 else None, stride=tuple(at.get("strides", (1, 1))),
                    padding=pad, dilation=tuple(at.get("dilations", (1, 1))), groups=at.get("group", 1))


def _bn(a, at, name):
    x, scale, bias, mean, var = a
    return F.batch_norm(x, mean.detach(), var.detach(), scale, bias, training=False,
                        eps=at.get("epsilon", 1e-5))


def _maxpool(a, at, name):
    pad = _pads(at.get("pads"))
    if pad is None:
        raise ValueError(f"{name}: asymmetric padding is not supported")
    k = tuple(at["kernel_shape"])
    return F.max_pool2d(a[0], k, stride=tuple(at.get("strides", k)), padding=pad,
                        ceil_mode=bool(at.get("ceil_mode", 0)))


def _gemm(a, at, name):
    x, w = a[0], a[1]
    if at.get("transA", 0):
        x = x.t()
    if at.get("transB", 0):
        w = w.t()
    y = at.get("alpha", 1.0) * (x @ w)
    if len(a) > 2 and a[2] is not None:
        y = y + at.get("beta", 1.0) * a[2]
    return y


_OPS = {
    "Conv": _conv,
    "BatchNormalization": _bn,
    "Relu": lambda a, at, n: F.relu(a[0]),
    "Sigmoid": lambda a, at, n: torch.sigmoid(a[0]),
    "MaxPool": _maxpool,
    "GlobalAveragePool": lambda a, at, n: a[0].mean(dim=(2, 3), keepdim=True),
    "Flatten": lambda a, at, n: torch.flatten(a[0], at.get("axis", 1)),
    "Gemm": _gemm,
    "Add": lambda a, at, n: a[0] + a[1],
    "Concat": lambda a, at, n: torch.cat(a, dim=at.get("axis", 1)),
}
