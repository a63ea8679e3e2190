//! The cost model: measured rates (per collector run, per record, per change, per repeat,
//! per alert, bytes stored) × AWS list prices (us-east-1) → dollars per month for a
//! workload, for pricewire and for the classic design it replaces: a Python scraper with
//! the Kinesis Agent on an EC2 t2.micro, two provisioned shards, a Kinesis Data Analytics
//! SQL application at 1 KPU evaluating the alert rules, and Python Lambdas, one putting
//! every record as a new item (a fresh uuid key) and one publishing the alerts. Each
//! design is charged what it does: its own write units, its own items stored.
//!
//! Pure: no I/O. Free tiers are left out (list prices only). Storage is priced at the
//! steady state of a workload kept up: what the tables and the archive hold once their
//! retention has filled.

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

pub const LAMBDA_GB_SECOND_ARM64: Price = price(
    0.000_013_333_4,
    "GB-second (arm64)",
    "2026-12-02",
    "third-party copy of the AWS Price List API, us-east-1, prices effective 2025-10-01 (SKU 72SBSFWPMDTH8S3J); 20 % below x86_64",
);
pub const DYNAMODB_STORAGE_GB_MONTH: Price = price(
    0.25,
    "GB-month stored (Standard table class)",
    "2026-12-02",
    "stored copy of aws.amazon.com/dynamodb/pricing (older version, undated; AWS-hosted)",
);
pub const DYNAMODB_PITR_GB_MONTH: Price = price(
    0.20,
    "GB-month of point-in-time recovery",
    "2026-12-02",
    "AWS Price List API record quoted by a third party (2026-09-05) for us-west-2; us-east-1 the same, not verified",
);
pub const S3_STANDARD_GB_MONTH: Price = price(
    0.023,
    "GB-month stored (S3 Standard, first 50 TB)",
    "2026-12-02",
    "AWS Price List record for us-east-1 quoted in a third-party test file (SKU 4NA7Y494T4JAZ9A)",
);
pub const SNS_SMS_RU: Price = price(
    0.50,
    "SMS to a Russian number (+7, registered sender ID)",
    "2026-12-02",
    "from memory, not verified: no stored AWS price for Russia found; AWS lists a Russia sender-ID registration form",
);
pub const SMS_US_CARRIER_FEE: Price = price(
    0.0045,
    "US carrier fee per SMS segment (highest of the major carriers)",
    "2026-12-02",
    "help.textvolt.com carrier fee snapshot (2026-05-26); third-party, not AWS's own figure",
);

/// Every price the model uses, for the results' price table.
pub const PRICES: &[(&str, Price)] = &[
    ("LAMBDA_REQUEST", LAMBDA_REQUEST),
    ("LAMBDA_GB_SECOND_X86", LAMBDA_GB_SECOND_X86),
    ("LAMBDA_GB_SECOND_ARM64", LAMBDA_GB_SECOND_ARM64),
    ("KINESIS_SHARD_HOUR", KINESIS_SHARD_HOUR),
    ("KINESIS_PUT_PAYLOAD_UNIT", KINESIS_PUT_PAYLOAD_UNIT),
    ("DYNAMODB_WRITE_REQUEST_UNIT", DYNAMODB_WRITE_REQUEST_UNIT),
    ("DYNAMODB_STORAGE_GB_MONTH", DYNAMODB_STORAGE_GB_MONTH),
    ("DYNAMODB_PITR_GB_MONTH", DYNAMODB_PITR_GB_MONTH),
    ("S3_PUT_REQUEST", S3_PUT_REQUEST),
    ("S3_STANDARD_GB_MONTH", S3_STANDARD_GB_MONTH),
    ("SNS_PUBLISH", SNS_PUBLISH),
    ("SNS_SMS_US", SNS_SMS_US),
    ("SMS_US_CARRIER_FEE", SMS_US_CARRIER_FEE),
    ("SNS_SMS_RU", SNS_SMS_RU),
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

/// Days in the month AWS bills by.
pub const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;
/// How long the prices table keeps a change (Terraform `history_ttl_days`' default); the
/// classic table is given the same retention.
pub const HISTORY_RETENTION_DAYS: f64 = 90.0;
/// How long the raw archive keeps a response (Terraform `raw_archive_expire_days`'
/// default), priced at S3 Standard throughout (an upper bound: it moves to
/// Standard-IA after `raw_archive_ia_days`).
pub const ARCHIVE_RETENTION_DAYS: f64 = 365.0;
/// Records per consumer invocation at most (the Kinesis mapping's batch size), and
/// changes per alerter invocation (the table stream mapping's).
pub const STREAM_BATCH: f64 = 100.0;

/// A workload to price: collector runs a month, records each run puts on the stream, and
/// the share of them that repeat the value before (no change).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub name: &'static str,
    pub says: &'static str,
    pub runs_per_month: f64,
    pub records_per_run: f64,
    pub unchanged: f64,
}

impl Workload {
    pub fn records(&self) -> f64 {
        self.runs_per_month * self.records_per_run
    }
    pub fn changes(&self) -> f64 {
        self.records() * (1.0 - self.unchanged)
    }
}

/// Runs a month of one job every five minutes.
const EVERY_FIVE_MINUTES: f64 = HOURS_PER_MONTH * 12.0;

/// The reference workloads.
pub const SEED: Workload = Workload {
    name: "seed",
    says: "the seed's: one route every 5 minutes, 30 offers each, 90 % unchanged",
    runs_per_month: EVERY_FIVE_MINUTES,
    records_per_run: 30.0,
    unchanged: 0.9,
};
pub const USER: Workload = Workload {
    name: "user",
    says: "a user's: 20 jobs every 5 minutes, 30 offers each, 90 % unchanged",
    runs_per_month: 20.0 * EVERY_FIVE_MINUTES,
    records_per_run: 30.0,
    unchanged: 0.9,
};
pub const HUNDRED_MILLION: Workload = Workload {
    name: "100M",
    says: "100 million records a month: runs of 500 offers (the twin's), 90 % unchanged",
    runs_per_month: 200_000.0,
    records_per_run: 500.0,
    unchanged: 0.9,
};
pub const WORKLOADS: [Workload; 3] = [SEED, USER, HUNDRED_MILLION];

/// Lambda's two architectures; the CPU time measured here (x86_64) is assumed the same on
/// arm64 (not measured: no aarch64 toolchain on this machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    fn gb_second(self) -> f64 {
        match self {
            Arch::X86_64 => LAMBDA_GB_SECOND_X86.usd,
            Arch::Arm64 => LAMBDA_GB_SECOND_ARM64.usd,
        }
    }
}

/// Pricewire's measured rates (the twin's run and the stub's).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Billed seconds of one collector run (its wall time on the twin) and its state-table
    /// write units.
    pub run_seconds: f64,
    pub run_state_units: f64,
    /// Records per raw-archive object (one per upstream answer): a run of fewer records
    /// still writes one.
    pub records_per_s3_put: f64,
    /// Kinesis PUT payload units and log bytes per record.
    pub put_units: f64,
    pub log_bytes: f64,
    /// CPU seconds per record in the consumer, per change in the alerter (billed at the
    /// function's share of a vCPU per invocation).
    pub consumer_cpu: f64,
    pub alerter_cpu: f64,
    /// Prices-table write units per change of a tracked entity, and per repeat.
    pub units_per_change: f64,
    pub units_per_repeat: f64,
    /// Alerts per change, SNS publishes and state-table write units per alert.
    pub alerts_per_change: f64,
    pub publishes_per_alert: f64,
    pub units_per_alert: f64,
    /// Bytes stored: per change item, and in the raw archive per record (gzip).
    pub item_bytes: f64,
    pub archive_bytes: f64,
    /// What the stack holds whatever the traffic.
    pub shards: f64,
    pub alarms: f64,
    pub metric_series: f64,
    pub memory_mb: f64,
}

/// The classic design's measured rates (the Python baseline on the stub).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Classic {
    /// CPU seconds per record in the Python consumer, per alert in the output Lambda.
    pub consumer_cpu: f64,
    pub alert_cpu: f64,
    /// Write units per record (a new item per record, and its latest-item puts), and the
    /// bytes each record's item holds.
    pub units_per_record: f64,
    pub item_bytes: f64,
}

/// One line of the comparison, dollars per month.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: &'static str,
    pub pricewire: f64,
    pub classic: f64,
}

/// Pricewire's and the classic design's sums of the lines.
pub fn total(lines: &[Line]) -> (f64, f64) {
    lines
        .iter()
        .fold((0.0, 0.0), |(p, c), l| (p + l.pricewire, c + l.classic))
}

/// Dollars for `invocations` of a function that needs `cpu_s` each.
fn lambda(invocations: f64, cpu_s: f64, memory_mb: f64, arch: Arch) -> f64 {
    invocations
        * (LAMBDA_REQUEST.usd
            + billed_seconds(cpu_s, memory_mb) * memory_mb / 1024.0 * arch.gb_second())
}

/// A month of `w`: each line for pricewire (its Lambdas on `arch`) and the classic design.
pub fn monthly(w: &Workload, r: &Rates, c: &Classic, arch: Arch) -> Vec<Line> {
    let (records, changes) = (w.records(), w.changes());
    let repeats = records - changes;
    let alerts = changes * r.alerts_per_change;
    let h = HOURS_PER_MONTH;
    let gb = 1024.0 * 1024.0 * 1024.0;
    // Each run's records reach the consumer in batches of their own; its changes the
    // alerter, likewise (at a high rate batches fill: the same count).
    let per_run = |n: f64| (n / STREAM_BATCH).ceil().max(1.0);
    let consumer_calls = w.runs_per_month * per_run(w.records_per_run);
    let changes_per_run = w.records_per_run * (1.0 - w.unchanged);
    let alerter_calls = match changes_per_run > 0.0 {
        true => w.runs_per_month * per_run(changes_per_run),
        false => 0.0,
    };
    let line = |item, pricewire, classic| Line {
        item,
        pricewire,
        classic,
    };
    let held = |per_month: f64, days: f64| per_month * days / DAYS_PER_MONTH;
    vec![
        line(
            "collect: collector Lambda / scraper and Kinesis Agent on a t2.micro + 8 GB gp3",
            w.runs_per_month
                * (LAMBDA_REQUEST.usd + r.run_seconds * r.memory_mb / 1024.0 * arch.gb_second()),
            EC2_T2_MICRO_HOUR.usd * h + CLASSIC_EBS_GB * EBS_GP3_GB_MONTH.usd,
        ),
        line(
            "schedules: EventBridge Scheduler / cron on the instance",
            w.runs_per_month * SCHEDULER_INVOCATION.usd,
            0.0,
        ),
        line(
            "collect: state-table writes (cursors, breaker, runs)",
            w.runs_per_month * r.run_state_units * DYNAMODB_WRITE_REQUEST_UNIT.usd,
            0.0,
        ),
        line(
            "raw archive: S3 PUTs",
            w.runs_per_month
                * (w.records_per_run / r.records_per_s3_put.max(1.0))
                    .ceil()
                    .max(1.0)
                * S3_PUT_REQUEST.usd,
            0.0,
        ),
        line(
            "raw archive: S3 storage (a year kept, gzip)",
            held(records * r.archive_bytes, ARCHIVE_RETENTION_DAYS) / gb * S3_STANDARD_GB_MONTH.usd,
            0.0,
        ),
        line(
            "stream: Kinesis shards (provisioned)",
            r.shards * KINESIS_SHARD_HOUR.usd * h,
            CLASSIC_SHARDS * KINESIS_SHARD_HOUR.usd * h,
        ),
        line(
            "stream: Kinesis PUT payload units",
            records * r.put_units * KINESIS_PUT_PAYLOAD_UNIT.usd,
            records * r.put_units * KINESIS_PUT_PAYLOAD_UNIT.usd,
        ),
        line(
            "store: consumer Lambda (Rust / Python)",
            lambda(
                consumer_calls,
                r.consumer_cpu * records / consumer_calls.max(1.0),
                r.memory_mb,
                arch,
            ),
            lambda(
                consumer_calls,
                c.consumer_cpu * records / consumer_calls.max(1.0),
                r.memory_mb,
                Arch::X86_64,
            ),
        ),
        line(
            "store: DynamoDB writes (changes only / every record a new item)",
            (changes * r.units_per_change + repeats * r.units_per_repeat)
                * DYNAMODB_WRITE_REQUEST_UNIT.usd,
            records * c.units_per_record * DYNAMODB_WRITE_REQUEST_UNIT.usd,
        ),
        line(
            "store: DynamoDB storage and point-in-time recovery (90 days kept)",
            held(changes * r.item_bytes, HISTORY_RETENTION_DAYS) / gb
                * (DYNAMODB_STORAGE_GB_MONTH.usd + DYNAMODB_PITR_GB_MONTH.usd),
            held(records * c.item_bytes, HISTORY_RETENTION_DAYS) / gb
                * (DYNAMODB_STORAGE_GB_MONTH.usd + DYNAMODB_PITR_GB_MONTH.usd),
        ),
        line(
            "alert: alerter Lambda on the change stream / KDA SQL at 1 KPU",
            lambda(
                alerter_calls,
                r.alerter_cpu * changes / alerter_calls.max(1.0),
                r.memory_mb,
                arch,
            ),
            CLASSIC_KPUS * KDA_SQL_KPU_HOUR.usd * h,
        ),
        line(
            "alert: KDA's output Lambda (one invocation per alert)",
            0.0,
            lambda(alerts, c.alert_cpu, r.memory_mb, Arch::X86_64),
        ),
        line(
            "alert: state-table writes (claims, re-alert state)",
            alerts * r.units_per_alert * DYNAMODB_WRITE_REQUEST_UNIT.usd,
            0.0,
        ),
        line(
            "alert: SNS publishes",
            alerts * r.publishes_per_alert * SNS_PUBLISH.usd,
            alerts * SNS_PUBLISH.usd,
        ),
        line(
            "logs: CloudWatch Logs ingestion (the baseline logs nothing)",
            records * r.log_bytes / 1e9 * CLOUDWATCH_LOGS_INGESTED_GB.usd,
            0.0,
        ),
        line(
            "metrics: CloudWatch custom metric series (EMF)",
            r.metric_series * CLOUDWATCH_METRIC_MONTH.usd,
            0.0,
        ),
        line(
            "alarms: CloudWatch alarms",
            r.alarms * CLOUDWATCH_ALARM_MONTH.usd,
            0.0,
        ),
    ]
}

/// A workload's month in both designs, and the alerts it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Month {
    pub workload: Workload,
    pub x86_64: f64,
    pub arm64: f64,
    pub classic: f64,
    pub alerts: f64,
}

impl Month {
    pub fn of(w: &Workload, r: &Rates, c: &Classic) -> Month {
        let (x86_64, classic) = total(&monthly(w, r, c, Arch::X86_64));
        let (arm64, _) = total(&monthly(w, r, c, Arch::Arm64));
        Month {
            workload: *w,
            x86_64,
            arm64,
            classic,
            alerts: w.changes() * r.alerts_per_change,
        }
    }
    /// How many times cheaper pricewire (x86_64, as deployed) is.
    pub fn ratio(&self) -> f64 {
        self.classic / self.x86_64
    }
    /// Pricewire's dollars per million records.
    pub fn per_million(&self) -> f64 {
        self.x86_64 / self.workload.records() * 1e6
    }
    /// SMS to one subscriber who receives every alert, in Russia and in the US (base price
    /// and carrier fee): the same in both designs, outside the totals.
    pub fn sms(&self) -> (f64, f64) {
        (
            self.alerts * SNS_SMS_RU.usd,
            self.alerts * (SNS_SMS_US.usd + SMS_US_CARRIER_FEE.usd),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    fn line(lines: &[Line], starts: &str) -> (f64, f64) {
        let l = lines.iter().find(|l| l.item.starts_with(starts)).unwrap();
        (l.pricewire, l.classic)
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
    fn the_fixed_parts_are_hours_times_prices() {
        let r = Rates {
            shards: 1.0,
            alarms: 10.0,
            metric_series: 20.0,
            memory_mb: 256.0,
            ..Rates::default()
        };
        let idle = Workload {
            runs_per_month: 0.0,
            ..USER
        };
        let (p, c) = total(&monthly(&idle, &r, &Classic::default(), Arch::X86_64));
        // pricewire: 1 shard (10.95) + 10 alarms (1.00) + 20 metrics (6.00).
        assert!(close(p, 730.0 * 0.015 + 1.0 + 6.0), "{p}");
        // classic: 2 shards (21.90) + t2.micro (8.468) + 8 GB gp3 (0.64) + 1 KPU (80.30).
        assert!(close(c, 21.9 + 8.468 + 0.64 + 80.3), "{c}");
    }

    #[test]
    fn writes_charge_changes_and_repeats_apart_and_the_classic_design_every_record() {
        let r = Rates {
            units_per_change: 1.0,
            units_per_repeat: 0.01,
            memory_mb: 256.0,
            ..Rates::default()
        };
        let c = Classic {
            units_per_record: 2.0,
            ..Classic::default()
        };
        // The user's month: 175,200 runs × 30 = 5,256,000 records, 525,600 of them changes.
        assert!(close(USER.records(), 5_256_000.0));
        let lines = monthly(&USER, &r, &c, Arch::X86_64);
        let (p, cl) = line(&lines, "store: DynamoDB writes");
        assert!(close(p, (525_600.0 + 4_730_400.0 * 0.01) * 0.625e-6), "{p}");
        assert!(close(cl, 5_256_000.0 * 2.0 * 0.625e-6), "{cl}");
    }

    #[test]
    fn storage_is_what_the_retention_holds_at_the_steady_state() {
        let gib = 1024.0 * 1024.0 * 1024.0;
        let r = Rates {
            item_bytes: 1024.0,
            archive_bytes: 100.0,
            memory_mb: 256.0,
            ..Rates::default()
        };
        let c = Classic {
            item_bytes: 1024.0,
            ..Classic::default()
        };
        let w = Workload {
            runs_per_month: 1.0,
            records_per_run: gib / 1024.0,
            unchanged: 0.5,
            ..USER
        };
        let lines = monthly(&w, &r, &c, Arch::X86_64);
        // 1 GiB of records a month, half of them changes, kept 90 days (2.959 months).
        let months = 90.0 / (730.0 / 24.0);
        let (p, cl) = line(&lines, "store: DynamoDB storage");
        assert!(close(p, 0.5 * months * 0.45), "{p}");
        assert!(close(cl, months * 0.45), "{cl}");
        // 100 B of archive per record, a year kept.
        let (a, _) = line(&lines, "raw archive: S3 storage");
        assert!(
            close(a, 100.0 / 1024.0 * 365.0 / (730.0 / 24.0) * 0.023),
            "{a}"
        );
    }

    #[test]
    fn lambda_bills_per_invocation_at_the_architecture_price() {
        let r = Rates {
            consumer_cpu: 0.000_1,
            memory_mb: 256.0,
            ..Rates::default()
        };
        let lines = |arch| monthly(&SEED, &r, &Classic::default(), arch);
        // The seed: 8,760 runs of 30 records, each one consumer invocation of 3 ms CPU
        // (20.7 ms at 256 MB, billed 21 ms).
        let per_call = |gbs: f64| 0.2e-6 + 0.021 * 0.25 * gbs;
        let (x, _) = line(&lines(Arch::X86_64), "store: consumer Lambda");
        let (a, _) = line(&lines(Arch::Arm64), "store: consumer Lambda");
        assert!(close(x, 8760.0 * per_call(0.000_016_666_7)), "{x}");
        assert!(close(a, 8760.0 * per_call(0.000_013_333_4)), "{a}");
    }

    #[test]
    fn a_run_writes_one_archive_object_per_answer_and_at_least_one() {
        let r = Rates {
            records_per_s3_put: 167.0,
            memory_mb: 256.0,
            ..Rates::default()
        };
        let puts = |w: &Workload| {
            line(
                &monthly(w, &r, &Classic::default(), Arch::X86_64),
                "raw archive: S3 PUTs",
            )
            .0
        };
        // 30 offers: one answer per run; 500 offers: three.
        assert!(close(puts(&USER), 175_200.0 * 0.005 / 1e3));
        assert!(close(puts(&HUNDRED_MILLION), 200_000.0 * 3.0 * 0.005 / 1e3));
    }

    #[test]
    fn sms_is_priced_per_country_outside_the_totals() {
        let r = Rates {
            alerts_per_change: 0.01,
            memory_mb: 256.0,
            ..Rates::default()
        };
        let m = Month::of(&USER, &r, &Classic::default());
        // 525,600 changes → 5,256 alerts.
        assert!(close(m.alerts, 5256.0));
        let (ru, us) = m.sms();
        assert!(close(ru, 5256.0 * 0.50));
        assert!(close(us, 5256.0 * (0.00581 + 0.0045)));
    }
}
