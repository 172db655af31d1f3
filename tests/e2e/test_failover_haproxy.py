"""Three cloud replicas behind HAProxy (TCP mode, health checks on /ready) and 16 edges:
kill -9 of one, then a rolling restart with SIGTERM; see failover.py."""
from harness import main
from failover import run

if __name__ == "__main__":
    main(lambda env: run(env, "haproxy"))
