"""A real video (opencv-doc's vtest.avi) through the pair, in real time at
30 fps: frames are converted to the model's input and every one is answered."""
import os

from harness import main, expect, expect_one_answer_each

VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def test(env):
    if not os.path.exists(VIDEO):
        print("SKIP: opencv-doc not installed")
        raise SystemExit(77)
    _, endpoint = env.start_cloud()
    answers, s = env.run_edge(endpoint, "--source", "video:" + VIDEO, "--frames", "60",
                              "--fps", "30", "--policy", "always")
    expect_one_answer_each(answers, 60)
    expect(s["accuracy"] is None, "a video has no labels")
    expect(sum(a["route"] == "cloud" for a in answers) >= 55, "cloud answered too few frames")


if __name__ == "__main__":
    main(test)
