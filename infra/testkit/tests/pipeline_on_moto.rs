//! The pipeline end to end on the AWS emulator: collector handler against a local upstream
//! stub → records on a Kinesis stream → consumer → items in DynamoDB; alerter → messages
//! on the SNS topic, read back through an SQS queue subscribed to it.

use alerter::config::AlerterConfig;
use aws_lambda_events::kinesis::KinesisEvent;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_ssm::types::ParameterType;
use collector::config::CollectorConfig;
use collector::Collector;
use consumer::config::ConsumerConfig;
use consumer::Consumer;
use lambda_runtime::{Context, LambdaEvent};
use pricewire_pipeline::archive;
use pricewire_pipeline::aws;
use pricewire_pipeline::config::Vars;
use pricewire_pipeline::envelope::Envelope;
use pricewire_pipeline::stream::event_record;
use pricewire_pipeline::table;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use testkit::{Moto, UpstreamStub};

const TOKEN: &str = "tok-secret-123";
const TOKEN_PARAMETER: &str = "/pricewire/travelpayouts/token";
const RULES: &str = r#"[
  {"name":"cheap-aeroflot","source":"travelpayouts","kind":"flight_price","when":"price < 5000 && gate == \"Aeroflot\""},
  {"name":"direct-under-4000","source":"travelpayouts","kind":"flight_price","when":"transfers == 0 && price < 4000"}]"#;

fn v3_body() -> Value {
    json!({"success":true,"currency":"rub","data":[
        {"origin":"LED","destination":"KZN","price":4830,"airline":"SU","flight_number":"1234",
         "departure_at":"2026-12-05T10:30:00+03:00","return_at":"2026-12-10T18:00:00+03:00","transfers":1,"duration":210,
         "link":"/search/LED0512KZN10121?t=SU17649"},
        {"origin":"LED","destination":"KZN","price":3900,"airline":"DP","flight_number":405,
         "departure_at":"2026-12-07T06:00:00+03:00","return_at":null,"transfers":0,"duration":95,"link":{}},
        {"origin":"LED","destination":"KZN","price":null,"airline":"SU","departure_at":"2026-12-08T06:00:00+03:00"}]})
}

fn month_matrix_body() -> Value {
    json!({"success":true,"data":[
        {"value":4500,"gate":"Aeroflot","depart_date":"2026-12-05","return_date":"2026-12-12","number_of_changes":0,
         "found_at":"2026-11-20T08:12:44","trip_class":0,"distance":1360,"actual":true,"origin":"MOW","destination":"AER"},
        {"value":6000,"gate":"Aeroflot","depart_date":"2026-12-06","return_date":"2026-12-13","number_of_changes":0,
         "found_at":"2026-11-20T09:00:00","origin":"MOW","destination":"AER"},
        {"value":3000,"gate":"Pobeda","depart_date":"2026-12-09","return_date":"","number_of_changes":"0",
         "found_at":"2026-11-20T10:00:00","origin":"MOW","destination":"AER"},
        {"value":"abc","gate":"Pobeda","depart_date":"2026-12-10","origin":"MOW","destination":"AER"}]})
}

async fn sdk(moto: &Moto) -> aws::SdkConfig {
    aws::emulator(&moto.endpoint(), "us-east-1").await
}

async fn create_table(db: &aws_sdk_dynamodb::Client, name: &str) {
    let mut create = db.create_table();
    if name == "prices" {
        // As terraform/storage.tf: the sparse KEYS_ONLY GSI over entity items.
        for a in ["lpk", "lsk"] {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            );
        }
        create = create.stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        );
        create = create.global_secondary_indexes(
            aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
                .index_name(table::LATEST_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("lpk")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("lsk")
                        .key_type(KeyType::Range)
                        .build()
                        .unwrap(),
                )
                .projection(
                    aws_sdk_dynamodb::types::Projection::builder()
                        .projection_type(aws_sdk_dynamodb::types::ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .unwrap(),
        );
    }
    create
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
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
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn scan(db: &aws_sdk_dynamodb::Client, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    db.scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items()
        .to_vec()
}

/// Every record on the stream so far, as the Lambda event source mapping would deliver it.
async fn read_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        while let Some(it) = iterator {
            let out = kinesis
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            if out.records().is_empty() {
                break;
            }
            for r in out.records() {
                let mut rec = event_record(
                    r.sequence_number(),
                    r.partition_key().unwrap_or_default(),
                    r.data().as_ref().to_vec(),
                );
                rec.event_source_arn = Some(format!(
                    "arn:aws:kinesis:us-east-1:123456789012:stream/{stream}"
                ));
                event.records.push(rec);
            }
            iterator = out.next_shard_iterator().map(str::to_string);
        }
    }
    event
}

async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return bodies;
        }
        for m in out.messages() {
            bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

fn vars(pairs: Vec<(&'static str, String)>) -> Vars<impl Fn(&str) -> Option<String>> {
    let map: HashMap<&str, String> = pairs.into_iter().collect();
    Vars(move |k: &str| map.get(k).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_to_dynamodb_and_alerts_on_moto() {
    let moto = Moto::start();
    let sdk = sdk(&moto).await;
    let (kinesis, db, s3, sns, sqs, ssm_client) = (
        aws::kinesis(&sdk),
        aws::dynamodb(&sdk),
        aws::s3(&sdk),
        aws::sns(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
        aws::ssm(&sdk),
    );

    // What Terraform creates, minimally.
    kinesis
        .create_stream()
        .stream_name("prices")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    create_table(&db, "prices").await;
    create_table(&db, "state").await;
    s3.create_bucket().bucket("archive").send().await.unwrap();
    let topic = sns
        .create_topic()
        .name("alerts")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let inbox = sqs
        .create_queue()
        .queue_name("inbox")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let inbox_arn = sqs
        .get_queue_attributes()
        .queue_url(&inbox)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&inbox_arn)
        .send()
        .await
        .unwrap();
    ssm_client
        .put_parameter()
        .name(TOKEN_PARAMETER)
        .value(TOKEN)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();

    // Collector: config from variables as the function reads them, token from SSM (read
    // by the real SSM adapter the first time a job of the source runs).
    let stub = UpstreamStub::start(TOKEN, v3_body(), month_matrix_body()).await;
    let sources = json!({"travelpayouts": {
        "base_url": stub.base_url, "secret_parameter": TOKEN_PARAMETER,
        // One request at a time: the stub's one v3 page is short, so no page 2 is asked.
        "concurrency": 1}});
    let config = CollectorConfig::from_vars(&vars(vec![
        ("PRICEWIRE_STREAM_NAME", "prices".into()),
        ("PRICEWIRE_ARCHIVE_BUCKET", "archive".into()),
        ("PRICEWIRE_SOURCES", sources.to_string()),
        ("PRICEWIRE_HTTP_TIMEOUT_MS", "5000".into()),
        ("PRICEWIRE_STATE_TABLE", "state".into()),
    ]))
    .unwrap();
    let collector = Collector::from_config(&config, &sdk);
    let jobs = [
        json!({"job":"led-kzn","source":"travelpayouts","params":{"origin":"LED","destination":"KZN","departure_at":"2026-12","currency":"rub"}}),
        json!({"job":"mow-aer","source":"travelpayouts","params":{"origin":"MOW","destination":"AER","month":"2026-12-01","currency":"rub","show_to_affiliates":"true"}}),
    ];
    // Two schedule ticks: the same observations twice.
    for _tick in 0..2 {
        let led = collector::handle(
            &collector,
            LambdaEvent::new(jobs[0].clone(), Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(
            (led.fetched, led.normalised, led.quarantined, led.put),
            (3, 2, 1, 2),
            "{led:?}"
        );
        let mow = collector::handle(
            &collector,
            LambdaEvent::new(jobs[1].clone(), Context::default()),
        )
        .await
        .unwrap();
        assert_eq!(
            (mow.fetched, mow.normalised, mow.quarantined, mow.put),
            (4, 3, 1, 3),
            "{mow:?}"
        );
    }
    let served = stub.served();
    assert_eq!(served.len(), 4);
    assert!(
        served.iter().all(|s| s.token.as_deref() == Some(TOKEN)),
        "token sent as the X-Access-Token header"
    );
    assert_eq!(
        served[0].query.get("origin").map(String::as_str),
        Some("LED")
    );
    assert!(
        served.iter().all(|s| !s.query.contains_key("token")),
        "token never in the query string"
    );

    // Archive: 4 raw responses, 4 quarantine files (one bad record per response).
    let objects = s3.list_objects_v2().bucket("archive").send().await.unwrap();
    let keys: Vec<String> = objects
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("raw/source=travelpayouts/dt="))
            .count(),
        4,
        "{keys:?}"
    );
    let quarantine: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("quarantine/source=travelpayouts/"))
        .collect();
    assert_eq!(quarantine.len(), 4, "{keys:?}");
    let object = s3
        .get_object()
        .bucket("archive")
        .key(quarantine[0])
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(
        archive::gunzip(&object.body.collect().await.unwrap().into_bytes()).unwrap(),
    )
    .unwrap();
    assert!(
        text.contains("\"reason\":\"price: null\"")
            || text.contains("\"reason\":\"value: expected a number"),
        "{text}"
    );
    let raw_key = keys
        .iter()
        .find(|k| k.starts_with("raw/") && k.contains("/led-kzn-"))
        .unwrap();
    let raw = s3
        .get_object()
        .bucket("archive")
        .key(raw_key)
        .send()
        .await
        .unwrap();
    let url = raw.metadata().unwrap()["url"].clone();
    assert!(
        url.contains("/aviasales/v3/prices_for_dates?") && !url.contains(TOKEN),
        "{url}"
    );

    // Stream → consumer: 10 records, 5 distinct observations.
    let event = read_stream(&kinesis, "prices").await;
    assert_eq!(event.records.len(), 10);
    let ids: BTreeSet<String> = event
        .records
        .iter()
        .map(|r| Envelope::from_slice(&r.kinesis.data).unwrap().id)
        .collect();
    assert_eq!(
        ids.len(),
        5,
        "the second tick observed the same offers: same ids"
    );
    let consumer_config = ConsumerConfig::from_vars(&vars(vec![
        ("PRICEWIRE_PRICES_TABLE", "prices".into()),
        ("PRICEWIRE_ARCHIVE_BUCKET", "archive".into()),
    ]))
    .unwrap();
    let consumer = Consumer::from_config(&consumer_config, &sdk);
    let response = consumer::handle(
        &consumer,
        LambdaEvent::new(event.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let (_, first) = consumer.process(event.clone()).await;
    // Delivered again (a Lambda retry): the first tick's records are stored already, the
    // second tick's repeat them. Nothing is written.
    assert_eq!(
        (first.changes, first.duplicates, first.repeats, first.writes),
        (0, 5, 5, 0),
        "a redelivered batch writes nothing"
    );
    let items = scan(&db, "prices").await;
    let changes: Vec<table::Change> = items.iter().filter_map(table::Change::from_item).collect();
    let entities = items
        .iter()
        .filter(|i| i["sk"].as_s().unwrap() == table::ENTITY_SK)
        .count();
    // The second tick fetched the same offers at the same prices: repeats, not changes.
    assert_eq!(
        changes.len(),
        5,
        "one change item per entity, none for the repeats"
    );
    assert_eq!(entities, 5, "one entity item per entity");
    assert_eq!(items.len(), 10);
    let stored_ids: BTreeSet<String> = changes.iter().map(|c| c.id.clone()).collect();
    assert_eq!(stored_ids, ids);
    let first_fetch = event
        .records
        .iter()
        .map(|r| Envelope::from_slice(&r.kinesis.data).unwrap())
        .filter(|e| e.key == "MOW-AER/2026-12-05/2026-12-12")
        .map(|e| e.fetched_at)
        .min()
        .unwrap();
    let mow = changes
        .iter()
        .find(|c| c.pk.ends_with("#MOW-AER/2026-12-05/2026-12-12"))
        .unwrap();
    assert_eq!(mow.price.to_string(), "4500");
    assert_eq!(
        mow.envelope().unwrap().observed_at.to_rfc3339(),
        "2026-11-20T08:12:44+00:00"
    );
    assert_eq!(
        mow.fetched_ms,
        first_fetch.timestamp_millis(),
        "stored at its first fetch"
    );
    assert!(mow.expires_at > 0);
    // The GSI lists each entity once, and the newest change is each one's latest.
    let listed = db
        .query()
        .table_name("prices")
        .index_name(table::LATEST_INDEX)
        .key_condition_expression("lpk = :lpk")
        .expression_attribute_values(
            ":lpk",
            aws_sdk_dynamodb::types::AttributeValue::S("travelpayouts#flight_price".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.items().len(), 5);
    // Alerter: three deals match; each reaches the topic once, even when the batch is redelivered.
    let alerter_config = AlerterConfig::from_vars(&vars(vec![
        ("PRICEWIRE_TOPIC_ARN", topic.clone()),
        ("PRICEWIRE_STATE_TABLE", "state".into()),
        ("PRICEWIRE_ALERT_RULES", RULES.into()),
    ]))
    .unwrap();
    let alerter = alerter::Alerter::from_config(alerter_config, &sdk);
    // What the consumer wrote, as the prices table's change stream delivers it.
    let stream_arn = db
        .describe_table()
        .table_name("prices")
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_string();
    let records = testkit::table_stream_records(&moto.endpoint(), "us-east-1", &stream_arn)
        .await
        .unwrap();
    let inserts = records
        .iter()
        .filter(|r| r["eventName"] == "INSERT")
        .count();
    assert_eq!(
        inserts, 10,
        "5 change items and 5 entity items, each inserted once"
    );
    let changes: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(json!({ "Records": records })).unwrap();
    let response = alerter::handle(
        &alerter,
        LambdaEvent::new(changes.clone(), Context::default()),
    )
    .await
    .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let (_, redelivered) = alerter.process(changes).await;
    assert_eq!(redelivered.published, 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let inbox_messages = drain(&sqs, &inbox).await;
    let mut alerts: Vec<(String, String)> = inbox_messages
        .iter()
        .map(|n| {
            let alert: Value = serde_json::from_str(n["Message"].as_str().unwrap()).unwrap();
            assert_eq!(n["MessageAttributes"]["rule"]["Value"], alert["rule"]);
            (
                alert["rule"].as_str().unwrap().to_string(),
                alert["sms"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        vec![
            ("cheap-aeroflot".to_string(), "MOW-AER 05 Dec-12 Dec 4500 RUB, Aeroflot, direct https://www.aviasales.com/search/MOW0512AER12121".to_string()),
            ("direct-under-4000".to_string(), "LED-KZN 07 Dec 06:00 3900 RUB, DP405, direct".to_string()),
            ("direct-under-4000".to_string(), "MOW-AER 09 Dec 3000 RUB, Pobeda, direct https://www.aviasales.com/search/MOW0912AER1".to_string()),
        ]
    );
}

/// The alerter's claims against DynamoDB's real condition semantics: marking sent needs a
/// live pending claim, so a claim that expired (and was deleted) is never recreated as
/// "sent", which would hold back a deal nobody was told about.
#[tokio::test]
async fn a_claim_is_marked_sent_only_while_it_is_pending_on_moto() {
    use alerter::adapters::dynamodb::AlertState;
    use alerter::ports::{Claim, DedupStore};
    use pricewire_pipeline::backoff::RetryPolicy;
    let moto = Moto::start();
    let db = aws::dynamodb(&sdk(&moto).await);
    create_table(&db, "state").await;
    let dedup = AlertState::new(
        db.clone(),
        "state",
        RetryPolicy::new(2, Duration::from_millis(1), Duration::from_millis(2)),
    );
    let window = Duration::from_secs(3600);

    // No claim (its lease ran out and TTL deleted it): not marked, and nothing created.
    let err = dedup
        .mark_sent("ALERT#gone", "r0", "msg-1")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no longer this record's pending claim"),
        "{err}"
    );
    assert!(
        scan(&db, "state").await.is_empty(),
        "mark_sent recreated the claim"
    );

    // A live claim: marked; the deal is then sent for the window.
    let now = chrono::Utc::now();
    assert_eq!(
        dedup.claim("ALERT#a", "r1", now, window).await.unwrap(),
        Claim::Acquired
    );
    // Another record's claim is not marked by this one.
    assert!(dedup.mark_sent("ALERT#a", "r9", "msg-x").await.is_err());
    dedup.mark_sent("ALERT#a", "r1", "msg-2").await.unwrap();
    assert_eq!(
        dedup.claim("ALERT#a", "r2", now, window).await.unwrap(),
        Claim::AlreadySent
    );
    let items = scan(&db, "state").await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"].as_s().unwrap(), "sent");
    assert_eq!(items[0]["message_id"].as_s().unwrap(), "msg-2");

    // Released after a failed publish: a late mark_sent does not turn it into "sent".
    assert_eq!(
        dedup.claim("ALERT#b", "r1", now, window).await.unwrap(),
        Claim::Acquired
    );
    dedup.release("ALERT#b").await.unwrap();
    assert!(dedup.mark_sent("ALERT#b", "r1", "msg-3").await.is_err());
    assert_eq!(
        dedup.claim("ALERT#b", "r1", now, window).await.unwrap(),
        Claim::Acquired
    );
}
