//! The cost model: measured usage per record × AWS list prices (us-east-1) → dollars per
//! million records, plus the fixed monthly floor, for pricewire and for the classic design it
//! replaces (a Python scraper with the Kinesis Agent on an EC2 t2.micro, two provisioned
//! shards, a Kinesis Data Analytics SQL application at 1 KPU evaluating the alert rules, and
//! Python Lambdas writing DynamoDB and publishing the alerts).
//!
//! Pure: no I/O. Free tiers are left out (list prices only); so is storage (S3, DynamoDB,
//! CloudWatch Logs), which grows with retention rather than with records. Log ingestion is
//! in: it grows with records.

/// A list price and where it came from. `read` is the day the figure was read, from the
/// stored copies of public pages the search tool holds (this machine has no internet);
/// `source` names the copy and how much it can be trusted. Check them before relying on the
/// totals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// US dollars per `unit`.
    pub usd: f64,
    pub unit: &'static str,
    /// When the price was read, and from where.
    pub read: &'static str,
    pub source: &'static str,
}

const fn price(usd: f64, unit: &'static str, read: &'static str, source: &'static str) -> Price {
    Price {
        usd,
        unit,
        read,
        source,
    }
}

/// Hours in the month AWS bills by.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// Lambda bills duration in 1 ms steps.
pub const LAMBDA_BILLING_STEP_MS: f64 = 1.0;
/// Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB.
pub const LAMBDA_FULL_VCPU_MB: f64 = 1769.0;

/// Billed seconds of an invocation that needs `cpu_s` of one core, in a function of
/// `memory_mb`: CPU-bound at the function's share of a vCPU, rounded up to the billing step.
/// Time spent waiting on AWS is not in it (see the results' method notes).
pub fn billed_seconds(cpu_s: f64, memory_mb: f64) -> f64 {
    let share = (memory_mb / LAMBDA_FULL_VCPU_MB).min(1.0);
    let ms = (cpu_s / share * 1000.0 / LAMBDA_BILLING_STEP_MS).ceil() * LAMBDA_BILLING_STEP_MS;
    ms.max(LAMBDA_BILLING_STEP_MS) / 1000.0
}

pub const LAMBDA_REQUEST: Price = price(
    0.20 / 1e6,
    "request",
    "2026-11-21",
    "AWS Price List, us-east-1, as quoted 2026-08-12; docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html",
);
pub const LAMBDA_GB_SECOND_X86: Price = price(
    0.000_016_666_7,
    "GB-second (x86_64)",
    "2026-11-21",
    "AWS Price List, us-east-1, as quoted 2026-08-12 (Total Compute Tier-1, x86)",
);
pub const KINESIS_SHARD_HOUR: Price = price(
    0.015,
    "shard-hour (provisioned)",
    "2026-11-21",
    "third-party copy (EveryMundo docs) giving US West; us-east-1 the same from memory, not verified",
);
pub const KINESIS_PUT_PAYLOAD_UNIT: Price = price(
    0.014 / 1e6,
    "PUT payload unit (25 KB)",
    "2026-11-21",
    "third-party copy (EveryMundo docs) giving US West; us-east-1 the same from memory, not verified",
);
pub const DYNAMODB_WRITE_REQUEST_UNIT: Price = price(
    0.625 / 1e6,
    "write request unit (on-demand)",
    "2026-11-21",
    "airbyte.com DynamoDB pricing (2025-07-21): after the 2024-11-01 50 % cut; no AWS-hosted figure found",
);
pub const S3_PUT_REQUEST: Price = price(
    0.005 / 1e3,
    "PUT request (S3 Standard)",
    "2026-11-21",
    "AWS Price List (AmazonS3), us-east-1, as quoted 2026-08-17",
);
pub const SNS_PUBLISH: Price = price(
    0.50 / 1e6,
    "publish (64 KB chunk)",
    "2026-11-21",
    "factualminds.com SNS pricing (2026-06-13); third-party",
);
pub const SNS_SMS_US: Price = price(
    0.00581,
    "SMS to a US number (before carrier fees)",
    "2026-11-21",
    "from memory, not verified (no stored source found)",
);
pub const SCHEDULER_INVOCATION: Price = price(
    1.00 / 1e6,
    "scheduled invocation",
    "2026-11-21",
    "AWS Price List (AWSEvents), as quoted 2026-08-17",
);
pub const CLOUDWATCH_METRIC_MONTH: Price = price(
    0.30,
    "custom metric-month (first 10,000)",
    "2026-11-21",
    "signoz.io CloudWatch pricing guide (2026-02-15); third-party",
);
pub const CLOUDWATCH_LOGS_INGESTED_GB: Price = price(
    0.50,
    "GB of logs ingested",
    "2026-11-21",
    "c3x.dev CloudWatch Logs cost article (us-east-1, June 2026); third-party",
);
pub const CLOUDWATCH_ALARM_MONTH: Price = price(
    0.10,
    "standard-resolution alarm-month",
    "2026-11-21",
    "a cost document found by exact-text search; third-party",
);
pub const EC2_T2_MICRO_HOUR: Price = price(
    0.0116,
    "t2.micro on-demand Linux hour",
    "2026-11-21",
    "AWS Price List text for us-east-1 (copy in a 2017 gist); unchanged since, from memory",
);
pub const EBS_GP3_GB_MONTH: Price = price(
    0.08,
    "gp3 GB-month",
    "2026-11-21",
    "AWS Price List, us-east-1, as quoted 2026-08-17",
);
pub const KDA_SQL_KPU_HOUR: Price = price(
    0.11,
    "KPU-hour (Kinesis Data Analytics for SQL)",
    "2026-11-21",
    "from memory, not verified; KDA for SQL takes no new apps since 2025-10-15 and deletes apps from 2026-01-27 (AWS docs)",
);

/// Every price the model uses, for the results' price table.
pub const PRICES: &[(&str, Price)] = &[
    ("LAMBDA_REQUEST", LAMBDA_REQUEST),
    ("LAMBDA_GB_SECOND_X86", LAMBDA_GB_SECOND_X86),
    ("KINESIS_SHARD_HOUR", KINESIS_SHARD_HOUR),
    ("KINESIS_PUT_PAYLOAD_UNIT", KINESIS_PUT_PAYLOAD_UNIT),
    ("DYNAMODB_WRITE_REQUEST_UNIT", DYNAMODB_WRITE_REQUEST_UNIT),
    ("S3_PUT_REQUEST", S3_PUT_REQUEST),
    ("SNS_PUBLISH", SNS_PUBLISH),
    ("SNS_SMS_US", SNS_SMS_US),
    ("SCHEDULER_INVOCATION", SCHEDULER_INVOCATION),
    ("CLOUDWATCH_METRIC_MONTH", CLOUDWATCH_METRIC_MONTH),
    ("CLOUDWATCH_LOGS_INGESTED_GB", CLOUDWATCH_LOGS_INGESTED_GB),
    ("CLOUDWATCH_ALARM_MONTH", CLOUDWATCH_ALARM_MONTH),
    ("EC2_T2_MICRO_HOUR", EC2_T2_MICRO_HOUR),
    ("EBS_GP3_GB_MONTH", EBS_GP3_GB_MONTH),
    ("KDA_SQL_KPU_HOUR", KDA_SQL_KPU_HOUR),
];

/// The classic design's fixed parts.
pub const CLASSIC_SHARDS: f64 = 2.0;
pub const CLASSIC_KPUS: f64 = 1.0;
/// The t2.micro's root volume.
pub const CLASSIC_EBS_GB: f64 = 8.0;

/// One Lambda function's measured use, per record.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LambdaUse {
    pub invocations: f64,
    /// Billed duration × configured memory, per record.
    pub gb_seconds: f64,
}

impl LambdaUse {
    fn usd(&self) -> f64 {
        self.invocations * LAMBDA_REQUEST.usd + self.gb_seconds * LAMBDA_GB_SECOND_X86.usd
    }
}

/// What one record costs in calls and time, measured (per record put on the stream).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub collector: LambdaUse,
    pub consumer: LambdaUse,
    pub alerter: LambdaUse,
    /// Schedule firings (one per collector run).
    pub scheduled: f64,
    pub put_units: f64,
    pub write_units: f64,
    pub s3_puts: f64,
    pub publishes: f64,
    /// Alerts delivered (one SMS per subscriber each).
    pub alerts: f64,
    /// Bytes the functions log (JSON logs and EMF lines).
    pub log_bytes: f64,
}

/// What the pricewire stack holds whatever the traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stack {
    pub shards: f64,
    pub alarms: f64,
    pub metric_series: f64,
}

/// One line of the comparison: dollars per million records, or per month.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: String,
    pub pricewire: f64,
    pub classic: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Dollars per million records.
    pub per_million: Vec<Line>,
    /// Dollars per month.
    pub monthly: Vec<Line>,
    /// Dollars per alert per SMS subscriber (the same in both designs).
    pub sms_per_alert: f64,
}

impl Model {
    pub fn per_million_total(&self) -> (f64, f64) {
        total(&self.per_million)
    }
    pub fn monthly_total(&self) -> (f64, f64) {
        total(&self.monthly)
    }
    /// Monthly cost of each design at `records` a month.
    pub fn at(&self, records: f64) -> (f64, f64) {
        let (vp, vc) = self.per_million_total();
        let (fp, fc) = self.monthly_total();
        (fp + vp * records / 1e6, fc + vc * records / 1e6)
    }
}

/// Pricewire's and the classic design's sums of the lines.
pub fn total(lines: &[Line]) -> (f64, f64) {
    lines
        .iter()
        .fold((0.0, 0.0), |(p, c), l| (p + l.pricewire, c + l.classic))
}

/// The model. `pricewire` is measured on the twin and the stub; `classic` is the same
/// pipeline's work done the classic way: the same items written (same write units), the
/// same publishes, its Lambdas' use measured on the Python baseline (`classic_consumer`, and
/// `classic_alert` for the Lambda KDA invokes with matched rows, one per alert at most).
pub fn model(
    pricewire: &Usage,
    stack: &Stack,
    classic_consumer: LambdaUse,
    classic_alert: LambdaUse,
) -> Model {
    let m = 1e6;
    let u = pricewire;
    let line = |item: &str, pricewire: f64, classic: f64| Line {
        item: item.to_string(),
        pricewire,
        classic,
    };
    let per_million = vec![
        line(
            "collect: Lambda (pricewire) / scraper on the EC2 instance (classic)",
            u.collector.usd() * m,
            0.0,
        ),
        line(
            "schedules: EventBridge Scheduler",
            u.scheduled * SCHEDULER_INVOCATION.usd * m,
            0.0,
        ),
        line(
            "raw archive: S3 PUT",
            u.s3_puts * S3_PUT_REQUEST.usd * m,
            0.0,
        ),
        line(
            "stream: Kinesis PUT payload units",
            u.put_units * KINESIS_PUT_PAYLOAD_UNIT.usd * m,
            u.put_units * KINESIS_PUT_PAYLOAD_UNIT.usd * m,
        ),
        line(
            "store: consumer Lambda",
            u.consumer.usd() * m,
            classic_consumer.usd() * m,
        ),
        line(
            "store: DynamoDB write units",
            u.write_units * DYNAMODB_WRITE_REQUEST_UNIT.usd * m,
            u.write_units * DYNAMODB_WRITE_REQUEST_UNIT.usd * m,
        ),
        line(
            "alert: alerter Lambda (pricewire) / KDA output Lambda (classic)",
            u.alerter.usd() * m,
            classic_alert.usd() * m,
        ),
        line(
            "alert: SNS publishes",
            u.publishes * SNS_PUBLISH.usd * m,
            u.publishes * SNS_PUBLISH.usd * m,
        ),
        line(
            "logs: CloudWatch Logs ingestion (the baseline handlers log nothing)",
            u.log_bytes / 1e9 * CLOUDWATCH_LOGS_INGESTED_GB.usd * m,
            0.0,
        ),
    ];
    let h = HOURS_PER_MONTH;
    let monthly = vec![
        line(
            "Kinesis shards",
            stack.shards * KINESIS_SHARD_HOUR.usd * h,
            CLASSIC_SHARDS * KINESIS_SHARD_HOUR.usd * h,
        ),
        line(
            "EC2 t2.micro + 8 GB gp3 (Kinesis Agent)",
            0.0,
            EC2_T2_MICRO_HOUR.usd * h + CLASSIC_EBS_GB * EBS_GP3_GB_MONTH.usd,
        ),
        line(
            "Kinesis Data Analytics SQL, 1 KPU",
            0.0,
            CLASSIC_KPUS * KDA_SQL_KPU_HOUR.usd * h,
        ),
        line(
            "CloudWatch custom metrics (EMF series)",
            stack.metric_series * CLOUDWATCH_METRIC_MONTH.usd,
            0.0,
        ),
        line(
            "CloudWatch alarms",
            stack.alarms * CLOUDWATCH_ALARM_MONTH.usd,
            0.0,
        ),
    ];
    Model {
        per_million,
        monthly,
        sms_per_alert: SNS_SMS_US.usd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn fixed_floor_is_hours_times_prices() {
        let m = model(
            &Usage::default(),
            &Stack {
                shards: 1.0,
                alarms: 10.0,
                metric_series: 20.0,
            },
            LambdaUse::default(),
            LambdaUse::default(),
        );
        let (p, c) = m.monthly_total();
        // pricewire: 1 shard (10.95) + 10 alarms (1.00) + 20 metrics (6.00).
        assert!(close(p, 730.0 * 0.015 + 1.0 + 6.0), "{p}");
        // classic: 2 shards (21.90) + t2.micro (8.468) + 8 GB gp3 (0.64) + 1 KPU (80.30).
        assert!(close(c, 21.9 + 8.468 + 0.64 + 80.3), "{c}");
    }

    #[test]
    fn billed_time_is_cpu_at_the_memory_share_of_a_vcpu() {
        // 10 ms of one core at 256 MB (0.1447 vCPU) is 69.1 ms, billed as 70 ms.
        assert!(close(billed_seconds(0.010, 256.0), 0.070));
        // From 1,769 MB up a function has a whole vCPU; the minimum is one step.
        assert!(close(billed_seconds(0.010, 3538.0), 0.010));
        assert!(close(billed_seconds(0.0, 256.0), 0.001));
    }

    #[test]
    fn per_million_scales_measured_use() {
        let usage = Usage {
            consumer: LambdaUse {
                invocations: 0.01,
                gb_seconds: 0.000_01,
            },
            put_units: 1.0,
            write_units: 2.0,
            ..Usage::default()
        };
        let m = model(
            &usage,
            &Stack::default(),
            usage.consumer,
            LambdaUse::default(),
        );
        let (p, c) = m.per_million_total();
        // 10,000 invocations ($0.002) + 10 GB-s ($0.000166667) + 1M PUT units ($0.014)
        // + 2M WRU ($1.25); the classic design does the same work here.
        let expected = 0.002 + 10.0 * 0.000_016_666_7 + 0.014 + 1.25;
        assert!(close(p, expected), "{p}");
        assert!(close(c, expected), "{c}");
        let (mp, _) = m.at(3e6);
        assert!(close(mp, 3.0 * expected));
    }
}
