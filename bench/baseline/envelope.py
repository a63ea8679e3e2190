"""The pricewire envelope in Python (benchmark baseline): decode, check, and derive ids the
way functions/pipeline/src/envelope.rs does, so both implementations accept the same
records and compute the same ids."""
import base64
import hashlib
import json
from datetime import datetime

SCHEMA_VERSION = 1
ID_HEX_CHARS = 32
REQUIRED = ("id", "source", "key", "job", "observed_at", "fetched_at", "kind", "fields")


class Poison(Exception):
    pass


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def derive_id(source, kind, key, upstream_time, fields):
    identity = [SCHEMA_VERSION, source, kind, key, upstream_time, {"kind": kind, "fields": fields}]
    return hashlib.sha256(canonical(identity).encode()).hexdigest()[:ID_HEX_CHARS]


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def decode(record):
    """A Kinesis event record -> a checked envelope (dict), or Poison with the reason."""
    try:
        e = json.loads(base64.b64decode(record["kinesis"]["data"]))
    except ValueError as err:
        raise Poison("not a valid envelope: %s" % err)
    if not isinstance(e, dict) or e.get("schema") != SCHEMA_VERSION:
        raise Poison("unsupported envelope schema")
    for name in REQUIRED:
        if name not in e:
            raise Poison("not a valid envelope: missing field `%s`" % name)
    if e["kind"] != "flight_price" or not e["key"]:
        raise Poison("not a valid envelope: kind or key")
    f = e["fields"]
    for name in ("origin", "destination", "departure_at", "price"):
        if name not in f:
            raise Poison("not a valid envelope: missing field `%s`" % name)
    e["_observed"] = parse_time(e["observed_at"])
    e["_fetched"] = parse_time(e["fetched_at"])
    for t in (e["observed_at"], None):
        if derive_id(e["source"], e["kind"], e["key"], t, f) == e["id"]:
            return e
    raise Poison("envelope id %s does not match its content" % e["id"])


def to_json(e):
    return json.dumps({k: v for k, v in e.items() if not k.startswith("_")}, separators=(",", ":"))
