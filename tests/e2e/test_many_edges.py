"""One cloud serves several edges at once: each edge gets its own replies
(routed by ZeroMQ identity and sequence number), all frames answered."""
import os
import subprocess

from harness import main, expect, expect_one_answer_each, read_answers, read_json


def test(env):
    _, endpoint = env.start_cloud(extra=["--threads", "2"])
    procs = []
    for i in range(3):
        out = os.path.join(env.tmp, "edge%d.jsonl" % i)
        summary = os.path.join(env.tmp, "edge%d.json" % i)
        cmd = env.edge_cmd(endpoint, "--source", "fashion-mnist:test", "--frames", "400",
                           "--policy", "always", "--deadline-ms", "3000",
                           "--out", out, "--summary", summary)
        procs.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True), out, summary))
    for proc, out, summary in procs:
        stdout, stderr = proc.communicate(timeout=600)
        print(stdout, stderr[-2000:])
        expect(proc.returncode == 0, "an edge exited with %d" % proc.returncode)
        answers = read_answers(out)
        expect_one_answer_each(answers, 400)
        expect(sum(a["route"] == "cloud" for a in answers) >= 395, "cloud answered too few")
        expect(read_json(summary)["accuracy"] > 0.9, "accuracy too low: replies mixed up?")


if __name__ == "__main__":
    main(test)
