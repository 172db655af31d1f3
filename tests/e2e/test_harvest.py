"""Harvesting end to end (docs/harvest.md), with the real processes.

A kill -9 of the edge mid-run loses no committed frame and leaves a sound database; the same
store, reopened by a new edge, uploads through a thin emulated link to a cloud that is itself
killed and restarted mid-upload, and every frame arrives exactly once (none lost, no
duplicates) and leaves the edge's store only once acknowledged. Bad input (a store from another
model, a corrupt database, a budget of `abc`, an unknown sampler) is refused with a clear
message and the files are left as they were; a store past its size cap is an error the edge
reports while it goes on answering every frame. The loop closes: finetune_harvest.py makes a
new package from the cloud's store, the edge runs on it against the unchanged cloud, and
deepcut-eval harvest reports every sampler."""
import json
import os
import re
import sqlite3
import subprocess
import time

import numpy as np

from harness import main, expect, expect_one_answer_each, read_answers, read_json

COMMITTED = re.compile(r"harvest: committed frame (\d+) as item (\d+)")


def rows(db, sql="SELECT item, frame_id, length(image), length(features) FROM frames"):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def integrity(db):
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def kill_edge_mid_run(env, store):
    """A long run keeping 20 frames/s, killed with SIGKILL after ~3 s."""
    cmd = env.edge_cmd("tcp://127.0.0.1:1", "--source", "fashion-mnist:test", "--frames", "100000",
                       "--fps", "200", "--policy", "edge-only", "--harvest-db", store,
                       "--harvest-sampler", "random", "--harvest-budget", "20/s",
                       "--log-level", "debug")
    edge = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(3.5)
    edge.kill()
    _, stderr = edge.communicate(timeout=60)
    logged = {int(m.group(2)): int(m.group(1)) for m in COMMITTED.finditer(stderr)}
    expect(len(logged) >= 5, "too few frames committed before the kill: %d\n%s"
           % (len(logged), stderr[-2000:]))
    expect(integrity(store) == "ok", "the store is not sound after kill -9")
    stored = {r[0]: r for r in rows(store)}
    missing = [i for i in logged if i not in stored]
    expect(not missing, "committed items lost by kill -9: %s" % missing[:10])
    for item, frame in logged.items():
        expect(stored[item][1] == frame and stored[item][2] > 0 and stored[item][3] == 392 * 4,
               "item %d is torn: %s" % (item, stored[item]))
    import cv2
    con = sqlite3.connect(store)
    for (png,) in con.execute("SELECT image FROM frames"):
        img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        expect(img is not None and img.shape[:2] == (28, 28), "a stored frame does not decode")
    con.close()
    print("kill -9: %d committed frames logged, %d in the store, integrity ok"
          % (len(logged), len(stored)))
    return len(stored)


def upload_through_cloud_restart(env, store, cloud_db, before):
    """The store from the killed edge, uploaded over a 64 kbit/s link; the cloud is killed
    and restarted mid-upload."""
    cloud, cloud_ep = env.start_cloud(extra=["--harvest-db", cloud_db])
    _, link_ep, _ = env.start_link(cloud_ep, "64k", extra=["--delay-ms", "10"])
    summary = os.path.join(env.tmp, "upload-summary.json")
    cmd = env.edge_cmd(link_ep, "--source", "fashion-mnist:test", "--frames", "30", "--fps", "10",
                       "--policy", "edge-only", "--harvest-db", store, "--harvest-sampler",
                       "random", "--harvest-budget", "1/s", "--harvest-chunk-bytes", "512",
                       "--harvest-finish-s", "120", "--summary", summary)
    edge = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    arrived_before_kill = len(rows(cloud_db)) if os.path.exists(cloud_db) else 0
    cloud.kill()
    cloud.wait()
    time.sleep(1.0)
    env.start_cloud(listen=cloud_ep, extra=["--harvest-db", cloud_db])
    stdout, stderr = edge.communicate(timeout=600)
    expect(edge.returncode == 0, "edge exited %d: %s" % (edge.returncode, stderr[-2000:]))
    h = read_json(summary)["harvest"]
    print("upload:", json.dumps({k: h[k] for k in ("committed", "chunks_sent", "chunks_resent",
                                                    "items_uploaded", "unsent")}))
    expect(0 < arrived_before_kill < before + h["committed"],
           "the kill did not land mid-upload (%d of %d arrived before it)"
           % (arrived_before_kill, before + h["committed"]))
    at_cloud = rows(cloud_db, "SELECT edge_id, item FROM frames")
    expect(len(at_cloud) == len(set(at_cloud)), "duplicates at the cloud")
    expect(len(at_cloud) == before + h["committed"],
           "cloud has %d frames, the edge committed %d + %d" % (len(at_cloud), before, h["committed"]))
    expect(rows(store) == [], "acknowledged frames still in the edge's store")
    expect(h["unsent"] == 0 and h["store_errors"] == 0, "upload left work: %s" % h)
    expect(integrity(cloud_db) == "ok", "the cloud's store is not sound")
    return len(at_cloud)


def bad_input(env, store):
    def run(*extra, model=None):
        return subprocess.run(env.edge_cmd("tcp://127.0.0.1:1", "--source", "fashion-mnist:test",
                                           "--frames", "5", *extra, model=model),
                              capture_output=True, text=True, timeout=120)

    robust = os.path.join(env.args.root, "models", "fmnist-robust")
    res = run("--harvest-db", store, model=robust)
    expect(res.returncode == 2 and "was made for model 'fmnist-split'" in res.stderr,
           "a store from another model: %d %s" % (res.returncode, res.stderr[-500:]))
    junk = os.path.join(env.tmp, "junk.db")
    with open(junk, "wb") as f:
        f.write(b"not a database" * 300)
    res = run("--harvest-db", junk)
    expect(res.returncode == 2 and "junk.db" in res.stderr and "corrupt" in res.stderr,
           "a corrupt store: %d %s" % (res.returncode, res.stderr[-500:]))
    with open(junk, "rb") as f:
        expect(f.read() == b"not a database" * 300, "the corrupt file was changed")
    res = run("--harvest-db", os.path.join(env.tmp, "b.db"), "--harvest-budget", "abc")
    expect(res.returncode == 2 and "--harvest-budget" in res.stderr and "'abc'" in res.stderr,
           "a budget of abc: %d %s" % (res.returncode, res.stderr[-500:]))
    expect(not os.path.exists(os.path.join(env.tmp, "b.db")), "a refused run left a store")
    res = run("--harvest-db", os.path.join(env.tmp, "c.db"), "--harvest-sampler", "best")
    expect(res.returncode == 2 and "sampler 'best'" in res.stderr, "an unknown sampler")
    res = run("--harvest-db", os.path.join(env.tmp, "no", "such", "dir", "x.db"))
    expect(res.returncode == 2 and "does not exist" in res.stderr, "a missing folder")
    if os.geteuid() != 0:  # root writes anywhere
        ro = os.path.join(env.tmp, "ro")
        os.makedirs(ro)
        os.chmod(ro, 0o555)
        res = run("--harvest-db", os.path.join(ro, "x.db"))
        expect(res.returncode == 2 and "x.db" in res.stderr, "a read-only folder: %s" % res.stderr)
    cloud = subprocess.run([env.cloud_bin, "--model", env.args.model, "--listen",
                            "tcp://127.0.0.1:*", "--harvest-db", junk],
                           capture_output=True, text=True, timeout=60)
    expect(cloud.returncode == 2 and "corrupt" in cloud.stderr, "the cloud took a corrupt store")
    trainer = os.path.join(env.args.root, "splitnet", "training", "finetune_harvest.py")
    res = subprocess.run(["/usr/bin/python3", trainer, "--model", robust, "--store", store,
                          "--out", os.path.join(env.tmp, "never")],
                         capture_output=True, text=True, timeout=300)
    expect(res.returncode == 2 and "fmnist-split" in res.stderr,
           "the trainer took a store from another model: %s" % res.stderr[-500:])
    expect(not os.path.exists(os.path.join(env.tmp, "never")), "the trainer left a package")


def full_store(env):
    """Past the store's cap, keeping fails as on a full disk: reported, every frame answered."""
    out = os.path.join(env.tmp, "full.jsonl")
    summary = os.path.join(env.tmp, "full.json")
    res = subprocess.run(env.edge_cmd("tcp://127.0.0.1:1", "--source", "fashion-mnist:test",
                                      "--frames", "400", "--fps", "0", "--policy", "edge-only",
                                      "--harvest-db", os.path.join(env.tmp, "full.db"),
                                      "--harvest-sampler", "periodic", "--harvest-budget", "36000/s",
                                      "--harvest-store-mb", "0.05", "--out", out,
                                      "--summary", summary),
                         capture_output=True, text=True, timeout=300)
    expect(res.returncode == 0, "edge failed with a full store: %s" % res.stderr[-1000:])
    expect_one_answer_each(read_answers(out), 400)
    h = read_json(summary)["harvest"]
    expect(h["store_errors"] > 0 and h["committed"] > 0, "no full-store error: %s" % h)
    expect("full" in res.stderr, "the full store is not reported: %s" % res.stderr[-800:])


def close_the_loop(env, cloud_db, frames):
    trainer = os.path.join(env.args.root, "splitnet", "training", "finetune_harvest.py")
    pkg = os.path.join(env.tmp, "tuned")
    res = subprocess.run(["/usr/bin/python3", trainer, "--model", env.args.model, "--store",
                          cloud_db, "--out", pkg, "--summary", pkg + ".json"],
                         capture_output=True, text=True, timeout=600)
    print(res.stderr[-1500:])
    expect(res.returncode == 0, "fine-tuning failed: %s" % res.stderr[-2000:])
    with open(os.path.join(pkg, "manifest.json")) as f:
        prov = json.load(f)["provenance"]
    expect(prov["harvest"]["frames"] == frames, "provenance frames %s" % prov["harvest"])
    expect(prov["harvest"]["samplers"] == {"random": frames}, "provenance samplers")
    # The tuned package against the cloud that still runs the original: same model tag.
    cloud, endpoint = env.start_cloud()
    answers, s = env.run_edge(endpoint, "--source", "fashion-mnist:test", "--frames", "60",
                              "--fps", "0", "--policy", "always", model=pkg)
    expect_one_answer_each(answers, 60)
    expect(s["routes"]["cloud"] > 0 and s["counters"]["replies_error"] == 0,
           "the cloud did not serve the tuned package: %s" % s["routes"])


def eval_harvest(env):
    exe = os.path.join(env.args.bin_dir, "eval", "deepcut-eval")
    out = os.path.join(env.tmp, "harvest.json")
    md = os.path.join(env.tmp, "harvest.md")
    res = subprocess.run([exe, "harvest", "--model", env.args.model, "--shift",
                          os.path.join(env.args.root, "eval", "profiles", "shifts.json#night-cctv"),
                          "--seed", "1", "--storage-frames", "6,12", "--samplers",
                          "harvest,random,periodic,uncertainty", "--train-frames", "300",
                          "--test-frames", "200", "--out", out, "--markdown", md],
                         capture_output=True, text=True, timeout=900)
    print(res.stderr[-2500:])
    expect(res.returncode == 0, "deepcut-eval harvest failed: %s" % res.stderr[-2000:])
    r = read_json(out)
    for name in ("harvest", "random", "periodic", "uncertainty"):
        s = r["samplers"][name]
        for key in ("accuracy_before", "accuracy_after", "stored_frames", "stored_bytes",
                    "uploaded_bytes"):
            expect(key in s, "samplers.%s lacks %s" % (name, key))
        expect(0 < s["stored_frames"] <= 12 and s["uploaded_bytes"] >= s["stored_bytes"] * 0.9,
               "%s stored %s frames, %s B, uploaded %s B" % (name, s["stored_frames"],
                                                              s["stored_bytes"], s["uploaded_bytes"]))
        expect(len(s["curve"]) == 2, "the curve has both budgets")
    with open(md) as f:
        expect("| harvest |" in f.read(), "markdown table missing")
    res = subprocess.run([exe, "harvest", "--model", env.args.model, "--shift",
                          os.path.join(env.args.root, "eval", "profiles", "shifts.json"),
                          "--out", out], capture_output=True, text=True, timeout=60)
    expect(res.returncode == 2 and "FILE.json#NAME" in res.stderr, "two-profile file unnamed")


def test(env):
    store = os.path.join(env.tmp, "edge.db")
    cloud_db = os.path.join(env.tmp, "cloud.db")
    before = kill_edge_mid_run(env, store)
    bad_input(env, store)
    frames = upload_through_cloud_restart(env, store, cloud_db, before)
    full_store(env)
    close_the_loop(env, cloud_db, frames)
    eval_harvest(env)


if __name__ == "__main__":
    main(test)
