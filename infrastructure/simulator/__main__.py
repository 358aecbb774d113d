"""Run the simulated cluster standalone.

``python -m infrastructure.simulator --port 6443 --kubeconfig ./kubeconfig [--state FILE] [--profile NAME]``
serves until interrupted; with ``--state`` the objects are loaded from FILE on start and saved to it
on exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from .cluster import SimulatedCluster
from .store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infrastructure.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    parser.add_argument("--state", type=Path, help="load state from this file on start, save on exit")
    parser.add_argument("--profile", help="cluster profile: its objects and controllers (kubelet)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    store = Store()
    state: dict[str, Any] = {}
    if args.state and args.state.exists():
        state = json.loads(args.state.read_text())
        store.load(state)
    # The admin token is kept with the state so that a saved kubeconfig stays valid across runs.
    cluster = SimulatedCluster(args.host, args.port, store=store, admin_token=state.get("adminToken"))
    # Also after a restore: the loader skips objects that exist and starts the profile's
    # controllers (the kubelet), without which restored pods would never progress.
    cluster.load_profile(args.profile)
    cluster.start()
    cluster.write_kubeconfig(args.kubeconfig)
    logging.getLogger(__name__).info("simulated cluster at %s, kubeconfig %s", cluster.url, args.kubeconfig)

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    cluster.close()
    if args.state:
        args.state.write_text(json.dumps({"adminToken": cluster.admin_token, **store.dump()}))
        args.state.chmod(0o600)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
