//! The fault proxy and the operator commands against the AWS emulator (moto).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use chrono::{Duration as Span, Utc};
use pricewire_cli::faultproxy::{FaultPlan, FaultProxy};
use pricewire_cli::ops::{self, RedriveArgs, ReplayArgs, Stack};
use pricewire_pipeline::archive::{self, meta};
use pricewire_pipeline::aws;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use testkit::Moto;

async fn stream_data(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<Vec<u8>> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for s in shards.shards() {
        let mut it = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let page = kinesis
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            out.extend(page.records().iter().map(|r| r.data().as_ref().to_vec()));
            it = page.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_proxy_stores_exactly_what_it_reports_stored() {
    let moto = Moto::start();
    let direct = aws::emulator(&moto.endpoint(), "us-east-1").await;
    let proxy = FaultProxy::new(
        moto.endpoint(),
        FaultPlan {
            seed: 3,
            put_records_failure_rate: 0.5,
            unprocessed_rate: 0.5,
            ..FaultPlan::default()
        },
    );
    let addr = proxy.listen("test").await.unwrap();
    let faulty = aws::emulator(&format!("http://{addr}"), "us-east-1").await;
    let kinesis = aws::kinesis(&direct);
    kinesis
        .create_stream()
        .stream_name("s")
        .shard_count(2)
        .send()
        .await
        .unwrap();

    // PutRecords: what is reported failed is not on the stream; what is reported stored is.
    let entries: Vec<PutRecordsRequestEntry> = (0..100)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(format!("record-{i}")))
                .partition_key(format!("k{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = aws::kinesis(&faulty)
        .put_records()
        .stream_name("s")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let reported: BTreeSet<Vec<u8>> = out
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code().is_none())
        .map(|(i, r)| {
            assert!(r.sequence_number().is_some() && r.shard_id().is_some());
            format!("record-{i}").into_bytes()
        })
        .collect();
    let failed = out.failed_record_count().unwrap_or(0) as usize;
    assert_eq!(failed + reported.len(), 100);
    assert!((30..=70).contains(&failed), "about half failed: {failed}");
    assert!(out
        .records()
        .iter()
        .filter(|r| r.error_code().is_some())
        .all(|r| r.error_code() == Some("ProvisionedThroughputExceededException")));
    let stored: BTreeSet<Vec<u8>> = stream_data(&kinesis, "s").await.into_iter().collect();
    assert_eq!(stored, reported);

    // BatchWriteItem: the unprocessed items are exactly the ones not written.
    let db = aws::dynamodb(&direct);
    db.create_table()
        .table_name("t")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let writes: Vec<WriteRequest> = (0..25)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("pk", AttributeValue::S(format!("item-{i}")))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    let out = aws::dynamodb(&faulty)
        .batch_write_item()
        .request_items("t", writes)
        .send()
        .await
        .unwrap();
    let left: BTreeSet<String> = out
        .unprocessed_items()
        .and_then(|u| u.get("t"))
        .map(|w| {
            w.iter()
                .map(|w| {
                    w.put_request().unwrap().item()["pk"]
                        .as_s()
                        .unwrap()
                        .clone()
                })
                .collect()
        })
        .unwrap_or_default();
    let scanned: BTreeSet<String> = db
        .scan()
        .table_name("t")
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .map(|i| i["pk"].as_s().unwrap().clone())
        .collect();
    assert!(!left.is_empty() && !scanned.is_empty(), "{left:?}");
    assert_eq!(scanned.len() + left.len(), 25);
    assert!(scanned.is_disjoint(&left));
    let stats = proxy.stats()["test"].clone();
    assert_eq!((stats.entries, stats.items), (100, 25));
    assert_eq!(stats.entries_failed as usize, failed);

    // Whole-call throttling, in the service's own error shape.
    let throttling = FaultProxy::new(
        moto.endpoint(),
        FaultPlan {
            throttle_rate: 1.0,
            ..FaultPlan::default()
        },
    );
    let addr = throttling.listen("t").await.unwrap();
    let conf = aws_sdk_kinesis::config::Builder::from(
        &aws::emulator(&format!("http://{addr}"), "us-east-1").await,
    )
    .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
    .build();
    let e = aws_sdk_kinesis::Client::from_conf(conf)
        .list_shards()
        .stream_name("s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_kinesis::error::ProvideErrorMetadata::code(&e),
        Some("ProvisionedThroughputExceededException")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_puts_failed_batches_back_from_the_stream_or_the_archive_and_keeps_poison() {
    let moto = Moto::start();
    let sdk = aws::emulator(&moto.endpoint(), "us-east-1").await;
    let kinesis = aws::kinesis(&sdk);
    let s3 = aws::s3(&sdk);
    let sqs = pricewire_pipeline::aws::sqs(&sdk);
    kinesis
        .create_stream()
        .stream_name("prices")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    s3.create_bucket().bucket("archive").send().await.unwrap();
    let url = sqs
        .create_queue()
        .queue_name("x-consumer-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let stack = Stack {
        name: "x".into(),
        stream: "prices".into(),
        archive_bucket: "archive".into(),
        dlqs: [("consumer".to_string(), url.clone())].into(),
        ..Stack::default()
    };

    let mut seqs = Vec::new();
    for i in 0..5 {
        let out = kinesis
            .put_record()
            .stream_name("prices")
            .partition_key("k")
            .data(Blob::new(format!("r{i}")))
            .send()
            .await
            .unwrap();
        seqs.push((
            out.shard_id().to_string(),
            out.sequence_number().to_string(),
        ));
    }
    let now = Utc::now();
    // A raw answer archived two minutes ago: 3 offers, one unusable.
    let body = json!({"success":true,"currency":"rub","data":[
        {"origin":"LED","destination":"KZN","price":4830,"airline":"SU","departure_at":"2026-12-05T10:30:00+03:00","transfers":1},
        {"origin":"LED","destination":"KZN","price":3900,"airline":"DP","departure_at":"2026-12-07T06:00:00+03:00","transfers":0},
        {"origin":"LED","destination":"KZN","price":null,"airline":"SU","departure_at":"2026-12-08T06:00:00+03:00"}]});
    let fetched = now - Span::minutes(2);
    s3.put_object()
        .bucket("archive")
        .key(archive::raw_key("travelpayouts", "led-kzn", fetched, "a1"))
        .body(archive::gzip(body.to_string().as_bytes()).into())
        .metadata(meta::URL, "http://upstream/aviasales/v3/prices_for_dates?origin=LED&destination=KZN&departure_at=2026-12&currency=rub&limit=30&page=1")
        .metadata(meta::STATUS, "200")
        .metadata(meta::FETCHED_AT, fetched.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .metadata(meta::JOB, "led-kzn")
        .send()
        .await
        .unwrap();

    let failure = |start: &str, end: &str, size: usize| {
        json!({"requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
               "responseContext": {"statusCode": 200},
               "KinesisBatchInfo": {"shardId": seqs[0].0, "startSequenceNumber": start, "endSequenceNumber": end,
                  "approximateArrivalOfFirstRecord": (now - Span::seconds(30)).to_rfc3339(),
                  "approximateArrivalOfLastRecord": now.to_rfc3339(), "batchSize": size, "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/prices"}})
        .to_string()
    };
    for body in [
        failure(&seqs[1].1, &seqs[3].1, 3),
        // Trimmed from the stream: only the archive has it.
        failure("99999999999999999999", "99999999999999999999", 2),
        json!({"kind":"poison","function":"consumer","reason":"not JSON","sequence_number":"9","data":"x","encoding":"utf-8"}).to_string(),
    ] {
        sqs.send_message().queue_url(&url).message_body(body).send().await.unwrap();
    }

    let r = ops::redrive(
        &sdk,
        &stack,
        &RedriveArgs {
            function: "consumer".into(),
            include_poison: false,
            max_messages: 100,
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        (r.messages, r.from_stream, r.from_archive, r.poison_kept),
        (3, 1, 1, 1),
        "{r:?}"
    );
    assert_eq!(
        r.records_put,
        3 + 2,
        "3 from the stream, 2 valid from the archive"
    );
    let data = stream_data(&kinesis, "prices").await;
    assert_eq!(data.len(), 5 + 5);
    for again in [&b"r1"[..], b"r2", b"r3"] {
        assert_eq!(data.iter().filter(|d| d.as_slice() == again).count(), 2);
    }
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    let left: HashMap<_, _> = attrs.attributes().cloned().unwrap_or_default();
    assert_eq!(
        left.values().next().map(String::as_str),
        Some("1"),
        "the poison notice stays, visible"
    );

    // `pricewire normalise --archive-key` on that answer: what the collector made of it.
    let key = archive::raw_key("travelpayouts", "led-kzn", fetched, "a1");
    let (answer, source, job) = pricewire_cli::normalise::archived(&s3, "archive", &key)
        .await
        .unwrap();
    assert_eq!(
        (source.as_str(), job.as_str(), answer.status),
        ("travelpayouts", "led-kzn", 200)
    );
    let (doc, usable) = pricewire_cli::normalise::normalise(
        &stack.sources,
        pricewire_cli::normalise::For::Archived {
            source: &source,
            job: &job,
        },
        answer,
    )
    .unwrap();
    assert!(usable, "{doc}");
    assert_eq!(
        (
            doc["records"].as_array().unwrap().len(),
            doc["quarantined"].as_array().unwrap().len()
        ),
        (2, 1),
        "{doc}"
    );
    assert_eq!(doc["quarantined"][0]["reason"], "price: null");
    assert_eq!(
        doc["next"],
        Value::Null,
        "3 offers on a page of 30: the last page"
    );

    // The replay of that hour puts the archived answer's records again, the same ids.
    let replay = ops::replay(
        &sdk,
        &stack,
        &ReplayArgs {
            source: "travelpayouts".into(),
            from: now - Span::hours(1),
            to: now,
            dry_run: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            replay.objects,
            replay.records,
            replay.quarantined,
            replay.put
        ),
        (1, 2, 1, 2),
        "{replay:?}"
    );
    let envelopes: Vec<Vec<u8>> = stream_data(&kinesis, "prices")
        .await
        .into_iter()
        .filter(|d| d.starts_with(b"{"))
        .collect();
    let distinct: BTreeSet<&Vec<u8>> = envelopes.iter().collect();
    assert_eq!(
        (envelopes.len(), distinct.len()),
        (4, 2),
        "same records, same ids"
    );
}
