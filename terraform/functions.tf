locals {
  # Environment variable names are read by the Rust code: do not rename.
  function_environment = {
    collector = {
      PRICEWIRE_STREAM_NAME     = aws_kinesis_stream.prices.name
      PRICEWIRE_ARCHIVE_BUCKET  = aws_s3_bucket.archive.id
      PRICEWIRE_SOURCES         = jsonencode(local.collector_sources)
      PRICEWIRE_HTTP_TIMEOUT_MS = tostring(var.http_timeout_ms)
      # Checked at start against the request timeout (Lambda tells no function its timeout).
      PRICEWIRE_FUNCTION_TIMEOUT_SECONDS = tostring(local.function_settings.collector.timeout_seconds)
      PRICEWIRE_HTTP_MAX_ATTEMPTS        = tostring(var.http_max_attempts)
      PRICEWIRE_PUT_MAX_ATTEMPTS         = tostring(var.put_max_attempts)
      PRICEWIRE_STATE_TABLE              = aws_dynamodb_table.state.name
      RUST_LOG                           = var.log_level
    }
    consumer = {
      PRICEWIRE_PRICES_TABLE       = aws_dynamodb_table.prices.name
      PRICEWIRE_ARCHIVE_BUCKET     = aws_s3_bucket.archive.id
      PRICEWIRE_HISTORY_TTL_DAYS   = tostring(var.history_ttl_days)
      PRICEWIRE_WRITE_MAX_ATTEMPTS = tostring(var.write_max_attempts)
      PRICEWIRE_STAT_WINDOWS_DAYS  = join(",", [for d in var.stat_windows_days : tostring(d)])
      # Only the fields set: an unset one keeps the consumer's default for the kind.
      PRICEWIRE_PLAUSIBILITY = jsonencode({ for kind, b in var.plausibility : kind => { for field, v in b : field => v if v != null } })
      # Poison records are reported here with their reason; checkpoints go to the state table.
      PRICEWIRE_DEAD_LETTER_QUEUE_URL = aws_sqs_queue.dlq["consumer"].url
      PRICEWIRE_STATE_TABLE           = aws_dynamodb_table.state.name
      RUST_LOG                        = var.log_level
    }
    alerter = {
      PRICEWIRE_TOPIC_ARN   = aws_sns_topic.alerts.arn
      PRICEWIRE_STATE_TABLE = aws_dynamodb_table.state.name
      # Only the fields set, so the 4 KB environment holds more rules.
      PRICEWIRE_ALERT_RULES       = jsonencode([for r in var.alert_rules : { for k, v in r : k => v if v != null && !(k == "params" && try(length(v), 1) == 0) }])
      PRICEWIRE_STAT_WINDOWS_DAYS = join(",", [for d in var.stat_windows_days : tostring(d)])
      # Names and wishes only: phone numbers and addresses stay in the SNS subscriptions.
      PRICEWIRE_SUBSCRIBERS           = jsonencode(local.subscribers_env)
      PRICEWIRE_DEDUP_WINDOW_SECONDS  = tostring(var.dedup_window_seconds)
      PRICEWIRE_ALERT_MAX_AGE_SECONDS = tostring(coalesce(var.alert_max_age_seconds, var.dedup_window_seconds))
      PRICEWIRE_WRITE_MAX_ATTEMPTS    = tostring(var.write_max_attempts)
      RUST_LOG                        = var.log_level
    }
  }

  function_settings = {
    collector = var.functions.collector
    consumer  = var.functions.consumer
    alerter   = var.functions.alerter
  }
}

resource "aws_cloudwatch_log_group" "fn" {
  #checkov:skip=CKV_AWS_338:Retention is the operator's choice (log_retention_days, default 30 days); a year of debug logs is not needed.
  for_each = local.function_keys

  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.secrets_key_arn # kms.tf: the stack's key when kms_key_arn is unset
}

resource "aws_lambda_function" "fn" {
  #checkov:skip=CKV_AWS_50:X-Ray tracing is not used; it would need xray:PutTraceSegments beyond what the code calls.
  #checkov:skip=CKV_AWS_115:No reserved concurrency: stream readers are bounded by shards x parallelization_factor, the collector by the number of schedules.
  #checkov:skip=CKV_AWS_116:Failed collector invocations go to an on-failure destination (aws_lambda_function_event_invoke_config.collector); consumer/alerter use on-failure destinations on their event source mappings.
  #checkov:skip=CKV_AWS_117:The functions call only public AWS APIs and the public Travelpayouts API; no VPC resources.
  #checkov:skip=CKV_AWS_272:Code signing is not set up for this project.
  #checkov:skip=CKV_AWS_173:Environment variables hold names and settings, no secrets (tokens are in SSM); kms_key_arn is used when a CMK is set.
  for_each = local.function_keys

  function_name = "${var.name}-${each.key}"
  description   = "pricewire ${each.key}"
  role          = aws_iam_role.fn[each.key].arn

  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]

  filename         = "${var.lambda_zip_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_zip_dir}/${each.key}/bootstrap.zip")

  memory_size = local.function_settings[each.key].memory_mb
  timeout     = local.function_settings[each.key].timeout_seconds
  kms_key_arn = var.kms_key_arn

  environment {
    variables = local.function_environment[each.key]
  }

  # JSON system logs in the group below. application_log_level is left unset on
  # purpose: setting it makes Lambda export AWS_LAMBDA_LOG_LEVEL, which
  # lambda_runtime's default subscriber prefers over RUST_LOG.
  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.fn[each.key].name
  }

  lifecycle {
    precondition {
      # Lambda limits the environment (all keys + values) to 4 KB.
      condition     = length(join("", [for k, v in local.function_environment[each.key] : "${k}${v}"])) < 4096
      error_message = "The ${each.key} function's environment exceeds Lambda's 4 KB limit (shorten alert_rules or sources)."
    }
    precondition {
      # Room for two requests one after another, plus the 1.5 s the collector keeps to
      # archive and put (collector/src/config.rs checks the same at start): otherwise no
      # request ever starts and every run "succeeds" with nothing.
      condition     = each.key != "collector" || 2 * var.http_timeout_ms + 1500 <= local.function_settings.collector.timeout_seconds * 1000
      error_message = "http_timeout_ms leaves no room for requests: 2 x http_timeout_ms + 1500 ms must fit in functions.collector.timeout_seconds."
    }
  }

  depends_on = [
    aws_cloudwatch_log_group.fn,
    aws_iam_role_policy.fn,
  ]
}

# ---------------------------------------------------------------------------
# Dead-letter queues: one per event source mapping, one for the scheduler,
# one for the collector's failed asynchronous invocations
# ---------------------------------------------------------------------------

resource "aws_sqs_queue" "dlq" {
  for_each = toset(["collector", "consumer", "alerter", "scheduler"])

  name                      = "${var.name}-${each.key}-dlq"
  message_retention_seconds = 1209600 # 14 days, the SQS maximum

  sqs_managed_sse_enabled           = local.use_cmk ? null : true
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.use_cmk ? 300 : null
}

data "aws_iam_policy_document" "dlq" {
  for_each = aws_sqs_queue.dlq

  # Collector/consumer/alerter: Lambda's on-failure destinations (async
  # invocations, event source mappings) send with the function's execution role. Scheduler: EventBridge Scheduler sends dead-letter events
  # with the schedule's execution role (per the Scheduler user guide); the
  # service-principal statement below is scoped to this stack's schedule group.
  statement {
    sid       = "AllowSendFromOwner"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [each.value.arn]

    principals {
      type        = "AWS"
      identifiers = [each.key == "scheduler" ? aws_iam_role.scheduler.arn : aws_iam_role.fn[each.key].arn]
    }
  }

  dynamic "statement" {
    for_each = each.key == "scheduler" ? [1] : []
    content {
      sid       = "AllowSchedulerService"
      effect    = "Allow"
      actions   = ["sqs:SendMessage"]
      resources = [each.value.arn]

      principals {
        type        = "Service"
        identifiers = ["scheduler.amazonaws.com"]
      }

      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = ["arn:${local.partition}:scheduler:${var.aws_region}:${local.account_id}:schedule/${local.schedule_group_name}/*"]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dlq" {
  for_each = aws_sqs_queue.dlq

  queue_url = each.value.id
  policy    = data.aws_iam_policy_document.dlq[each.key].json
}

# ---------------------------------------------------------------------------
# Collector: asynchronous invocation settings
# ---------------------------------------------------------------------------

# EventBridge Scheduler invokes the collector asynchronously (InvocationType
# Event): the scheduler's retry policy only covers failures to hand the event to
# Lambda (throttling, permissions). Errors returned by the function are retried
# by Lambda according to this config; events that still fail, or get older than
# maximum_event_age_in_seconds, go to the collector DLQ.
resource "aws_lambda_function_event_invoke_config" "collector" {
  function_name                = aws_lambda_function.fn["collector"].function_name
  maximum_retry_attempts       = var.collector_async_max_retries
  maximum_event_age_in_seconds = var.collector_async_max_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.dlq["collector"].arn
    }
  }

  # Lambda checks that the role may send to the destination.
  depends_on = [aws_iam_role_policy.fn]
}

# ---------------------------------------------------------------------------
# Event source mappings: the consumer reads the Kinesis stream of records; the
# alerter reads the prices table's change stream, so it sees a record only when
# the consumer stored it as a change (a new change item: INSERT, sk T#…).
# ---------------------------------------------------------------------------

locals {
  # The partitions a rule can match (`<source>#<kind>#`), narrowed to
  # alerter_filter_kinds when set: other changes are not delivered to the alerter.
  alert_partitions = distinct([
    for r in var.alert_rules : "${r.source}#${r.kind}#"
    if length(var.alerter_filter_kinds) == 0 || contains(var.alerter_filter_kinds, r.kind)
  ])
  change_keys = merge(
    { sk = { S = [{ prefix = "T#" }] } },
    length(local.alert_partitions) > 0 ? { pk = { S = [for p in local.alert_partitions : { prefix = p }] } } : {}
  )
  # Per reader: its stream and filter. The alerter takes new change items only (not
  # their rewrites, deletes or entity items) of the partitions some rule can match.
  stream_sources = {
    consumer = { arn = aws_kinesis_stream.prices.arn, filter = null }
    alerter = {
      arn    = aws_dynamodb_table.prices.stream_arn
      filter = jsonencode({ eventName = ["INSERT"], dynamodb = { Keys = local.change_keys } })
    }
  }
}

resource "aws_lambda_event_source_mapping" "stream" {
  for_each = local.stream_readers

  event_source_arn  = local.stream_sources[each.key].arn
  function_name     = aws_lambda_function.fn[each.key].arn
  starting_position = "TRIM_HORIZON"

  batch_size                         = var.stream_batch_size
  maximum_batching_window_in_seconds = var.stream_batching_window_seconds
  parallelization_factor             = var.stream_parallelization_factor
  maximum_retry_attempts             = var.stream_max_retry_attempts
  maximum_record_age_in_seconds      = var.stream_max_record_age_seconds
  bisect_batch_on_function_error     = true
  function_response_types            = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dlq[each.key].arn
    }
  }

  dynamic "filter_criteria" {
    for_each = local.stream_sources[each.key].filter == null ? [] : [local.stream_sources[each.key].filter]
    content {
      filter {
        pattern = filter_criteria.value
      }
    }
  }

  # Lambda checks the role's stream and SQS permissions when the mapping is created.
  depends_on = [aws_iam_role_policy.fn]
}
