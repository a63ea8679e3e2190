# Account facts and names shared by every file.
data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  use_cmk    = var.kms_key_arn != null

  function_keys = toset(["collector", "consumer", "alerter"])
  # Who reads which stream: the consumer the Kinesis stream of records, the alerter the
  # prices table's change stream (iterator-age alarms for both).
  stream_readers = toset(["consumer", "alerter"])

  archive_bucket_name = coalesce(var.archive_bucket_name, "${var.name}-archive-${local.account_id}")
  schedule_group_name = var.name
}
