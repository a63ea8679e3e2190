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

# Declared subscribers: one subscription per endpoint, filtered to what the subscriber
# asked for. The alerter names the subscriber in sms_to / email_to only outside the rule's
# quiet hours and within the SMS cap; the other keys repeat the subscriber's wishes.
locals {
  subscribers_env = [for n, s in var.subscribers : merge(
    { name = n, sms = s.sms != null, email = s.email != null },
    length(s.rules) > 0 ? { rules = s.rules } : {},
    length(s.sources) > 0 ? { sources = s.sources } : {},
    length(s.subjects) > 0 ? { subjects = s.subjects } : {},
    s.time_zone != "UTC" ? { time_zone = s.time_zone } : {},
    { sms_daily_cap = s.sms_daily_cap },
  )]

  subscriber_endpoints = merge(
    { for n, s in var.subscribers : "${n}/sms" => { name = n, protocol = "sms", endpoint = s.sms, to = "sms_to" } if s.sms != null },
    { for n, s in var.subscribers : "${n}/email" => { name = n, protocol = "email", endpoint = s.email, to = "email_to" } if s.email != null },
  )

  subscriber_filter_policies = { for k, e in local.subscriber_endpoints : k => jsonencode(merge(
    { (e.to) = [e.name] },
    length(var.subscribers[e.name].rules) > 0 ? { rule = var.subscribers[e.name].rules } : {},
    length(var.subscribers[e.name].sources) > 0 ? { source = var.subscribers[e.name].sources } : {},
    length(var.subscribers[e.name].subjects) > 0 ? { subject = var.subscribers[e.name].subjects } : {},
  )) }
}

resource "aws_sns_topic_subscription" "subscriber" {
  for_each = local.subscriber_endpoints

  topic_arn     = aws_sns_topic.alerts.arn
  protocol      = each.value.protocol
  endpoint      = each.value.endpoint
  filter_policy = local.subscriber_filter_policies[each.key]
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

resource "aws_sns_topic_subscription" "alert_inbox" {
  count = var.alert_inbox_queue ? 1 : 0

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.alert_inbox[0].arn

  # Off: the queue receives the SNS envelope (Message, Timestamp, MessageAttributes).
  raw_message_delivery = false

  # SNS must be allowed to send before the first alert is published.
  depends_on = [aws_sqs_queue_policy.alert_queue]
}

# ---------------------------------------------------------------------------
# Optional subscriber taps (tests, local twin): per subscriber endpoint, an SQS
# queue subscribed with the same filter policy, so what SNS delivers to each
# phone and mailbox can be read back where SMS and e-mail cannot.
# ---------------------------------------------------------------------------

resource "aws_sqs_queue" "subscriber_tap" {
  for_each = var.subscriber_taps ? local.subscriber_endpoints : {}

  name                      = "${var.name}-tap-${each.value.name}-${each.value.protocol}"
  message_retention_seconds = 345600 # 4 days

  sqs_managed_sse_enabled           = local.use_cmk ? null : true
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = local.use_cmk ? 300 : null
}

resource "aws_sns_topic_subscription" "subscriber_tap" {
  for_each = aws_sqs_queue.subscriber_tap

  topic_arn            = aws_sns_topic.alerts.arn
  protocol             = "sqs"
  endpoint             = each.value.arn
  raw_message_delivery = false
  filter_policy        = local.subscriber_filter_policies[each.key]

  depends_on = [aws_sqs_queue_policy.alert_queue]
}

# ---------------------------------------------------------------------------
# Who may send to the inbox and the taps: the alerts topic, over TLS only.
# ---------------------------------------------------------------------------

locals {
  alert_queues = merge(
    { for i, q in aws_sqs_queue.alert_inbox : "inbox" => q },
    { for k, q in aws_sqs_queue.subscriber_tap : "tap/${k}" => q },
  )
}

data "aws_iam_policy_document" "alert_queue" {
  for_each = local.alert_queues

  statement {
    sid       = "AllowAlertsTopic"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [each.value.arn]

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

resource "aws_sqs_queue_policy" "alert_queue" {
  for_each = local.alert_queues

  queue_url = each.value.id
  policy    = data.aws_iam_policy_document.alert_queue[each.key].json
}

moved {
  from = aws_sqs_queue_policy.alert_inbox[0]
  to   = aws_sqs_queue_policy.alert_queue["inbox"]
}
