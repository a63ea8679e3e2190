# Anything in a dead-letter queue needs a look.
resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  for_each = aws_sqs_queue.dlq

  alarm_name          = "${each.value.name}-not-empty"
  alarm_description   = "Messages are waiting in ${each.value.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "collector_errors" {
  alarm_name          = "${var.name}-collector-errors"
  alarm_description   = "The collector function returned errors."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.fn["collector"].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

# An upstream the collector's circuit breaker has given up on (BreakerState 2 = open),
# and runs that end before their walk is complete (deadline, breaker, Retry-After), from
# the collector's EMF metrics.
resource "aws_cloudwatch_metric_alarm" "upstream_breaker_open" {
  for_each            = var.jobs
  alarm_name          = "${var.name}-${each.key}-breaker-open"
  alarm_description   = "The circuit breaker for job ${each.key}'s upstream is open: requests are not being made."
  namespace           = "pricewire"
  metric_name         = "BreakerState"
  dimensions          = { source = each.value.source, job = each.key }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = 2
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

# Stream readers falling behind (or stuck retrying a batch).
resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each = local.stream_readers

  alarm_name          = "${var.name}-${each.key}-iterator-age"
  alarm_description   = "The ${each.key} is more than ${var.iterator_age_alarm_threshold_ms} ms behind the stream."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.fn[each.key].function_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.iterator_age_alarm_threshold_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}

# A source the upstream told to stay away: its quota is spent (The Odds API's
# OUT_OF_USAGE_CREDITS, or x-requests-remaining: 0) or its host banned us. Runs end with
# no request until the hold ends; this is not an error, so it is alarmed here.
resource "aws_cloudwatch_metric_alarm" "source_held" {
  for_each            = var.jobs
  alarm_name          = "${var.name}-${each.key}-held"
  alarm_description   = "Job ${each.key}'s source ${each.value.source} is held (quota spent or banned): no requests until the hold ends."
  namespace           = "pricewire"
  metric_name         = "Held"
  dimensions          = { source = each.value.source, job = each.key }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}
