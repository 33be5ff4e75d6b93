"""A bounded HTTP load for the autoscaler demo, run in the serving image inside the cluster.

TARGET is the serving Service's URL; LOAD_WORKERS threads POST the model's own example (from
/metadata), repeated LOAD_BATCH times per request so the server does real work, to /predict for
LOAD_SECONDS. It exits 1 if no request succeeded.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from collections import Counter

TARGET = os.environ["TARGET"].rstrip("/")
SECONDS = float(os.environ.get("LOAD_SECONDS", "240"))
WORKERS = int(os.environ.get("LOAD_WORKERS", "16"))
BATCH = int(os.environ.get("LOAD_BATCH", "100"))


def post(path: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 - the Service URL from the Job's env
        f"{TARGET}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        answer.read()
        return int(answer.status)


def example() -> bytes:
    """The server's own example, BATCH times in one request body, once the server answers."""
    end = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{TARGET}/metadata", timeout=5) as answer:  # noqa: S310
                instances = json.load(answer)["example"]["instances"]
                return json.dumps({"instances": instances * BATCH}).encode()
        except OSError as error:
            if time.monotonic() > end:
                sys.exit(f"{TARGET}/metadata did not answer: {error}")
            time.sleep(2)


def work(body: bytes, end: float, counts: Counter[str], lock: threading.Lock) -> None:
    while time.monotonic() < end:
        try:
            outcome = str(post("/predict", body))
        except OSError as error:
            outcome = type(error).__name__
        with lock:
            counts[outcome] += 1


def main() -> int:
    body = example()
    end = time.monotonic() + SECONDS
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    workers = [
        threading.Thread(target=work, args=(body, end, counts, lock)) for _ in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(f"{sum(counts.values())} requests in {SECONDS:.0f}s: {dict(counts)}", flush=True)
    return 0 if counts["200"] else 1


if __name__ == "__main__":
    sys.exit(main())
