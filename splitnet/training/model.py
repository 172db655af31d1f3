"""Split network for DeepCut: head (edge) -> bottleneck -> tail (cloud), plus early exit.

Only ops that OpenCV dnn 4.6 imports are used: Conv, BatchNormalization (folded on export),
Relu, Sigmoid, MaxPool, GlobalAveragePool, Flatten, Gemm, Add.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass(frozen=True)
class Rate:
    name: str
    bits: int
    channels: int


# Best first (as manifest.json lists them).
ALL_RATES = [
    Rate("8b", 8, 8),
    Rate("4b", 4, 8),
    Rate("3b", 3, 8),
    Rate("2b", 2, 8),
    Rate("2b-4c", 2, 4),
    Rate("1b-4c", 1, 4),
]
RATES_BY_NAME = {r.name: r for r in ALL_RATES}


def quantise(x, bits, lo=0.0, hi=1.0):
    """Exactly the codec of docs/model-package.md: quantise then dequantise."""
    levels = (1 << bits) - 1
    q = torch.clamp(torch.round((x - lo) / (hi - lo) * levels), 0, levels)
    return lo + q * (hi - lo) / levels


def apply_rate(z, bits, channels, fill=0.0, lo=0.0, hi=1.0):
    """Quantise/dequantise z [N,C,h,w] at `bits` over [lo,hi] and replace channels >= `channels` by fill."""
    zq = quantise(z, bits, lo, hi)
    if channels < z.shape[1]:
        zq = zq.clone()
        zq[:, channels:] = fill
    return zq


def conv_bn_relu(cin, cout, k=3):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.c1 = conv_bn_relu(ch, ch)
        self.c2 = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.c2(self.c1(x)))


class Head(nn.Module):
    """[N,in_ch,28,28] -> [N,bottleneck,7,7] in [0,1] (sigmoid).

    Pooling is done before BatchNorm+ReLU in the two down-sampling stages, which keeps the
    element-wise work on 28x28 maps small (CPU training time is dominated by it).
    bottleneck=None gives a plain feature extractor (e.g. for a no-bottleneck baseline):
    the output is then the last ReLU feature map [N,w2,7,7].
    """

    def __init__(self, in_ch=1, w1=32, w2=64, bottleneck=8):
        super().__init__()
        layers = [nn.Conv2d(in_ch, w1, 3, padding=1, bias=False), nn.MaxPool2d(2),  # 28 -> 14
                  nn.BatchNorm2d(w1), nn.ReLU(inplace=True),
                  conv_bn_relu(w1, w2),
                  nn.Conv2d(w2, w2, 3, padding=1, bias=False), nn.MaxPool2d(2),     # 14 -> 7
                  nn.BatchNorm2d(w2), nn.ReLU(inplace=True)]
        if bottleneck is not None:
            layers += [nn.Conv2d(w2, bottleneck, 3, padding=1, bias=False),
                       nn.BatchNorm2d(bottleneck), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.out_channels = bottleneck if bottleneck is not None else w2

    def forward(self, x):
        return self.net(x)


class Tail(nn.Module):
    """[N,in_ch,7,7] -> [N,num_classes] logits."""

    def __init__(self, in_ch=8, width=128, blocks=1, num_classes=10, dropout=0.2):
        super().__init__()
        self.stem = conv_bn_relu(in_ch, width)
        self.blocks = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, z):
        x = self.pool(self.blocks(self.stem(z)))
        return self.fc(self.drop(torch.flatten(x, 1)))


class Exit(nn.Module):
    """Small early-exit classifier on the bottleneck: 1x1 conv + two FC layers (`mlp`).

    Every exit's last registered nn.Linear is its output layer: export divides that layer's
    weights by the fitted temperature (logits / T, no extra graph op).
    """

    def __init__(self, in_ch=8, mid=16, hw=7, hidden=64, num_classes=10, dropout=0.2):
        super().__init__()
        self.conv = conv_bn_relu(in_ch, mid, k=1)
        self.fc1 = nn.Linear(mid * hw * hw, hidden)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, z):
        x = torch.flatten(self.conv(z), 1)
        return self.fc2(self.drop(self.act(self.fc1(x))))


class LinearExit(nn.Module):
    """`linear` exit: Flatten(C*h*w) -> Linear(num_classes); a single Gemm in ONNX."""

    def __init__(self, in_ch=8, hw=7, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(in_ch * hw * hw, num_classes)

    def forward(self, z):
        return self.fc(torch.flatten(z, 1))


class PoolExit(nn.Module):
    """`pool` exit: MaxPool 3x3 stride 2 pad 1 (7x7 -> 4x4) -> Flatten -> Linear(num_classes).

    About 1,300 parameters and as many MACs: deliberately weaker than the tail so that
    offloading has value (with --exit-detach it reaches ~89% where the tail reaches ~93%).
    """

    def __init__(self, in_ch=8, hw=7, num_classes=10):
        super().__init__()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        out = (hw + 2 - 3) // 2 + 1
        self.fc = nn.Linear(in_ch * out * out, num_classes)

    def forward(self, z):
        return self.fc(torch.flatten(self.pool(z), 1))


class ConvExit(nn.Module):
    """`conv` exit: 1x1 conv (C -> mid) + BN + ReLU -> Flatten -> Linear(num_classes)."""

    def __init__(self, in_ch=8, mid=16, hw=7, num_classes=10):
        super().__init__()
        self.conv = conv_bn_relu(in_ch, mid, k=1)
        self.fc = nn.Linear(mid * hw * hw, num_classes)

    def forward(self, z):
        return self.fc(torch.flatten(self.conv(z), 1))


EXIT_KINDS = ("mlp", "linear", "pool", "conv")


def make_exit(kind, in_ch, hw=7, num_classes=10, mid=16, hidden=64):
    if kind == "mlp":
        return Exit(in_ch, mid, hw, hidden, num_classes)
    if kind == "linear":
        return LinearExit(in_ch, hw, num_classes)
    if kind == "pool":
        return PoolExit(in_ch, hw, num_classes)
    if kind == "conv":
        return ConvExit(in_ch, mid, hw, num_classes)
    raise ValueError(f"unknown exit kind {kind!r}; known: {', '.join(EXIT_KINDS)}")


def output_linear(module):
    """The last nn.Linear registered in `module` (an exit's output layer)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("module has no nn.Linear")
    return linears[-1]


class SplitNet(nn.Module):
    """Head + tail + exit. bottleneck=None is the no-bottleneck baseline: the head outputs its
    last ReLU map [N,head_w2,7,7] and the tail and exit take head_w2 channels."""

    def __init__(self, bottleneck=8, head_w1=32, head_w2=64, tail_width=128, tail_blocks=1,
                 exit_mid=16, exit_hidden=64, num_classes=10, exit_kind="mlp"):
        super().__init__()
        self.bottleneck = bottleneck
        self.head = Head(1, head_w1, head_w2, bottleneck)
        self.channels = self.head.out_channels
        self.tail = Tail(self.channels, tail_width, tail_blocks, num_classes)
        self.exit = make_exit(exit_kind, self.channels, 7, num_classes, exit_mid, exit_hidden)

    def forward(self, x, rate=None):
        """Eval-style forward: tail on features coded at `rate` (None = float)."""
        z = self.head(x)
        zt = z if rate is None else apply_rate(z, rate.bits, rate.channels)
        return self.tail(zt), self.exit(z)


def ste_mixed_rates(z, rates, p_float, generator=None):
    """Quantisation-aware training transform with a straight-through estimator.

    Each sample draws a rate from `rates` (or stays float with probability p_float); its
    features are quantised at that rate's bits (forward: quantised value, backward:
    identity) and channels >= the rate's channel count are zeroed (nested channel dropout,
    so the first channels learn to carry the most). Drawing per sample rather than per batch
    keeps the tail's BatchNorm batch statistics equal to the rate mixture its running
    statistics estimate, so train and eval normalisation agree for every rate.
    """
    n, c = z.shape[:2]
    bits = torch.zeros(n, dtype=torch.long)
    chans = torch.full((n,), c, dtype=torch.long)
    u = torch.rand(n, generator=generator)
    pick = torch.randint(0, len(rates), (n,), generator=generator)
    rb = torch.tensor([r.bits for r in rates])
    rc = torch.tensor([r.channels for r in rates])
    quant = u >= p_float
    bits[quant] = rb[pick[quant]]
    chans[quant] = rc[pick[quant]]
    levels = ((1 << bits) - 1).to(z.dtype).view(n, 1, 1, 1)
    zq = torch.round(z * levels.clamp(min=1)) / levels.clamp(min=1)
    zq = torch.where(quant.view(n, 1, 1, 1), zq, z)
    zs = z + (zq - z).detach()
    keep = (torch.arange(c).view(1, c) < chans.view(n, 1)).to(z.dtype).view(n, c, 1, 1)
    return zs * keep
