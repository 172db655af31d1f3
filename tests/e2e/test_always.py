"""deepcut-cloud on a free loopback port, deepcut-edge on 2,000 Fashion-MNIST
test images with --policy always: 2,000 answers, accuracy >= 92%."""
from harness import main, expect, expect_one_answer_each


def test(env):
    _, endpoint = env.start_cloud()
    answers, s = env.run_edge(endpoint, "--source", "fashion-mnist:test", "--frames", "2000",
                              "--policy", "always", "--deadline-ms", "2000")
    expect_one_answer_each(answers, 2000)
    expect(s["frames"] == 2000 and s["answered"] == 2000, "summary frames/answered")
    expect(s["accuracy"] >= 0.92, "accuracy %.4f < 0.92" % s["accuracy"])
    cloud = sum(a["route"] == "cloud" for a in answers)
    expect(cloud >= 1990, "only %d of 2000 answered by the cloud" % cloud)
    expect(s["offload_fraction"] == 1.0, "offload fraction %s" % s["offload_fraction"])
    # Real bytes: the sum of per-frame bytes, each a full message plus framing.
    total = sum(a["bytes_sent"] for a in answers)
    expect(total == s["uplink_bytes"], "per-frame bytes do not add up to the summary")
    expect(all(30 < a["bytes_sent"] < 2000 for a in answers), "implausible message sizes")
    for key in ("p50", "p95", "p99"):
        expect(key in s["latency_ms"], "latency %s missing" % key)
    expect(s["deadline_hit_ratio"] >= 0.99, "deadline hit ratio %s" % s["deadline_hit_ratio"])
    labels = [a for a in answers if "label" in a]
    expect(len(labels) == 2000, "labels missing from the records")


if __name__ == "__main__":
    main(test)
