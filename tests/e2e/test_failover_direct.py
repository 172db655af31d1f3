"""Three cloud replicas given to 16 edges directly (a comma-separated --cloud): kill -9 of
one, then a rolling restart with SIGTERM; see failover.py."""
from harness import main
from failover import run

if __name__ == "__main__":
    main(lambda env: run(env, "direct"))
