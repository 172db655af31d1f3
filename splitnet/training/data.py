"""Fashion-MNIST loading (IDX files read with gzip + numpy) and cheap tensor augmentation."""
import gzip
import os

import numpy as np
import torch

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Normalisation written to manifest.json: x = (p * SCALE - MEAN) / STD, p in 0..255.
SCALE = 1.0 / 255.0
MEAN = 0.2860
STD = 0.3530


def read_idx(path):
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: bad IDX magic")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise ValueError(f"{path}: only unsigned-byte IDX supported (got 0x{dtype_code:02x})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, count=int(np.prod(dims)), offset=offset)
    return arr.reshape(dims)


def load_split(data_dir, split):
    """split is 'train' or 't10k'. Returns (images uint8 [N,28,28], labels int64 [N])."""
    x = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{split}: {len(x)} images but {len(y)} labels")
    return x, y


def normalise(images_u8):
    """uint8 [N,H,W] -> float32 tensor [N,1,H,W], normalised like the runtime does."""
    x = torch.from_numpy(images_u8.astype(np.float32)).unsqueeze(1)
    return (x * SCALE - MEAN) / STD


def split_indices(n, val_size, seed):
    """(train indices, validation indices) of the n training images: the fixed split."""
    perm = np.random.RandomState(seed).permutation(n)
    return perm[val_size:], perm[:val_size]


def load_fmnist(data_dir=DEFAULT_DATA_DIR, val_size=5000, seed=0, limit_train=None):
    """Returns dict of (x, y) tensors: 'train', 'val' (held out from train), 'test'.

    The validation split is a fixed random subset of the 60k training images chosen with
    `seed`; it is used for model selection and exit calibration, never for training.
    """
    xtr, ytr = load_split(data_dir, "train")
    xte, yte = load_split(data_dir, "t10k")
    tr_idx, val_idx = split_indices(len(xtr), val_size, seed)
    if limit_train is not None:
        tr_idx = tr_idx[:limit_train]
    return {
        "train": (normalise(xtr[tr_idx]), torch.from_numpy(ytr[tr_idx])),
        "val": (normalise(xtr[val_idx]), torch.from_numpy(ytr[val_idx])),
        "test": (normalise(xte), torch.from_numpy(yte)),
    }


def augment(x, pad=2, flip=True, generator=None):
    """Random shift (zero-pad in normalised 'black' value, random crop back) and h-flip.

    x: float tensor [N,1,H,W] (normalised). Padding uses the value of a black pixel.
    """
    n, c, h, w = x.shape
    black = (0.0 - MEAN) / STD
    if pad > 0:
        xp = torch.full((n, c, h + 2 * pad, w + 2 * pad), black, dtype=x.dtype)
        xp[:, :, pad:pad + h, pad:pad + w] = x
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        # Gather crops with index arithmetic (no python loop over samples).
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h))            # [N,H]
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w))            # [N,W]
        idx_n = torch.arange(n).view(n, 1, 1)
        x = xp[idx_n, 0, rows.view(n, h, 1), cols.view(n, 1, w)].unsqueeze(1)
    if flip:
        m = torch.rand(n, generator=generator) < 0.5
        x = torch.where(m.view(n, 1, 1, 1), x.flip(3), x)
    return x.contiguous()


def batches(x, y, batch_size, shuffle=False, generator=None):
    n = len(x)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


def camera(x, generator=None, p_blur=0.3, p_gamma=0.5, p_jpeg=0.3, max_noise=6.0,
           gain=(0.85, 1.15), jpeg_quality=(30, 90)):
    """What the edge's camera and scene do to a frame, on normalised tensors [N,1,H,W].

    In pixel space (0..255): a gain drawn in `gain` (the scene maker's brightness drift),
    Gaussian noise of sigma up to `max_noise` grey levels (the scene maker uses 3), and with
    the given probabilities a Gaussian blur (sigma 0.4-1.2), a gamma in [0.7, 1.45] and
    JPEG artefacts at a quality in `jpeg_quality` (OpenCV's encoder and decoder, as a
    camera pipeline would). Returns a normalised tensor of the same shape.
    """
    n = x.shape[0]
    p = (x * STD + MEAN) / SCALE  # back to 0..255
    g = torch.empty(n, 1, 1, 1).uniform_(gain[0], gain[1], generator=generator)
    p = p * g
    sigma = torch.rand(n, 1, 1, 1, generator=generator) * max_noise
    p = p + torch.randn(p.shape, generator=generator) * sigma
    blur = torch.rand(n, generator=generator) < p_blur
    if blur.any():
        s = float(torch.empty(1).uniform_(0.4, 1.2, generator=generator))
        k = torch.arange(-2, 3, dtype=p.dtype)
        k1 = torch.exp(-(k ** 2) / (2 * s * s))
        k1 = k1 / k1.sum()
        kernel = (k1.view(5, 1) * k1.view(1, 5)).view(1, 1, 5, 5)
        pb = torch.nn.functional.conv2d(torch.nn.functional.pad(p[blur], (2, 2, 2, 2), "replicate"),
                                        kernel)
        p = p.clone()
        p[blur] = pb
    p = p.clamp(0, 255)
    gam = torch.rand(n, generator=generator) < p_gamma
    if gam.any():
        e = torch.empty(int(gam.sum()), 1, 1, 1).uniform_(0.7, 1.45, generator=generator)
        p = p.clone()
        p[gam] = 255.0 * (p[gam] / 255.0) ** e
    jpeg = (torch.rand(n, generator=generator) < p_jpeg).nonzero().flatten().tolist()
    if jpeg:
        import cv2  # only here: training needs python3-opencv anyway (the export check)
        q = torch.randint(jpeg_quality[0], jpeg_quality[1] + 1, (len(jpeg),), generator=generator)
        p = p.clone()
        for i, quality in zip(jpeg, q.tolist()):
            img = p[i, 0].round().to(torch.uint8).numpy()
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok:
                p[i, 0] = torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype("float32"))
    return ((p.round().clamp(0, 255) * SCALE) - MEAN) / STD


# The training framework's definition of how a camera frame becomes the head's input (the
# runtime implements the same in C++; deepcut-exray validate compares the two).
_INTERPOLATIONS = {"area": "INTER_AREA", "linear": "INTER_LINEAR", "nearest": "INTER_NEAREST",
                   "cubic": "INTER_CUBIC", "lanczos": "INTER_LANCZOS4"}


def preprocess_frame(raw, input_spec, interpolation=None, channel_order=None):
    """uint8 frame (H x W gray, H x W x 3 or 4 colour in `channel_order`) -> float32 [C,H,W].

    `input_spec` is a manifest's "input"; `interpolation` / `channel_order` override its
    values (the diagnosis tries the alternatives)."""
    import cv2
    interp = interpolation or input_spec.get("interpolation", "area")
    order = channel_order or input_spec.get("channel_order", "bgr")
    c, h, w = input_spec["channels"], input_spec["height"], input_spec["width"]
    img = np.asarray(raw)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        rgb = np.ascontiguousarray(img[:, :, :3] if order == "rgb" else img[:, :, 2::-1])
        # Gray: ITU-R BT.601 luma in 8 bits, as OpenCV (which made the training frames) computes it.
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if c == 1 else rgb
    elif c == 3:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.shape[0] != h or img.shape[1] != w:
        img = cv2.resize(img, (w, h), interpolation=getattr(cv2, _INTERPOLATIONS[interp]))
    x = img.astype(np.float32).reshape(h, w, c)
    scale = np.float32(input_spec["scale"])
    mean = np.asarray(input_spec["mean"], np.float32)
    std = np.asarray(input_spec["std"], np.float32)
    x = (x * scale - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))
