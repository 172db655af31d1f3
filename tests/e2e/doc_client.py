"""A second, independent DeepCut wire-protocol client (protocol version 2).

Written from docs/protocol.md and docs/model-package.md alone, without reading the C++
sources, to show that those two pages are enough to talk to the cloud. Where the pages
left a choice open, a comment says what was guessed.

Uses only the standard library, numpy, cv2 (dnn, for head.onnx), zmq, msgpack and
zstandard. Run it with Debian's /usr/bin/python3.
"""

import json
import math
import os
import struct
import zlib

import cv2
import msgpack
import numpy as np
import zmq
import zstandard

PROTOCOL_VERSION = 2
KIND_REQUEST = 1
KIND_REPLY = 2
TOTAL_BITS = 12                    # entropy_model.total_bits: rows sum to 2^12
MAX_TOP = 16
MAX_MESSAGE_TEXT = 1024


# ---------------------------------------------------------------------------------
# Model package
# ---------------------------------------------------------------------------------

def _tables(manifest, rate_index):
    """The rate's context tables ([channel][context][symbol]) or None."""
    em = manifest.get("entropy_model")
    if not em:
        return None
    # protocol.md writes `entropy_model.rates[RATE]`; model-package.md's example shows
    # the key is the rate's *name*.
    return em.get("rates", {}).get(manifest["rates"][rate_index]["name"])


def has_tables(manifest, rate_index):
    return _tables(manifest, rate_index) is not None


def load_package(model_dir):
    """manifest.json plus derived keys: fingerprint_text, fingerprint, tag, dir."""
    with open(os.path.join(model_dir, "manifest.json"), encoding="utf-8") as f:
        m = json.load(f)
    if m.get("format") != "deepcut-model/1":
        raise ValueError("not a deepcut-model/1 package")
    em = m.get("entropy_model")
    if em and (em.get("kind") != "left-up-context/1" or em.get("total_bits") != TOTAL_BITS):
        raise ValueError("unsupported entropy_model kind/total_bits")
    if em and not set(em.get("rates", {})) <= {r["name"] for r in m["rates"]}:
        raise ValueError("entropy_model names a rate the manifest does not have")
    for i, rate in enumerate(m["rates"]):
        s = 1 << rate["bits"]
        if not 1 <= rate["bits"] <= 8 or not 1 <= rate["channels"] <= m["bottleneck"]["channels"]:
            raise ValueError("rate %s out of range" % rate["name"])
        tables = _tables(m, i)
        # One table per channel sent, (S+1)^2 contexts, S frequencies >= 1 summing to 4096.
        if tables is not None and (
                len(tables) != rate["channels"]
                or any(len(t) != (s + 1) ** 2 for t in tables)
                or any(len(r) != s or min(r) < 1 or sum(r) != 1 << TOTAL_BITS
                       for t in tables for r in t)):
            raise ValueError("rate %s: malformed entropy tables" % rate["name"])
    m["dir"] = model_dir
    m["fingerprint_text"] = fingerprint_text(m)
    m["fingerprint"] = fingerprint(m)
    m["tag"] = model_tag(m)
    return m


def _g(value):
    # "first rounded to IEEE-754 single precision and then written as printf("%g")":
    # Python's %-formatting follows C's %g (6 significant digits, 2-digit exponent).
    return "%g" % float(np.float32(value))


def fingerprint_text(manifest):
    bn = manifest["bottleneck"]
    text = "%s|%dx%dx%d|%s,%s,%s|%d" % (
        manifest["name"], bn["channels"], bn["height"], bn["width"],
        _g(bn["min"]), _g(bn["max"]), _g(bn["fill"]), len(manifest["classes"]))
    for rate in manifest["rates"]:
        text += "|%s:%d:%d" % (rate["name"], rate["bits"], rate["channels"])
    return text


def _fnv1a(data, h=2166136261):
    for byte in data:
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def fingerprint(manifest):
    h = _fnv1a(fingerprint_text(manifest).encode("ascii"))
    for i in range(len(manifest["rates"])):        # the manifest's order, not the dict's
        tables = _tables(manifest, i)
        if tables is None:
            continue
        freqs = [f for table in tables for row in table for f in row]
        h = _fnv1a(struct.pack("<%dH" % len(freqs), *freqs), h)
    return h


def model_tag(manifest):
    fp = fingerprint(manifest)
    return (fp >> 16) ^ (fp & 0xFFFF)


# ---------------------------------------------------------------------------------
# Head
# ---------------------------------------------------------------------------------

def preprocess(manifest, image_u8):
    """uint8 image (H,W) or (H,W,C) -> float32 [1,C,H,W] per model-package.md `input`."""
    inp = manifest["input"]
    c, h, w = inp["channels"], inp["height"], inp["width"]
    img = np.asarray(image_u8, dtype=np.uint8)
    if c == 1 and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    elif c == 3:
        code = {2: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
        img = cv2.cvtColor(img, code[img.ndim if img.ndim == 2 else img.shape[2]])
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] != c:
        raise ValueError("image has %d channels, the head takes %d" % (img.shape[2], c))
    # Each operation in float32, as the page says.
    x = img.astype(np.float32).transpose(2, 0, 1) * np.float32(inp["scale"])
    mean = np.asarray(inp["mean"], dtype=np.float32).reshape(c, 1, 1)
    std = np.asarray(inp["std"], dtype=np.float32).reshape(c, 1, 1)
    return ((x - mean) / std)[None].astype(np.float32)


class Head:
    def __init__(self, model_dir):
        self.manifest = load_package(model_dir)
        self.net = cv2.dnn.readNetFromONNX(
            os.path.join(model_dir, self.manifest["files"]["head"]))

    def features(self, image_u8):
        bn = self.manifest["bottleneck"]
        self.net.setInput(preprocess(self.manifest, image_u8))
        out = self.net.forward()
        return np.asarray(out, dtype=np.float32).reshape(bn["channels"], bn["height"], bn["width"])


# ---------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------

def _shape(manifest, rate_index):
    bn = manifest["bottleneck"]
    rate = manifest["rates"][rate_index]
    return rate["bits"], rate["channels"], bn["height"], bn["width"]


def packed_size(manifest, rate_index):
    bits, ch, h, w = _shape(manifest, rate_index)
    return (ch * h * w * bits + 7) // 8


def quantize(manifest, rate_index, features):
    bn = manifest["bottleneck"]
    bits, ch, h, w = _shape(manifest, rate_index)
    x = np.asarray(features, dtype=np.float32).reshape(bn["channels"], h, w)[:ch].ravel()
    lo, hi = np.float32(bn["min"]), np.float32(bn["max"])
    levels = (1 << bits) - 1
    with np.errstate(all="ignore"):
        # numpy float32 op float32 scalar -> float32: every step is rounded to single
        # precision, as the spec requires (max - min included).
        t = (x - lo) / (hi - lo)
        p = t * np.float32(levels)
    codes = []
    for ti, pi in zip(t.tolist(), p.tolist()):     # exact float32 values as doubles
        if math.isnan(ti) or ti <= 0.0:
            codes.append(0)
        elif ti >= 1.0:
            codes.append(levels)
        else:
            # lroundf: halves away from zero; pi - floor(pi) is exact in double.
            fl = math.floor(pi)
            codes.append(min(levels, int(fl) + (1 if pi - fl >= 0.5 else 0)))
    return codes


def _pack_bits(codes, bits, size):
    # MSB-first bit stream == one big-endian integer, zero-padded at the end.
    acc = 0
    for q in codes:
        acc = (acc << bits) | q
    return (acc << (size * 8 - len(codes) * bits)).to_bytes(size, "big")


def _unpack_bits(data, bits, count):
    acc = int.from_bytes(data, "big") >> (len(data) * 8 - count * bits)
    return [(acc >> (bits * (count - 1 - i))) & ((1 << bits) - 1) for i in range(count)]


class _RangeEncoder:
    """protocol.md's pseudo-code, transcribed."""

    def __init__(self):
        self.low, self.range, self.cache, self.pending, self.out = 0, 0xFFFFFFFF, 0, 1, []

    def encode(self, cum, freq):
        self.range >>= TOTAL_BITS
        self.low += self.range * cum
        self.range *= freq
        while self.range < (1 << 24):
            self.range = (self.range << 8) & 0xFFFFFFFF
            self._shift_low()

    def _shift_low(self):
        if (self.low & 0xFFFFFFFF) < 0xFF000000 or self.low >= (1 << 32):
            carry = self.low >> 32
            byte = self.cache
            for _ in range(self.pending):
                self.out.append((byte + carry) & 0xFF)
                byte = 0xFF
            self.pending = 0
            self.cache = (self.low >> 24) & 0xFF
        self.pending += 1
        self.low = (self.low & 0xFFFFFF) << 8

    def finish(self):
        top = self.low + self.range - 1
        for k in range(40, -1, -1):
            v = (self.low + (1 << k) - 1) & ~((1 << k) - 1)
            if v <= top:
                self.low = v
                break
        for _ in range(5):
            self._shift_low()
        out = self.out[1:]
        while out and out[-1] == 0:
            out.pop()
        return bytes(out or [0])


def _contexts(codes, ch, h, w, s):
    """(channel, context, symbol) per value, in scan order."""
    i = 0
    for c in range(ch):
        base = c * h * w
        for y in range(h):
            for x in range(w):
                left = codes[base + y * w + x - 1] if x > 0 else s
                up = codes[base + (y - 1) * w + x] if y > 0 else s
                yield c, left * (s + 1) + up, codes[i]
                i += 1


def _range_code(tables, codes, ch, h, w, s):
    enc = _RangeEncoder()
    for c, ctx, q in _contexts(codes, ch, h, w, s):
        row = tables[c][ctx]
        enc.encode(sum(row[:q]), row[q])
    return enc.finish()


def encode_payload(manifest, rate_index, codes, coding):
    bits, ch, h, w = _shape(manifest, rate_index)
    if len(codes) != ch * h * w or any(not 0 <= q < (1 << bits) for q in codes):
        raise ValueError("codes do not fit the rate")
    raw = _pack_bits(codes, bits, packed_size(manifest, rate_index))
    if coding == 0:
        return raw
    if coding == 1:
        # One frame declaring its content size; no checksum, no dictionary.
        cctx = zstandard.ZstdCompressor(level=19, write_content_size=True,
                                        write_checksum=False, write_dict_id=False)
        return cctx.compress(raw)
    if coding == 2:
        tables = _tables(manifest, rate_index)
        if tables is None:
            raise ValueError("rate %s has no entropy tables: no coding 2"
                             % manifest["rates"][rate_index]["name"])
        body = _range_code(tables, codes, ch, h, w, 1 << bits)
        return body + bytes([zlib.crc32(body) & 0xFF])
    raise ValueError("unknown coding %r" % (coding,))


def max_payload_bytes(manifest, rate_index, coding):
    """The largest payload the cloud accepts (raw: exactly P; zstd: P+64; coded: P+17).

    Encoders may produce more (zstd or the range coder on unlikely maps); such a
    payload must be sent with another coding."""
    if coding not in (0, 1, 2):
        raise ValueError("unknown coding %r" % (coding,))
    if coding == 2 and not has_tables(manifest, rate_index):
        raise ValueError("rate has no entropy tables: no coding 2")
    return packed_size(manifest, rate_index) + (0, 64, 17)[coding]


def decode_zstd_payload(manifest, rate_index, payload):
    """Codes from a coding-1 payload, checking the frame rules of protocol.md."""
    p = packed_size(manifest, rate_index)
    try:
        params = zstandard.get_frame_parameters(payload)
        if params.content_size != p or params.dict_id != 0:
            raise ValueError("zstd frame must declare content size %d, no dictionary" % p)
        dobj = zstandard.ZstdDecompressor().decompressobj()
        raw = dobj.decompress(payload)
    except zstandard.ZstdError as e:
        raise ValueError("not a zstd frame: %s" % e) from e
    if len(raw) != p or dobj.unused_data or not dobj.eof:
        raise ValueError("zstd payload is not exactly one frame of %d bytes" % p)
    bits, ch, h, w = _shape(manifest, rate_index)
    return _unpack_bits(raw, bits, ch * h * w)


def decode_context_payload(manifest, rate_index, payload):
    """Codes from a coding-2 payload (range coder output + check byte).

    Refuses, as the spec's receiver does, a wrong check byte and any payload that is
    not exactly what the encoder writes for the decoded symbols."""
    tables = _tables(manifest, rate_index)
    if tables is None:
        raise ValueError("rate has no entropy tables: no coding 2")
    if len(payload) < 2:
        raise ValueError("coding-2 payload is at least 2 bytes")
    body, check = bytes(payload[:-1]), payload[-1]
    if zlib.crc32(body) & 0xFF != check:
        raise ValueError("coding-2 check byte mismatch")
    bits, ch, h, w = _shape(manifest, rate_index)
    s = 1 << bits
    code = int.from_bytes(body[:4].ljust(4, b"\0"), "big")
    rng, pos = 0xFFFFFFFF, 4
    codes = [0] * (ch * h * w)
    # _contexts reads the neighbours lazily, after the loop body has stored them.
    for i, (c, ctx, _) in enumerate(_contexts(codes, ch, h, w, s)):
        row = tables[c][ctx]
        rng >>= TOTAL_BITS
        value = min(code // rng, (1 << TOTAL_BITS) - 1)
        cum = 0
        for q, freq in enumerate(row):
            if value < cum + freq:
                break
            cum += freq
        code -= cum * rng
        rng *= freq
        while rng < (1 << 24):
            nxt = body[pos] if pos < len(body) else 0     # past the end reads as 0
            pos += 1
            code = ((code << 8) | nxt) & 0xFFFFFFFF
            rng = (rng << 8) & 0xFFFFFFFF
        codes[i] = q
    if _range_code(tables, codes, ch, h, w, s) != body:
        raise ValueError("coding-2 payload is not the canonical encoding of its symbols")
    return codes


# ---------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------

def _uint(name, value, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise ValueError("%s must be an integer in 0..%d, not %r" % (name, hi, value))
    return value


def encode_request(seq, tag, rate_index, deadline_ms, coding, payload):
    fields = [PROTOCOL_VERSION, KIND_REQUEST, _uint("seq", seq, 0xFFFF),
              _uint("model", tag, 0xFFFF), _uint("rate", rate_index, 255),
              _uint("deadline_ms", deadline_ms, 600000), _uint("coding", coding, 2)]
    payload = bytes(payload)
    if not payload:
        raise ValueError("payload must be non-empty")
    # msgpack-python writes ints in their shortest format and bytes as bin 8/16/32.
    return msgpack.packb(fields + [payload], use_bin_type=True)


def _int(value, name, lo=None, hi=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("reply %s must be an integer, not %r" % (name, value))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError("reply %s out of range: %d" % (name, value))
    return value


def decode_reply(data):
    """A reply message -> dict; ValueError on anything protocol.md does not allow."""
    try:
        # The request parser's limits, applied to replies too: no maps, no ext, no bin,
        # arrays <= 64, strings <= 1024 bytes; ExtraData refuses bytes after the array.
        msg = msgpack.unpackb(bytes(data), raw=False, use_list=True, max_array_len=64,
                              max_map_len=0, max_str_len=MAX_MESSAGE_TEXT,
                              max_bin_len=0, max_ext_len=0)
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise ValueError("reply is not one msgpack value: %s" % e) from e
    if not isinstance(msg, list) or len(msg) != 11:
        raise ValueError("reply must be an array of 11 elements")
    if _int(msg[0], "version") != PROTOCOL_VERSION:
        raise ValueError("reply version %d, we speak %d" % (msg[0], PROTOCOL_VERSION))
    if _int(msg[1], "kind") != KIND_REPLY:
        raise ValueError("reply kind must be 2, not %d" % msg[1])
    seq = _int(msg[2], "seq", 0, 0xFFFF)
    status = _int(msg[3], "status", 0, 2)
    message = msg[4]
    if not isinstance(message, str) or len(message.encode("utf-8")) > MAX_MESSAGE_TEXT:
        raise ValueError("reply message must be a str of at most 1024 bytes")
    class_id = _int(msg[5], "class_id", -1)
    if not isinstance(msg[6], list) or len(msg[6]) > MAX_TOP:
        raise ValueError("reply top must be an array of at most 16 pairs")
    top = []
    for pair in msg[6]:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ValueError("reply top entries are [class, score]")
        cls = _int(pair[0], "top class", 0)
        score = pair[1]
        # float32/float64, or an integer for a whole-number score (msgpack-c).
        if isinstance(score, bool) or not isinstance(score, (int, float)) \
                or not 0.0 <= score <= 1.0:
            raise ValueError("reply score must be a number in [0, 1], not %r" % (score,))
        top.append((cls, float(score)))
    if any(a[1] < b[1] for a, b in zip(top, top[1:])):
        raise ValueError("reply top must be best first")
    times = [_int(msg[k], name, 0) for k, name in
             ((7, "queue_us"), (8, "decode_us"), (9, "tail_us"), (10, "batch_size"))]
    if status == 0:
        if message or class_id < 0 or not top or times[3] < 1:
            raise ValueError("ok reply needs an empty message, a class, top and a batch")
    elif class_id != -1 or top or any(times):
        raise ValueError("error/busy reply: class -1, empty top, zero timings")
    return {"seq": seq, "status": status, "message": message, "class_id": class_id,
            "top": top, "queue_us": times[0], "decode_us": times[1],
            "tail_us": times[2], "batch_size": times[3]}


# ---------------------------------------------------------------------------------
# Socket
# ---------------------------------------------------------------------------------

class Client:
    """A ZeroMQ DEALER connected to the cloud's ROUTER: one frame per message."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send_raw(self, frames):
        self.sock.send_multipart([bytes(f) for f in frames])

    def send(self, request_bytes):
        self.send_raw([request_bytes])

    def receive(self, timeout_s):
        """The next reply, decoded; None if none arrived within timeout_s."""
        if not self.sock.poll(int(max(0.0, timeout_s) * 1000)):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) != 1:
            raise ValueError("a reply must be one frame, got %d" % len(frames))
        return decode_reply(frames[0])

    def close(self):
        self.sock.close(0)
        self.ctx.term()
