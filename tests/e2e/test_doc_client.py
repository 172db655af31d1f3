"""The client written from docs/protocol.md alone (doc_client.py) against the C++ side.

1. Byte for byte against the C++ encoder on fixed inputs (deepcut_protocol_vectors):
   the model tag, the codes, every coding-0 and coding-2 payload and whole request; a
   coding-1 frame is not unique, so each side's frame must decode to the other's bits.
2. Against a real deepcut-cloud: 200 test images at every rate and every coding the
   rate allows; every answer must equal the C++ edge's answer for the same frame.
3. The hardening of issue 10 as a client sees it: a message of 8 frames, one over the
   size limit, a truncated coding-2 payload and an out-of-range field each get an error
   reply with the request's seq, the cloud keeps serving, and its log says so at warn.
"""
import gzip
import json
import os
import subprocess
import sys

import msgpack
import numpy as np

from harness import main, expect
import doc_client as dc

FRAMES = 200
FMNIST = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def test_images(n):
    with gzip.open(FMNIST) as f:
        data = f.read()
    count, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    expect(count >= n, "the test set has %d images" % count)
    return np.frombuffer(data, np.uint8, n * rows * cols, 16).reshape(n, rows, cols)


def check_vectors(env, manifest):
    path = os.path.join(env.tmp, "vectors.json")
    tool = os.path.join(env.args.bin_dir, "tests", "deepcut_protocol_vectors")
    subprocess.run([tool, env.args.model, path], check=True)
    with open(path) as f:
        v = json.load(f)
    expect(dc.fingerprint_text(manifest) == v["fingerprint_text"], "fingerprint text differs")
    expect(dc.model_tag(manifest) == v["tag"], "tag %d vs %d" % (dc.model_tag(manifest), v["tag"]))
    matched = {0: 0, 1: 0, 2: 0}
    for vec in v["vectors"]:
        r = vec["rate_index"]
        features = np.asarray(vec["features"], np.float32)
        codes = dc.quantize(manifest, r, features)
        where = "rate %s map %d" % (vec["rate"], vec["map"])
        expect(list(codes) == vec["codes"], where + ": codes differ")
        for coding_text, c in vec["codings"].items():
            coding = int(coding_text)
            theirs = bytes.fromhex(c["payload"])
            ours = dc.encode_payload(manifest, r, codes, coding)
            if coding == 1:
                # zstd output is not unique: each side's frame decodes to the same codes.
                expect(list(dc.decode_zstd_payload(manifest, r, theirs)) == list(codes),
                       where + ": the C++ zstd frame decodes to other codes")
                expect(list(dc.decode_zstd_payload(manifest, r, ours)) == list(codes),
                       where + ": own zstd")
            else:
                expect(ours == theirs, "%s coding %d: %s vs %s" % (where, coding, ours.hex(),
                                                                   c["payload"]))
                message = dc.encode_request(4660, v["tag"], r, 200, coding, ours)
                expect(message.hex() == c["message"], "%s coding %d: message differs"
                       % (where, coding))
            matched[coding] += 1
    print("vectors: byte for byte, coding 0: %d, coding 2: %d; coding 1 decoded alike: %d"
          % (matched[0], matched[2], matched[1]))
    expect(matched[0] > 0 and matched[1] > 0 and matched[2] > 0, "a coding was not exercised")


def edge_answers(env, endpoint, rate):
    out = os.path.join(env.tmp, "edge-%s.jsonl" % rate)
    cmd = env.edge_cmd(endpoint, "--source", "fashion-mnist:test", "--frames", str(FRAMES),
                       "--policy", "always", "--rate", rate, "--deadline-ms", "10000",
                       "--out", out)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    expect(res.returncode == 0, "edge at %s: exit %d %s" % (rate, res.returncode, res.stderr))
    answers = {}
    with open(out) as f:
        for line in f:
            a = json.loads(line)
            if a["route"] == "cloud":
                answers[a["frame"]] = a["answer"]
    expect(len(answers) >= FRAMES * 0.95, "the edge got %d cloud answers at %s"
           % (len(answers), rate))
    return answers


def ask(client, requests):
    """Sends (key, message) pairs, at most 16 in flight; returns key -> reply."""
    replies, pending, queue = {}, {}, list(requests)
    seq_of = {}
    while queue or pending:
        while queue and len(pending) < 16:
            key, seq, message = queue.pop(0)
            client.send(message)
            pending[seq] = key
            seq_of[key] = seq
        reply = client.receive(10.0)
        expect(reply is not None, "no reply from the cloud")
        key = pending.pop(reply["seq"], None)
        expect(key is not None, "a reply to nothing pending: seq %d" % reply["seq"])
        replies[key] = reply
    return replies


def check_answers(env, manifest, endpoint):
    head = dc.Head(env.args.model)
    images = test_images(FRAMES)
    features = [head.features(img) for img in images]
    tag = dc.model_tag(manifest)
    client = dc.Client(endpoint)
    seq = 0
    for r, rate in enumerate(manifest["rates"]):
        edge = edge_answers(env, endpoint, rate["name"])
        requests = []
        for i, z in enumerate(features):
            codes = dc.quantize(manifest, r, z)
            for coding in (0, 1, 2):
                if coding == 2 and not dc.has_tables(manifest, r):
                    continue
                payload = dc.encode_payload(manifest, r, codes, coding)
                if len(payload) > dc.max_payload_bytes(manifest, r, coding):
                    continue  # the page says: send another coding
                seq = (seq + 1) % 65536
                requests.append(((i, coding), seq, dc.encode_request(seq, tag, r, 10000, coding,
                                                                     payload)))
        replies = ask(client, requests)
        agree = total = 0
        for (i, coding), reply in replies.items():
            expect(reply["status"] == 0, "rate %s coding %d: %s" % (rate["name"], coding,
                                                                   reply["message"]))
            if i in edge:
                total += 1
                agree += reply["class_id"] == edge[i]
        print("rate %s: %d requests, %d compared with the C++ edge, %d agree"
              % (rate["name"], len(replies), total, agree))
        expect(agree == total, "rate %s: %d of %d answers differ from the C++ edge"
               % (rate["name"], total - agree, total))
    client.close()


def check_hardening(env, manifest, endpoint, log_path):
    client = dc.Client(endpoint)
    tag = dc.model_tag(manifest)
    r = next(i for i in range(len(manifest["rates"])) if dc.has_tables(manifest, i))
    z = dc.Head(env.args.model).features(test_images(1)[0])
    codes = dc.quantize(manifest, r, z)
    good = dc.encode_payload(manifest, r, codes, 2)

    def expect_error(frames, seq, mention):
        client.send_raw(frames)
        reply = client.receive(10.0)
        expect(reply is not None, "no reply to %s" % mention)
        expect(reply["status"] == 1 and reply["seq"] == seq and mention in reply["message"],
               "%s: %s" % (mention, reply))
        ok = dc.encode_request(seq + 1, tag, r, 10000, 2, good)
        client.send(ok)
        after = client.receive(10.0)
        expect(after is not None and after["status"] == 0, "not serving after %s" % mention)

    message = dc.encode_request(900, tag, r, 10000, 2, good)
    expect_error([message] * 8, 900, "had 8")                                  # A
    expect_error([dc.encode_request(902, tag, r, 10000, 2, good[1:])], 902,    # B
                 "context-coded payload")
    expect_error([dc.encode_request(904, tag, r, 10000, 1, b"\x00" * (2 << 20))], 904,
                 "exceeds the limit")                                          # E
    expect_error([msgpack.packb([2, 1, 906, tag, 300, 100, 2, good], use_bin_type=True)], 906,
                 "'rate' is out of range")                                     # F
    client.close()
    with open(log_path) as f:
        log = f.read()
    for kind in ("multipart", "payload", "oversize", "malformed"):                # G
        expect("[warning] refused a request (%s)" % kind in log,
               "the cloud's log at its default level does not tell a %s refusal:\n%s"
               % (kind, log[-2000:]))


def test(env):
    manifest = dc.load_package(env.args.model)
    check_vectors(env, manifest)
    _, endpoint, log_path = env._start_listening(
        "cloud", [env.cloud_bin, "--listen", "tcp://127.0.0.1:*", "--model", env.args.model])
    check_answers(env, manifest, endpoint)
    check_hardening(env, manifest, endpoint, log_path)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main(test)
