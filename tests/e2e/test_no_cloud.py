"""No cloud at all: the edge still answers every frame, locally, and sends
nothing."""
import socket

from harness import main, expect, expect_one_answer_each


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test(env):
    endpoint = "tcp://127.0.0.1:%d" % free_port()
    answers, s = env.run_edge(endpoint, "--source", "fashion-mnist:test", "--frames", "300",
                              "--policy", "always", "--deadline-ms", "50")
    expect_one_answer_each(answers, 300)
    expect(all(a["route"] == "local" for a in answers), "answers from a cloud that is not there")
    expect(s["uplink_bytes"] == 0, "bytes sent with no cloud connected")
    expect(s["accuracy"] > 0.8, "exit accuracy implausibly low: %s" % s["accuracy"])


if __name__ == "__main__":
    main(test)
