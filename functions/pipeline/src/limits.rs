//! Limits of AWS services that pricewire's code enforces, each with where it comes from.
//!
//! Kept in one place so a reader can check them against the AWS quotas pages, and so the
//! tests can assert against the same numbers the code uses.

/// Kinesis PutRecords: at most 500 entries in one request.
pub const KINESIS_PUT_RECORDS_MAX_ENTRIES: usize = 500;
/// Kinesis PutRecords: at most 5 MiB in one request, data blobs plus partition keys.
pub const KINESIS_PUT_RECORDS_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Kinesis: one record's data blob (before base64) plus its partition key at most 1 MiB.
pub const KINESIS_RECORD_MAX_BYTES: usize = 1024 * 1024;
/// Kinesis: a partition key is 1 to 256 Unicode characters.
pub const KINESIS_PARTITION_KEY_MAX_CHARS: usize = 256;

/// DynamoDB BatchWriteItem: at most 25 put or delete requests in one call.
pub const DYNAMODB_BATCH_WRITE_MAX_ITEMS: usize = 25;
/// DynamoDB: one item at most 400 KB, attribute names and values included.
pub const DYNAMODB_ITEM_MAX_BYTES: usize = 400 * 1024;
/// DynamoDB: a partition key value at most 2048 bytes.
pub const DYNAMODB_PARTITION_KEY_MAX_BYTES: usize = 2048;
/// DynamoDB: a sort key value (and an index key such as `latest_sk`) at most 1024 bytes.
pub const DYNAMODB_SORT_KEY_MAX_BYTES: usize = 1024;

/// SNS Publish: at most 10 message attributes on one message.
pub const SNS_MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// SNS Publish: message body at most 256 KiB.
pub const SNS_MESSAGE_MAX_BYTES: usize = 256 * 1024;
/// SMS: one segment holds 160 GSM-7 septets (characters of the extension table count two).
pub const SMS_GSM7_SEGMENT_SEPTETS: usize = 160;
/// SMS: one segment holds 70 UCS-2 code units once any character is outside GSM-7.
pub const SMS_UCS2_SEGMENT_UNITS: usize = 70;

/// S3: user-defined object metadata at most 2 KB (keys and values, UTF-8 bytes).
pub const S3_USER_METADATA_MAX_BYTES: usize = 2 * 1024;

/// Lambda: all environment variables of a function together at most 4 KB.
pub const LAMBDA_ENVIRONMENT_MAX_BYTES: usize = 4 * 1024;

/// CloudWatch Embedded Metric Format: at most 100 metrics in one document.
pub const EMF_MAX_METRICS: usize = 100;
/// CloudWatch Embedded Metric Format: at most 30 dimensions in one dimension set.
pub const EMF_MAX_DIMENSIONS: usize = 30;

/// SQS: a message body at most 256 KiB (the limit every region and API version accepts).
pub const SQS_MESSAGE_MAX_BYTES: usize = 256 * 1024;
