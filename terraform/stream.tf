resource "aws_kinesis_stream" "prices" {
  name             = "${var.name}-prices"
  shard_count      = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  retention_period = var.stream_retention_hours

  encryption_type = "KMS"
  kms_key_id      = local.use_cmk ? var.kms_key_arn : "alias/aws/kinesis"

  stream_mode_details {
    stream_mode = var.stream_mode
  }
}
