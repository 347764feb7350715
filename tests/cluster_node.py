"""A cluster node process, for the kill -9 test of the cluster.

python -m tests.cluster_node URL NODE KEYS COUNT    joins the cluster as NODE, prints
                                                    "ready", sends COUNT deposits of 1
                                                    spread over the accounts k0..k<KEYS-1>
                                                    (command ids NODE-i), prints "ack ID"
                                                    or "err ID TYPE" for each, then "done";
                                                    serves the cluster until stdin closes
"""

from __future__ import annotations

import sys

from reactor import ReactorError, Runtime
from tests.bank import Account, Deposit

NATS = "nats://127.0.0.1:4222"


def main(url: str, name: str, keys: int, count: int) -> None:
    with Runtime(url, cluster=NATS, node=name, lease_ttl=1.0, timeout=20.0) as rt:
        rt.register(Account)
        print("ready", flush=True)
        for i in range(count):
            command_id = f"{name}-{i}"
            try:
                rt.send(Deposit(f"k{i % keys}", 1), command_id=command_id)
            except ReactorError as e:
                print(f"err {command_id} {type(e).__name__} {e}", flush=True)
            else:
                print(f"ack {command_id}", flush=True)
        print("done", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
