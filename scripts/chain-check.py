#!/usr/bin/env python3
"""Recomputes every stream's hash chain of a `projector audit export` with an
independent RFC 8785 (JSON Canonicalization Scheme) implementation, the `rfc8785`
package: hash = sha256(previous hash of the stream || JCS bytes of the event).

Usage: projector audit export | scripts/chain-check.py   (exit 1 on any mismatch)
"""
import hashlib
import json
import sys
from datetime import datetime, timezone

import rfc8785


def micros(ts: str) -> str:
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def main() -> int:
    heads: dict[str, tuple[int, bytes]] = {}
    events = mismatches = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        e = json.loads(line)
        version, prev = heads.get(e["stream_id"], (0, b""))
        if e["version"] != version + 1:
            print(f"GAP {e['stream_id']} v{e['version']} after v{version}")
            mismatches += 1
        doc = {k: e[k] for k in ("stream_id", "version", "event_id", "event_type",
                                 "schema_version", "data", "metadata")}
        doc["recorded_at"] = micros(e["recorded_at"])
        digest = hashlib.sha256(prev + rfc8785.dumps(doc)).digest()
        if digest.hex() != e["hash"]:
            print(f"MISMATCH {e['stream_id']} v{e['version']} {e['event_type']}: "
                  f"{rfc8785.dumps(doc).decode()}")
            mismatches += 1
        heads[e["stream_id"]] = (e["version"], bytes.fromhex(e["hash"]))
        events += 1
    print(f"chain-check: {events} events in {len(heads)} streams, {mismatches} mismatch(es)")
    return 1 if mismatches or events == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
