"""The collector as the usual Python Lambda writes it (benchmark baseline): token from SSM
SecureString at init, then per job: the source's and host's holds and the host's state
from DynamoDB, the v3 pages from the
upstream, each offer normalised into an envelope, the raw answers archived to S3, the
records put on Kinesis in PutRecords calls of up to 500, the run recorded. Same calls as
functions/collector on a healthy upstream."""
import gzip
import json
import os
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import boto3

from envelope import derive_id

STREAM = os.environ["PRICEWIRE_STREAM_NAME"]
BUCKET = os.environ["PRICEWIRE_ARCHIVE_BUCKET"]
STATE = os.environ["PRICEWIRE_STATE_TABLE"]
# The travelpayouts entry of the sources the collector is configured with.
SOURCE = json.loads(os.environ.get("PRICEWIRE_SOURCES", "{}")).get("travelpayouts", {})
BASE_URL = SOURCE.get("base_url", "https://api.travelpayouts.com")
PATH = "/aviasales/v3/prices_for_dates"
SITE = "https://www.aviasales.com"  # where relative offer links point
PUT_RECORDS_MAX_ENTRIES = 500  # Kinesis PutRecords: at most 500 records per call

ssm = boto3.client("ssm")
TOKEN = ssm.get_parameter(Name=SOURCE["secret_parameter"],
                          WithDecryption=True)["Parameter"]["Value"]
s3 = boto3.client("s3")
kinesis = boto3.client("kinesis")
state = boto3.resource("dynamodb").Table(STATE)


def now_text(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def envelope(job, offer, currency, fetched):
    fields = {"origin": offer["origin"], "destination": offer["destination"],
              "departure_at": offer["departure_at"],
              "price": {"amount": str(offer["price"]), "currency": currency.upper()}}
    for src, dst in (("return_at", "return_at"), ("airline", "carrier"),
                     ("flight_number", "flight_number"), ("transfers", "transfers"),
                     ("duration", "duration_minutes"), ("link", "link")):
        if offer.get(src) not in (None, "", {}):
            fields[dst] = offer[src] if dst != "flight_number" else str(offer[src])
    if fields.get("link", "").startswith("/"):
        fields["link"] = SITE + fields["link"]
    key = "%s-%s/%s/%s" % (fields["origin"], fields["destination"], fields["departure_at"],
                           fields.get("return_at", "oneway"))
    if "carrier" in fields and "flight_number" in fields:
        key += "/%s%s" % (fields["carrier"], fields["flight_number"])
    stamp = now_text(fetched)
    return {"schema": 1, "id": derive_id("travelpayouts", "flight_price", key, None, fields),
            "source": "travelpayouts", "key": key, "job": job, "observed_at": stamp,
            "fetched_at": stamp, "kind": "flight_price", "fields": fields}


def handler(event, context):
    job, params = event["job"], event["params"]
    host = urllib.parse.urlparse(BASE_URL).netloc
    state.get_item(Key={"pk": "HOLD#source#travelpayouts", "sk": "STATE"})
    state.get_item(Key={"pk": "HOLD#host#" + host, "sk": "STATE"})
    state.get_item(Key={"pk": "BREAKER#" + host, "sk": "STATE"})
    state.get_item(Key={"pk": "LIMIT#%s%s" % (host, PATH), "sk": "STATE"})
    state.get_item(Key={"pk": "CURSOR#" + job, "sk": "STATE"})
    limit = int(params.get("limit", "100"))
    fetched = datetime.now(timezone.utc)
    records, raw, page = [], [], 1
    while True:
        query = dict(params, page=str(page), limit=str(limit))
        req = urllib.request.Request(BASE_URL + PATH + "?" + urllib.parse.urlencode(query),
                                     headers={"X-Access-Token": TOKEN})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        raw.append(body)
        data = json.loads(body)["data"]
        records += [envelope(job, o, params.get("currency", "rub"), fetched) for o in data]
        if len(data) < limit:
            break
        page += 1
    for i, body in enumerate(raw):
        s3.put_object(Bucket=BUCKET, Key="raw/travelpayouts/%s/%s-%d.json.gz" % (job, now_text(fetched), i),
                      Body=gzip.compress(body), ContentType="application/json",
                      ContentEncoding="gzip")
    unique = {e["id"]: e for e in records}
    entries = [{"Data": json.dumps(e, separators=(",", ":")).encode(), "PartitionKey": e["key"]}
               for e in unique.values()]
    for i in range(0, len(entries), PUT_RECORDS_MAX_ENTRIES):
        kinesis.put_records(StreamName=STREAM, Records=entries[i:i + PUT_RECORDS_MAX_ENTRIES])
    state.put_item(Item={"pk": "LIMIT#%s%s" % (host, PATH), "sk": "STATE", "rpm": 600,
                         "updated_at": now_text(fetched)})
    state.put_item(Item={"pk": "RUN#" + job, "sk": "STATE", "at": now_text(fetched),
                         "records": len(entries), "pages": page, "complete": True})
    return {"job": job, "fetched": len(records), "put": len(entries), "pages": page}
