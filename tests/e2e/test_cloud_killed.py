"""The cloud is killed mid-run and restarted on the same port: every frame
still gets exactly one answer, the edge answers locally while the cloud is
gone, and offloads are answered by the cloud again after the restart."""
import re
import time
import subprocess

from harness import main, expect, expect_one_answer_each, read_answers, read_json


def test(env):
    cloud, endpoint = env.start_cloud()
    out = env.tmp + "/killed.jsonl"
    summary = env.tmp + "/killed.json"
    n, fps = 1200, 150  # 8 s of frames in real time
    edge = subprocess.Popen(env.edge_cmd(endpoint, "--source", "fashion-mnist:test",
                                         "--frames", str(n), "--fps", str(fps), "--policy", "always",
                                         "--deadline-ms", "200", "--out", out, "--summary", summary),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    cloud.kill()  # SIGKILL: no goodbye
    cloud.wait()
    killed_at = time.time()
    time.sleep(2.0)
    env.start_cloud(listen=endpoint)  # same port
    stdout, stderr = edge.communicate(timeout=300)
    print(stdout)
    print(stderr[-3000:])
    expect(edge.returncode == 0, "edge exited with %d" % edge.returncode)
    answers = read_answers(out)
    s = read_json(summary)
    expect_one_answer_each(answers, n)
    expect(s["answered"] == n and s["duplicate_answers"] == 0, "summary accounting")
    by_frame = sorted(answers, key=lambda a: a["frame"])
    routes = [a["route"] for a in by_frame]
    # Cloud answers before the kill, local answers during the outage, cloud again after.
    first_local = next(i for i, r in enumerate(routes) if r == "local")
    expect(first_local > 50, "the cloud answered too little before the kill")
    outage = [a for a in by_frame[first_local:first_local + 100]]
    expect(all(a["route"] == "local" for a in outage[:50]), "frames during the outage not local")
    reasons = {a["reason"] for a in by_frame if a["route"] == "local"}
    expect(reasons & {"cloud-unavailable", "deadline-missed"}, "no outage reason recorded: %s" % reasons)
    expect(routes[-100:].count("cloud") >= 50,
           "the edge did not go back to the cloud after the restart")
    # On-time delivery is asserted in virtual time (edge_runtime_test); a real-time
    # test on a shared machine must not assert timings, so here it is only reported.
    late = sum(not a["deadline_met"] for a in answers)
    print("answers after their deadline: %d of %d" % (late, n))


if __name__ == "__main__":
    main(test)
