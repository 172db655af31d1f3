"""CURVE on the edge-cloud link. deepcut-keys makes key pairs for a cloud and
edges A and B; a cloud with --curve-key and --accept-keys A.pub answers edge A,
while edge B (key not accepted), an edge without keys and an edge that has the
wrong cloud key still get exactly one answer per frame, all local, and exit 0;
the cloud logs B's refusal once. When the cloud is restarted accepting B too, a
running edge B gets in without a restart. deepcut-keys refuses to overwrite;
malformed key files and inconsistent options are clear errors with a non-zero
exit for both processes."""
import os
import re
import shutil
import signal
import stat
import subprocess
import time

from harness import main, expect, expect_one_answer_each, read_answers, read_json

N = 200


def run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return res.returncode, res.stdout + res.stderr


def fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, value = line.split("=", 1)
                out[name.strip()] = value.strip()
    return out


def make_keys(env, keys):
    for name in ("cloud", "edge-a", "edge-b"):
        code, text = run([env.keys_bin, "--out-dir", keys, "--name", name])
        expect(code == 0, "deepcut-keys %s: %d %s" % (name, code, text))
        key, pub = os.path.join(keys, name + ".key"), os.path.join(keys, name + ".pub")
        expect(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "%s is not mode 0600" % key)
        pair = fields(key)
        expect(set(pair) == {"public-key", "secret-key"}, "%s fields: %s" % (key, sorted(pair)))
        expect(fields(pub) == {"public-key": pair["public-key"]}, "%s does not match %s" % (pub, key))
        expect(all(len(v) == 40 for v in pair.values()), "keys are not 40 Z85 characters")

    # No overwriting without --force; nothing half-written either.
    before = open(os.path.join(keys, "cloud.key")).read()
    code, text = run([env.keys_bin, "--out-dir", keys, "--name", "cloud"])
    expect(code == 2 and "exists" in text and "--force" in text, "overwrote: %d %s" % (code, text))
    expect(open(os.path.join(keys, "cloud.key")).read() == before, "cloud.key changed")
    spare = os.path.join(keys, "spare.key")
    code, text = run([env.keys_bin, "--out-dir", keys, "--name", "spare"])
    expect(code == 0, "spare: %d %s" % (code, text))
    old = fields(spare)
    code, text = run([env.keys_bin, "--out-dir", keys, "--name", "spare", "--force"])
    expect(code == 0 and fields(spare) != old, "--force did not replace: %d %s" % (code, text))
    code, text = run([env.keys_bin, "--out-dir", keys, "--name", "../escape"])
    expect(code == 2, "accepted a name with a slash: %d %s" % (code, text))
    leftovers = [f for f in os.listdir(keys) if ".tmp" in f]
    expect(not leftovers, "temporary files left behind: %s" % leftovers)
    os.remove(spare)
    os.remove(os.path.join(keys, "spare.pub"))


def expect_all_local(answers, s, who):
    expect_one_answer_each(answers, N)
    routes = {a["route"] for a in answers}
    expect(routes == {"local"}, "%s: routes %s, expected only local" % (who, routes))
    expect(s["routes"].get("cloud", 0) == 0, "%s: cloud answers in the summary" % who)
    expect("cloud-unavailable" in s["reasons"], "%s: reasons %s" % (who, s["reasons"]))
    expect(s["uplink_bytes"] == 0, "%s: %d bytes sent to a cloud that refused it"
           % (who, s["uplink_bytes"]))


def check_bad_keys(env, keys):
    """Malformed key files and option mistakes, for the cloud and the edge."""
    bad_key = os.path.join(env.tmp, "bad.key")
    with open(bad_key, "w") as f:
        f.write("public-key = tooshort\nsecret-key = tooshort\n")
    mismatched = os.path.join(env.tmp, "mismatched.key")
    with open(mismatched, "w") as f:
        f.write("public-key = %s\nsecret-key = %s\n" % (
            fields(os.path.join(keys, "edge-b.key"))["public-key"],
            fields(os.path.join(keys, "edge-a.key"))["secret-key"]))
    bad_pub = os.path.join(env.tmp, "bad.pub")
    with open(bad_pub, "w") as f:
        f.write("public-key = %s\n" % ("~" * 40))
    no_field = os.path.join(env.tmp, "nofield.pub")
    with open(no_field, "w") as f:
        f.write("# nothing here\n")
    cloud_key, cloud_pub = os.path.join(keys, "cloud.key"), os.path.join(keys, "cloud.pub")
    empty_dir = os.path.join(env.tmp, "no-keys")
    os.mkdir(empty_dir)
    edge_key = os.path.join(keys, "edge-a.key")

    cloud = [env.cloud_bin, "--listen", "tcp://127.0.0.1:*", "--model", env.args.model]
    cases = [
        (["--curve-key", bad_key], bad_key, "40 Z85 characters"),
        (["--curve-key", mismatched], mismatched, "does not belong"),
        (["--curve-key", os.path.join(env.tmp, "missing.key")], "missing.key", "cannot read"),
        (["--curve-key", cloud_pub], cloud_pub, "secret-key"),
        (["--curve-key", cloud_key, "--accept-keys", bad_pub], bad_pub, "not a Z85 character"),
        (["--curve-key", cloud_key, "--accept-keys", no_field], no_field, "public-key"),
        (["--curve-key", cloud_key, "--accept-keys", empty_dir], empty_dir, "no .pub files"),
        (["--accept-keys", os.path.join(keys, "edge-a.pub")], "--accept-keys", "--curve-key"),
    ]
    for extra, mention, what in cases:
        code, text = run(cloud + extra)
        expect(code == 2, "cloud %s: exit %d, expected 2: %s" % (extra, code, text))
        expect(mention in text and what in text,
               "cloud %s: error does not name %s / %s: %s" % (extra, mention, what, text))

    out = os.path.join(env.tmp, "bad.jsonl")
    edge = env.edge_cmd("tcp://127.0.0.1:1", "--source", "fashion-mnist:test", "--frames", "5",
                        "--out", out)
    cases = [
        (["--cloud-key", bad_pub, "--curve-key", edge_key], bad_pub, "not a Z85 character"),
        (["--cloud-key", cloud_key, "--curve-key", edge_key], cloud_key, "secret key"),
        (["--cloud-key", cloud_pub, "--curve-key", bad_key], bad_key, "40 Z85 characters"),
        (["--cloud-key", cloud_pub, "--curve-key", mismatched], mismatched, "does not belong"),
        (["--cloud-key", cloud_pub], "--cloud-key", "--curve-key"),
        (["--curve-key", edge_key], "--curve-key", "--cloud-key"),
    ]
    for extra, mention, what in cases:
        code, text = run(edge + extra)
        expect(code == 2, "edge %s: exit %d, expected 2: %s" % (extra, code, text))
        expect(mention in text and what in text,
               "edge %s: error does not name %s / %s: %s" % (extra, mention, what, text))
    expect(not os.path.exists(out), "an edge with a bad key left an answer file")


def test(env):
    keys = os.path.join(env.tmp, "keys")
    make_keys(env, keys)
    key = lambda name: os.path.join(keys, name)
    check_bad_keys(env, keys)

    cloud, endpoint = env.start_cloud(
        extra=["--curve-key", key("cloud.key"), "--accept-keys", key("edge-a.pub")])
    frames = ["--source", "fashion-mnist:test", "--frames", str(N), "--policy", "always"]

    # Edge A: accepted, so the cloud answers.
    answers, s = env.run_edge(endpoint, *frames, "--deadline-ms", "2000",
                              "--cloud-key", key("cloud.pub"), "--curve-key", key("edge-a.key"))
    expect_one_answer_each(answers, N)
    from_cloud = sum(a["route"] == "cloud" for a in answers)
    expect(from_cloud >= 0.9 * N, "edge A: only %d of %d answered by the cloud" % (from_cloud, N))
    expect(s["accuracy"] >= 0.85, "edge A: accuracy %s" % s["accuracy"])

    # Edge B: a valid pair the cloud does not accept. Real time (4 s), so that
    # it retries the handshake (every 2 s): the cloud logs the refusal once.
    answers, s = env.run_edge(endpoint, *frames, "--fps", "50", "--deadline-ms", "200",
                              "--cloud-key", key("cloud.pub"), "--curve-key", key("edge-b.key"))
    expect_all_local(answers, s, "edge B")

    # No keys at all against a CURVE cloud: the handshake cannot succeed.
    answers, s = env.run_edge(endpoint, *frames, "--deadline-ms", "200")
    expect_all_local(answers, s, "plaintext edge")

    # Edge A's own (accepted) pair but the wrong cloud key: the cloud cannot
    # prove it is the server, so nothing is sent.
    answers, s = env.run_edge(endpoint, *frames, "--deadline-ms", "200",
                              "--cloud-key", key("edge-b.pub"), "--curve-key", key("edge-a.key"))
    expect_all_local(answers, s, "edge with the wrong cloud key")

    # Edge B in real time while the cloud is restarted on the same port, now
    # accepting a directory that holds B's key too: B gets in without a restart.
    expect(cloud.poll() is None, "the cloud died")
    n = 800
    out, summary = os.path.join(env.tmp, "b-late.jsonl"), os.path.join(env.tmp, "b-late.json")
    edge = subprocess.Popen(
        env.edge_cmd(endpoint, "--source", "fashion-mnist:test", "--frames", str(n), "--fps", "100",
                     "--policy", "always", "--deadline-ms", "200", "--cloud-key", key("cloud.pub"),
                     "--curve-key", key("edge-b.key"), "--out", out, "--summary", summary),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    cloud.send_signal(signal.SIGTERM)
    cloud.wait(30)
    accepted = os.path.join(env.tmp, "accepted")
    os.mkdir(accepted)
    for name in ("edge-a.pub", "edge-b.pub"):
        shutil.copy(key(name), accepted)
    env.start_cloud(listen=endpoint, extra=["--curve-key", key("cloud.key"),
                                            "--accept-keys", accepted])
    stdout, stderr = edge.communicate(timeout=300)
    print(stdout)
    print(stderr[-3000:])
    expect(edge.returncode == 0, "late edge B exited with %d" % edge.returncode)
    answers = sorted(read_answers(out), key=lambda a: a["frame"])
    expect_one_answer_each(answers, n)
    routes = [a["route"] for a in answers]
    expect(routes[0] == "local", "edge B answered by the cloud before it was accepted")
    expect(routes[-100:].count("cloud") >= 50,
           "edge B did not get in after its key was accepted: %s" % read_json(summary)["routes"])
    expect("refused this edge's CURVE key" in stdout + stderr,
           "edge B did not say why it answers locally")

    with open(os.path.join(env.tmp, "cloud-0.log")) as f:
        log = f.read()
    b_public = fields(key("edge-b.pub"))["public-key"]
    a_public = fields(key("edge-a.pub"))["public-key"]
    refusals = [line for line in log.splitlines() if "refused edge key" in line]
    expect(sum(b_public in line for line in refusals) == 1,
           "edge B's refusal not logged exactly once:\n%s" % "\n".join(refusals))
    expect(not any(a_public in line for line in refusals), "edge A was refused:\n%s" % log)
    m = re.search(r"stopped: .*refused keys (\d+)", log)
    expect(m is not None and int(m.group(1)) >= 2,
           "edge B did not retry its handshake: %s" % (m.group(0) if m else log))


if __name__ == "__main__":
    main(test)
