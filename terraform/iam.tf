# One execution role per function and one for EventBridge Scheduler, each with an
# inline policy granting only the calls its code (or the Lambda/Scheduler service
# on its behalf) makes, on this stack's own resources.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "fn" {
  for_each = local.function_keys

  name               = "${var.name}-${each.key}"
  description        = "Execution role of the ${var.name}-${each.key} Lambda function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

locals {
  # Read set used by Lambda's Kinesis event source mapping poller: what the Lambda
  # developer guide lists for a Kinesis event source's execution role (no ListStreams,
  # which takes no resource and is not needed for a mapping on one stream's ARN;
  # SubscribeToShard only for enhanced fan-out consumers, which this stack does not use).
  stream_read_actions = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
  ]
}

# --- collector ---------------------------------------------------------------

data "aws_iam_policy_document" "collector" {
  # Grants on the customer managed key, when there is one (data.aws_iam_policy_document.kms).
  source_policy_documents = local.use_cmk ? [data.aws_iam_policy_document.kms["collector"].json] : []

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.fn["collector"].arn}:*"]
  }

  statement {
    sid       = "PutRecords"
    actions   = ["kinesis:PutRecords"]
    resources = [aws_kinesis_stream.prices.arn]
  }

  statement {
    # Raw answers and quarantined records, under its own sources' partitions only (the
    # consumer writes quarantine/source=stream/).
    sid     = "ArchiveWrite"
    actions = ["s3:PutObject"]
    resources = flatten([for name in sort(tolist(local.source_names)) : [
      "${aws_s3_bucket.archive.arn}/raw/source=${name}/*",
      "${aws_s3_bucket.archive.arn}/quarantine/source=${name}/*",
    ]])
  }

  dynamic "statement" {
    # One grant per source secret, on that parameter only.
    for_each = length(aws_ssm_parameter.source_token) > 0 ? [1] : []
    content {
      sid       = "ReadSourceTokens"
      actions   = ["ssm:GetParameter"]
      resources = [for p in aws_ssm_parameter.source_token : p.arn]
    }
  }

  statement {
    # Circuit breakers, learned rate limits, cursors, holds and last runs; only its own items
    # (the alerter's claims share the table under other keys).
    sid       = "CollectorState"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.state.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["BREAKER#*", "LIMIT#*", "CURSOR#*", "HOLD#*", "RUN#*"]
    }
  }

  statement {
    # A completed walk deletes its cursor; nothing else is ever deleted.
    sid       = "ClearCursors"
    actions   = ["dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.state.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["CURSOR#*"]
    }
  }

  statement {
    # Lambda sends failed asynchronous invocations (after the event invoke
    # config's retries) to this queue with the function's execution role.
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq["collector"].arn]
  }

  dynamic "statement" {
    for_each = length(aws_ssm_parameter.source_token) > 0 ? [1] : []
    content {
      # The SecureString tokens, decrypted by SSM (kms.tf: the stack's key when
      # kms_key_arn is unset).
      sid       = "KmsViaSsm"
      actions   = ["kms:Decrypt"]
      resources = [local.secrets_key_arn]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ssm.${var.aws_region}.amazonaws.com"]
      }
    }
  }
}

# --- consumer ----------------------------------------------------------------

data "aws_iam_policy_document" "consumer" {
  # Grants on the customer managed key, when there is one (data.aws_iam_policy_document.kms).
  source_policy_documents = local.use_cmk ? [data.aws_iam_policy_document.kms["consumer"].json] : []

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.fn["consumer"].arn}:*"]
  }

  statement {
    sid       = "ReadStream"
    actions   = local.stream_read_actions
    resources = [aws_kinesis_stream.prices.arn]
  }

  statement {
    # Query: an entity's stored changes, read before writing; BatchWriteItem: puts and
    # deletes of change and entity items.
    sid       = "Prices"
    actions   = ["dynamodb:Query", "dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.prices.arn]
  }

  statement {
    sid       = "QuarantineWrite"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.archive.arn}/quarantine/source=stream/*"]
  }

  statement {
    # Lambda's on-failure records (execution role) and the consumer's own poison notices.
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq["consumer"].arn]
  }

  statement {
    # Per-shard checkpoints for `pricewire status`; only its own items.
    sid       = "Checkpoints"
    actions   = ["dynamodb:PutItem"]
    resources = [aws_dynamodb_table.state.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["CHECKPOINT#consumer#*"]
    }
  }
}

# --- alerter -----------------------------------------------------------------

data "aws_iam_policy_document" "alerter" {
  # Grants on the customer managed key, when there is one (data.aws_iam_policy_document.kms).
  source_policy_documents = local.use_cmk ? [data.aws_iam_policy_document.kms["alerter"].json] : []

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.fn["alerter"].arn}:*"]
  }

  statement {
    # What Lambda's mapping calls to read the prices table's change stream.
    sid = "ReadChanges"
    actions = [
      "dynamodb:DescribeStream",
      "dynamodb:GetRecords",
      "dynamodb:GetShardIterator",
      "dynamodb:ListStreams",
    ]
    resources = [aws_dynamodb_table.prices.stream_arn]
  }

  statement {
    sid = "AlertState"
    # PutItem: the conditional claim; UpdateItem: mark it sent or release it, record a
    # rule's last alert per entity, count SMS against a cap; GetItem: read the last alert.
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.state.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["ALERT#*"]
    }
  }

  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }

  statement {
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq["alerter"].arn]
  }
}

# --- the customer managed key (kms_key_arn) -----------------------------------

locals {
  # The services that use the key on each function's behalf (kms:ViaService): the
  # collector's PutRecords, archive PutObject and on-failure DLQ; the stream readers'
  # GetRecords (the alerter's from the table's stream), the consumer's quarantine PutObject,
  # the alerter's Publish, and their DLQs
  # (SQS producers need Decrypt as well as GenerateDataKey). The collector's token reads
  # through SSM are KmsViaSsm above.
  kms_services = {
    collector = ["kinesis", "s3", "sqs"]
    consumer  = ["kinesis", "s3", "sqs"]
    alerter   = ["dynamodb", "sns", "sqs"]
  }
}

data "aws_iam_policy_document" "kms" {
  for_each = local.use_cmk ? local.function_keys : toset([])

  statement {
    sid       = "KmsViaServices"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [for svc in local.kms_services[each.key] : "${svc}.${var.aws_region}.amazonaws.com"]
    }
  }

  statement {
    # The tables (state; prices for the consumer) encrypted with the key.
    sid       = "KmsViaDynamoDB"
    actions   = ["kms:Encrypt", "kms:DescribeKey"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.aws_region}.amazonaws.com"]
    }
  }
}

locals {
  function_policies = {
    collector = data.aws_iam_policy_document.collector.json
    consumer  = data.aws_iam_policy_document.consumer.json
    alerter   = data.aws_iam_policy_document.alerter.json
  }
}

resource "aws_iam_role_policy" "fn" {
  for_each = local.function_keys

  name   = "${var.name}-${each.key}"
  role   = aws_iam_role.fn[each.key].id
  policy = local.function_policies[each.key]
}

# --- scheduler ---------------------------------------------------------------

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    # Confused-deputy protection: only schedules in this account may assume it.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "Role EventBridge Scheduler uses to invoke the ${var.name} collector"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeCollector"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.fn["collector"].arn]
  }

  statement {
    sid       = "DeadLetter"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq["scheduler"].arn]
  }

  dynamic "statement" {
    for_each = local.use_cmk ? [1] : []
    content {
      # Decrypt: the schedules' input (aws_scheduler_schedule.kms_key_arn).
      # GenerateDataKey: dead-letter events to the KMS-encrypted queue.
      sid       = "Kms"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
