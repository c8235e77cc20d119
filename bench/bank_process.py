"""The demo bank in its own process for benchmarks, driven by JSON lines on stdin (one reply line each).

Started by bench_sync.py with ``--bank process``; prints ``{"url": ...}`` first, then serves until stdin closes.
Commands: {"op": "generate_history", "item": id, "count": n}, {"op": "ids", "item": id, "limit": k},
{"op": "mutate", "item": id, "action": a, "fields": {...}}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def serve() -> None:
    sys.path.insert(0, str(ROOT))
    from services.demo_bank import start_demo_bank

    bank = start_demo_bank()
    print(json.dumps({"url": bank.url}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        reply: Any = None
        if cmd["op"] == "generate_history":
            bank.generate_history(cmd["item"], cmd["count"])
        elif cmd["op"] == "ids":
            reply = [t["transaction_id"] for t in bank.truth(cmd["item"])[: cmd["limit"]]]
        elif cmd["op"] == "mutate":
            reply = bank.mutate(cmd["item"], cmd["action"], **cmd["fields"]) is not None
        print(json.dumps({"ok": True, "reply": reply}), flush=True)
    bank.stop()


class RemoteBank:
    """The parent's handle: the bank's url and the few test calls the benchmark needs."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.url = self._read()["url"]

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def _call(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()["reply"]

    def generate_history(self, item: str, count: int) -> None:
        self._call(op="generate_history", item=item, count=count)

    def ids(self, item: str, limit: int) -> list[str]:
        return list(self._call(op="ids", item=item, limit=limit))

    def mutate(self, item: str, action: str, **fields: Any) -> None:
        self._call(op="mutate", item=item, action=action, fields=fields)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


if __name__ == "__main__":
    serve()
