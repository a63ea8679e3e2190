resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = local.use_cmk ? var.kms_key_arn : "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "sms" {
  for_each = toset(var.sms_subscribers)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "sms"
  endpoint  = each.value
}

# E-mail subscriptions stay "pending confirmation" until the recipient clicks the
# link; Terraform cannot delete a pending subscription (AWS drops it after 3 days).
resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.email_subscribers)

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

# Account- and region-wide SMS settings: manage them from one stack only.
resource "aws_sns_sms_preferences" "this" {
  count = var.manage_sms_preferences ? 1 : 0

  monthly_spend_limit = var.sms_monthly_spend_limit
  default_sms_type    = var.sms_type
  default_sender_id   = var.sms_sender_id
}

# ---------------------------------------------------------------------------
# Optional alert inbox: an SQS queue subscribed to the topic (tests, local twin)
# ---------------------------------------------------------------------------

resource "aws_sqs_queue" "alert_inbox" {
  count = var.alert_inbox_queue ? 1 : 0

  name                      = "${var.name}-inbox"
  message_retention_seconds = 345600 # 4 days

  # SQS-managed SSE works with SNS delivery; with a CMK its key policy must
  # allow sns.amazonaws.com (see the variable's description).
  sqs_managed_sse_enabled           = local.use_cmk ? null : true
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.use_cmk ? 300 : null
}

data "aws_iam_policy_document" "alert_inbox" {
  count = var.alert_inbox_queue ? 1 : 0

  statement {
    sid       = "AllowAlertsTopic"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.alert_inbox[0].arn]

    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.alerts.arn]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.alert_inbox[0].arn]

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

resource "aws_sqs_queue_policy" "alert_inbox" {
  count = var.alert_inbox_queue ? 1 : 0

  queue_url = aws_sqs_queue.alert_inbox[0].id
  policy    = data.aws_iam_policy_document.alert_inbox[0].json
}

resource "aws_sns_topic_subscription" "alert_inbox" {
  count = var.alert_inbox_queue ? 1 : 0

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.alert_inbox[0].arn

  # Off: the queue receives the SNS envelope (Message, Timestamp, MessageAttributes).
  raw_message_delivery = false

  # SNS must be allowed to send before the first alert is published.
  depends_on = [aws_sqs_queue_policy.alert_inbox]
}
