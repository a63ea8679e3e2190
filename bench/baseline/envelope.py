"""The pricewire envelope in Python (benchmark baseline): decode, check, and derive ids the
way functions/pipeline/src/envelope.rs does, so both implementations accept the same
records and compute the same ids."""
import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

SCHEMA_VERSION = 1
ID_HEX_CHARS = 32
KEY_MAX_BYTES = 1024  # DynamoDB: sort key at most 1 KB (the key is also `latest_sk`)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
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
    for name in ("id", "source", "key", "job", "origin", "destination", "departure_at"):
        value = e.get(name, f.get(name))
        if not isinstance(value, str):
            raise Poison("not a valid envelope: `%s` is not a string" % name)
    try:
        Decimal(f["price"]["amount"])
    except (InvalidOperation, TypeError, KeyError):
        raise Poison("not a valid envelope: price")
    if not isinstance(f["price"].get("currency"), str):
        raise Poison("not a valid envelope: currency")
    for name in ("transfers", "duration_minutes", "trip_class", "distance_km"):
        if name in f and (not isinstance(f[name], int) or f[name] < 0):
            raise Poison("not a valid envelope: `%s` is not a count" % name)
    if len(e["key"].encode()) > KEY_MAX_BYTES:
        raise Poison("entity key exceeds DynamoDB's key limits")
    e["_observed"] = parse_time(e["observed_at"])
    e["_fetched"] = parse_time(e["fetched_at"])
    for t in (e["observed_at"], None):
        if derive_id(e["source"], e["kind"], e["key"], t, f) == e["id"]:
            return e
    raise Poison("envelope id %s does not match its content" % e["id"])


def millis(t):
    """Milliseconds since the epoch, exactly (no float rounding)."""
    return (t - EPOCH) // timedelta(milliseconds=1)


def to_json(e):
    return json.dumps({k: v for k, v in e.items() if not k.startswith("_")}, separators=(",", ":"))
