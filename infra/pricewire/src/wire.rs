//! What a write call asks AWS to do, read off its request body: entries per PutRecords,
//! items per BatchWriteItem, DynamoDB write units and Kinesis payload bytes. The fault proxy
//! and the benchmark's AWS stub both measure calls with it, so the benchmark's "calls per
//! record" and the cost model come from the requests the functions really sent.

use serde::Serialize;
use serde_json::{Map, Value};

/// DynamoDB: one write unit covers an item of up to 1 KB (larger items take one per KB).
pub const DYNAMODB_WRITE_UNIT_BYTES: usize = 1024;
/// Kinesis (provisioned): one PUT payload unit covers a record of up to 25 KB.
pub const KINESIS_PUT_UNIT_BYTES: usize = 25 * 1024;

/// One write call as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WriteCall {
    /// `PutRecords`, `BatchWriteItem`, `PutItem`, `UpdateItem`, `DeleteItem`.
    pub operation: String,
    /// The table (DynamoDB; the first one of a BatchWriteItem) or stream written.
    pub table: String,
    /// The invocation that made it: the `x-amzn-trace-id` the SDK copies from the Lambda
    /// runtime (empty when absent).
    pub trace: String,
    /// Records (PutRecords), request items (BatchWriteItem) or 1.
    pub entries: u64,
    /// DynamoDB write units the call consumes when every item is written (estimated from the
    /// item sizes as DynamoDB counts them; an UpdateItem from its key and new values).
    pub write_units: u64,
    /// Index write units on top (the prices table's KEYS_ONLY GSI holds entity items, the
    /// items with `lpk`: one unit each; counted for every put of one, an upper bound).
    pub index_units: u64,
    /// Of `write_units`, those of entity items (the items with `lpk`), written once per entity
    /// on its first change.
    pub entity_units: u64,
    /// Kinesis: data plus partition key bytes, and PUT payload units.
    pub kinesis_bytes: u64,
    pub put_units: u64,
    /// DynamoDB: bytes of the items put, as DynamoDB sizes them (what the table stores).
    pub item_bytes: u64,
    /// S3: the object's bytes as sent (a PUT's body).
    pub object_bytes: u64,
}

/// Reads a write call; `None` for calls that write nothing or bodies that are not JSON.
pub fn measure(service: &str, operation: &str, body: &[u8], trace: &str) -> Option<WriteCall> {
    if (service, operation) == ("s3", "PUT") {
        return Some(WriteCall {
            operation: operation.to_string(),
            trace: trace.to_string(),
            entries: 1,
            object_bytes: body.len() as u64,
            ..Default::default()
        });
    }
    let writes = matches!(
        (service, operation),
        ("kinesis", "PutRecords")
            | (
                "dynamodb",
                "BatchWriteItem" | "PutItem" | "UpdateItem" | "DeleteItem"
            )
    );
    if !writes {
        return None;
    }
    let request: Value = serde_json::from_slice(body).ok()?;
    let table = request
        .get("TableName")
        .or_else(|| request.get("StreamName"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            request
                .get("RequestItems")
                .and_then(Value::as_object)
                .and_then(|t| t.keys().next().cloned())
        })
        .unwrap_or_default();
    let mut call = WriteCall {
        operation: operation.to_string(),
        table,
        trace: trace.to_string(),
        ..Default::default()
    };
    match operation {
        "PutRecords" => {
            for r in request.get("Records").and_then(Value::as_array)? {
                let data = r.get("Data").and_then(Value::as_str).map_or(0, base64_len);
                let key = r
                    .get("PartitionKey")
                    .and_then(Value::as_str)
                    .map_or(0, str::len);
                call.entries += 1;
                call.kinesis_bytes += (data + key) as u64;
                call.put_units += (data + key).div_ceil(KINESIS_PUT_UNIT_BYTES).max(1) as u64;
            }
        }
        "BatchWriteItem" => {
            for items in request
                .get("RequestItems")
                .and_then(Value::as_object)?
                .values()
            {
                for w in items.as_array().into_iter().flatten() {
                    call.entries += 1;
                    let item = w
                        .pointer("/PutRequest/Item")
                        .or_else(|| w.pointer("/DeleteRequest/Key"))
                        .and_then(Value::as_object);
                    let size = item.map_or(0, item_size);
                    let units = write_units(size).max(1);
                    call.write_units += units;
                    if w.get("PutRequest").is_some() {
                        call.item_bytes += size as u64;
                    }
                    if w.pointer("/PutRequest/Item/lpk").is_some() {
                        call.index_units += 1;
                        call.entity_units += units;
                    }
                }
            }
        }
        "PutItem" => {
            call.entries = 1;
            let size = request
                .get("Item")
                .and_then(Value::as_object)
                .map_or(0, item_size);
            call.write_units = write_units(size);
            call.item_bytes = size as u64;
        }
        _ => {
            // UpdateItem / DeleteItem: the key, plus the values an update sets.
            call.entries = 1;
            let key = request
                .get("Key")
                .and_then(Value::as_object)
                .map_or(0, item_size);
            let values = request
                .get("ExpressionAttributeValues")
                .and_then(Value::as_object)
                .map_or(0, |v| v.values().map(attribute_size).sum());
            call.write_units = write_units(key + values);
        }
    }
    Some(call)
}

/// Write units for an item of `size` bytes.
pub fn write_units(size: usize) -> u64 {
    size.div_ceil(DYNAMODB_WRITE_UNIT_BYTES).max(1) as u64
}

/// An item's size as DynamoDB counts it: attribute names plus values, from the wire format.
pub fn item_size(item: &Map<String, Value>) -> usize {
    item.iter().map(|(k, v)| k.len() + attribute_size(v)).sum()
}

/// One attribute value's size: strings and binaries their bytes, numbers about one byte per
/// two significant digits plus one, booleans and nulls one byte, lists and maps 3 bytes plus
/// one per element plus their contents.
pub fn attribute_size(v: &Value) -> usize {
    let Some((t, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let number = |n: &str| {
        let digits = n
            .trim_start_matches(['-', '0'])
            .chars()
            .filter(char::is_ascii_digit)
            .count();
        digits.div_ceil(2) + 1
    };
    let strings = || {
        inner
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    };
    match t.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(0, number),
        "B" => inner.as_str().map_or(0, base64_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings().map(str::len).sum(),
        "NS" => strings().map(number).sum(),
        "BS" => strings().map(base64_len).sum(),
        "M" => {
            3 + inner.as_object().map_or(0, |m| {
                m.iter().map(|(k, v)| k.len() + attribute_size(v) + 1).sum()
            })
        }
        "L" => {
            3 + inner
                .as_array()
                .map_or(0, |l| l.iter().map(|v| attribute_size(v) + 1).sum())
        }
        _ => 0,
    }
}

/// Decoded length of a base64 string.
fn base64_len(s: &str) -> usize {
    let pad = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3).saturating_sub(pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        let item = json!({"pk": {"S": "abc"}, "n": {"N": "-12345"}, "ok": {"BOOL": true},
            "m": {"M": {"a": {"S": "xy"}}}, "l": {"L": [{"N": "1"}, {"NULL": true}]}});
        // pk 2+3, n 1+(3+1), ok 2+1, m 1+(3+1+2+1), l 1+(3+(2+1)+(1+1))
        assert_eq!(item_size(item.as_object().unwrap()), 5 + 5 + 3 + 8 + 9);
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
    }

    #[test]
    fn write_calls_are_measured_per_entry() {
        let big = "x".repeat(1500);
        let bwi = json!({"RequestItems": {"t": [
            {"PutRequest": {"Item": {"pk": {"S": "a"}, "record": {"S": big}}}},
            {"PutRequest": {"Item": {"pk": {"S": "b"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "c"}}}}]}});
        let c = measure(
            "dynamodb",
            "BatchWriteItem",
            bwi.to_string().as_bytes(),
            "Root=1-a",
        )
        .unwrap();
        assert_eq!(
            (c.entries, c.write_units, c.trace.as_str(), c.table.as_str()),
            (3, 4, "Root=1-a", "t")
        );

        let put = json!({"StreamName": "s", "Records": [
            {"Data": "aGVsbG8=", "PartitionKey": "k1"}, {"Data": "aGk=", "PartitionKey": "k"}]});
        let c = measure("kinesis", "PutRecords", put.to_string().as_bytes(), "").unwrap();
        assert_eq!(
            (c.entries, c.kinesis_bytes, c.put_units),
            (2, 5 + 2 + 2 + 1, 2)
        );

        assert!(measure("dynamodb", "GetItem", b"{}", "").is_none());
        assert!(measure("kinesis", "PutRecords", b"not json", "").is_none());
    }
}
