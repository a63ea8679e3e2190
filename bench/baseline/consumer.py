"""The consumer as the usual Python Lambda writes it (benchmark baseline): boto3 resource,
Table.batch_writer putting every record as a new history item under a fresh uuid (no
change detection: a repeat, a redelivery or a replay is another item), a conditional put
per entity for latest, a checkpoint per shard."""
import os
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
from botocore.exceptions import ClientError

from envelope import Poison, decode, millis, to_json

PRICES = os.environ["PRICEWIRE_PRICES_TABLE"]
STATE = os.environ.get("PRICEWIRE_STATE_TABLE")
TTL_DAYS = int(os.environ.get("PRICEWIRE_HISTORY_TTL_DAYS", "400"))
LATEST_CONDITION = "attribute_not_exists(pk) OR ts < :ts OR (ts = :ts AND id < :id)"

dynamodb = boto3.resource("dynamodb")
prices = dynamodb.Table(PRICES)
state = dynamodb.Table(STATE) if STATE else None


def common(e):
    f = e["fields"]
    return {
        "pk": "%s#%s#%s" % (e["source"], e["kind"], e["key"]),
        "ts": millis(e["_observed"]),
        "id": e["id"], "source": e["source"], "kind": e["kind"], "key": e["key"],
        "job": e["job"], "observed_at": e["observed_at"], "fetched_at": e["fetched_at"],
        "price": Decimal(f["price"]["amount"]), "currency": f["price"]["currency"],
        "record": to_json(e),
    }


def handler(event, context):
    envelopes, failures, last = [], [], {}
    for record in event["Records"]:
        try:
            envelopes.append(decode(record))
        except Poison:
            failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
        shard = record["eventID"].split(":", 1)[0]
        last[shard] = record["kinesis"]
    with prices.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
        for e in envelopes:
            item = common(e)
            item["sk"] = "H#" + str(uuid.uuid4())
            item["expires_at"] = int((e["_observed"] + timedelta(days=TTL_DAYS)).timestamp())
            batch.put_item(Item=item)
    newest = {}
    for e in envelopes:
        pk = "%s#%s#%s" % (e["source"], e["kind"], e["key"])
        have = newest.get(pk)
        if have is None or (e["_observed"], e["id"]) > (have["_observed"], have["id"]):
            newest[pk] = e
    for pk, e in newest.items():
        item = common(e)
        item.update(sk="LATEST", latest_pk="%s#%s" % (e["source"], e["kind"]), latest_sk=e["key"])
        try:
            prices.put_item(Item=item, ConditionExpression=LATEST_CONDITION,
                            ExpressionAttributeValues={":ts": item["ts"], ":id": e["id"]})
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
    if state is not None:
        for shard, k in last.items():
            state.put_item(Item={"pk": "CHECKPOINT#consumer#" + shard, "sk": "STATE",
                                 "updated_at": datetime.now(timezone.utc).isoformat(),
                                 "sequence_number": k["sequenceNumber"],
                                 "arrival_ms": int(float(k["approximateArrivalTimestamp"]) * 1000)})
    return {"batchItemFailures": failures}
