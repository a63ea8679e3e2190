"""The alerter as the usual Python Lambda writes it (benchmark baseline): rules compiled
once at init; it reads the prices table's change stream (new change items), rebuilds
each record from the item's image, and per match makes a conditional claim in DynamoDB,
an SNS publish and a mark-sent update. Same calls as functions/alerter."""
import json
import os
import re
from datetime import datetime, timedelta, timezone

import boto3
from botocore.exceptions import ClientError


STATE = os.environ["PRICEWIRE_STATE_TABLE"]
TOPIC = os.environ["PRICEWIRE_TOPIC_ARN"]
WINDOW = int(os.environ.get("PRICEWIRE_DEDUP_WINDOW_SECONDS", "86400"))
MAX_AGE = int(os.environ.get("PRICEWIRE_ALERT_MAX_AGE_SECONDS", str(WINDOW)))
CLAIM_LEASE = 900
CLAIM_CONDITION = ("attribute_not_exists(pk) OR expires_at < :now OR #status = :released "
                   "OR (#status = :pending AND claimed_epoch < :stale)")
SMS_MAX_CHARS = 160  # one GSM-7 segment


def compile_rule(rule):
    # The rule language's && || ! and null, as Python.
    expr = rule["when"].replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr).replace("null", "None")
    return rule["name"], rule.get("source"), rule.get("kind"), compile(expr, rule["name"], "eval")


RULES = [compile_rule(r) for r in json.loads(os.environ.get("PRICEWIRE_ALERT_RULES", "[]"))]

dynamodb = boto3.resource("dynamodb")
state = dynamodb.Table(STATE)
sns = boto3.client("sns")


def variables(e):
    f = e["fields"]
    return {
        "key": e["key"], "source": e["source"], "kind": e["kind"], "job": e["job"],
        "price": float(f["price"]["amount"]), "currency": f["price"]["currency"],
        "origin": f["origin"], "destination": f["destination"],
        "route": "%s-%s" % (f["origin"], f["destination"]),
        "departure_at": f["departure_at"], "return_at": f.get("return_at"),
        "carrier": f.get("carrier"), "flight_number": f.get("flight_number"),
        "gate": f.get("gate"), "transfers": f.get("transfers"),
        "duration_minutes": f.get("duration_minutes"), "trip_class": f.get("trip_class"),
        "distance_km": f.get("distance_km"), "actual": f.get("actual"), "link": f.get("link"),
    }


def message(rule, e):
    f = e["fields"]
    price = "%s %s" % (f["price"]["amount"], f["price"]["currency"])
    when = datetime.fromisoformat(f["departure_at"]).strftime("%d %b")
    stops = {0: "direct", 1: "1 stop"}.get(f.get("transfers"), "%s stops" % f.get("transfers"))
    parts = ["%s-%s %s %s" % (f["origin"], f["destination"], when, price)]
    if f.get("gate"):
        parts.append(f["gate"])
    parts.append(stops)
    sms = ", ".join(parts)
    if f.get("link") and len(sms) + len(f["link"]) < SMS_MAX_CHARS:
        sms += " " + f["link"]
    text = "\n".join(["%s-%s: %s" % (f["origin"], f["destination"], price),
                      "Departure: %s" % f["departure_at"], "Rule: %s" % rule,
                      "Seller: %s" % (f.get("gate") or ""), "Record: %s" % e["id"]])
    alert = {"rule": rule, "source": e["source"], "kind": e["kind"], "key": e["key"],
             "record_id": e["id"], "sms": sms, "text": text,
             "subject": ("pricewire: %s %s" % (e["key"], price))[:100]}
    return alert


def alert_once(key, rule, e, now):
    epoch = int(now.timestamp())
    try:
        state.put_item(
            Item={"pk": key, "sk": "CLAIM", "status": "pending", "record_id": e["id"],
                  "claimed_at": now.isoformat(), "claimed_epoch": epoch,
                  "expires_at": epoch + WINDOW},
            ConditionExpression=CLAIM_CONDITION,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":now": epoch, ":pending": "pending",
                                       ":released": "released", ":stale": epoch - CLAIM_LEASE})
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    alert = message(rule, e)
    alert.update({"entity": e["pk"], "change": e["sk"]})
    document = {"default": alert["text"], "email": alert["text"], "sms": alert["sms"],
                "sqs": json.dumps(alert)}
    published = sns.publish(
        TopicArn=TOPIC, Message=json.dumps(document), MessageStructure="json",
        Subject=alert["subject"],
        MessageAttributes={k: {"DataType": "String", "StringValue": alert[k]}
                           for k in ("source", "kind", "rule")})
    try:
        state.update_item(Key={"pk": key, "sk": "CLAIM"},
                          UpdateExpression="SET #status = :sent, message_id = :m",
                          ConditionExpression="attribute_exists(pk) AND #status = :pending AND record_id = :r",
                          ExpressionAttributeNames={"#status": "status"},
                          ExpressionAttributeValues={":sent": "sent", ":pending": "pending",
                                                     ":r": e["id"], ":m": published["MessageId"]})
    except ClientError as err:
        if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        # Published; the claim expired or was taken: reported as sent, as the Rust alerter does.
    return True


def change(record):
    """The record a new change item holds, or None for any other stream record."""
    if record.get("eventName") != "INSERT":
        return None
    image = record["dynamodb"].get("NewImage", {})
    value = lambda k: next(iter(image[k].values())) if k in image else None
    sk = value("sk") or ""
    if not sk.startswith("T#") or value("flag") is not None:
        return None
    source, kind, key = value("pk").split("#", 2)
    payload = json.loads(value("p"))
    return {"pk": value("pk"), "sk": sk, "id": value("id"), "source": source, "kind": kind,
            "key": key, "job": value("job"), "fields": payload["fields"],
            "_fetched": datetime.fromtimestamp(int(value("fet")) / 1000, timezone.utc)}


def handler(event, context):
    now = datetime.now(timezone.utc)
    seen, failures = set(), []
    summary = {"received": len(event["Records"]), "matched": 0, "published": 0, "stale": 0}
    for record in event["Records"]:
        e = change(record)
        if e is None:
            continue
        if now - e["_fetched"] > timedelta(seconds=MAX_AGE):
            summary["stale"] += 1
            continue
        names = variables(e)
        for name, source, kind, code in RULES:
            if (source and source != e["source"]) or (kind and kind != e["kind"]):
                continue
            try:
                if not eval(code, {"__builtins__": {}}, names):
                    continue
            except Exception:
                continue  # a rule that cannot be evaluated on this record does not match
            summary["matched"] += 1
            key = "ALERT#%s#%s#%s" % (name, e["pk"], e["sk"])
            if key in seen:
                continue
            seen.add(key)
            try:
                if alert_once(key, name, e, now):
                    summary["published"] += 1
            except Exception:
                failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    summary["batchItemFailures"] = failures
    return summary
