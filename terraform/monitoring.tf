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

# Per job, from the collector's EMF metrics (namespace pricewire, dimensions source and
# job). None of these is a function error, so none would show in the Errors alarm.
locals {
  job_alarms = {
    # The circuit breaker for the job's upstream is open (BreakerState 2): no requests.
    breaker-open = {
      metric = "BreakerState", statistic = "Maximum", period = 300, periods = 3, threshold = 2
      says   = "the circuit breaker for its upstream is open: requests are not being made"
    }
    # The upstream told the source to stay away: quota spent (The Odds API's
    # OUT_OF_USAGE_CREDITS, x-requests-remaining: 0) or the host banned us.
    held = {
      metric = "Held", statistic = "Maximum", period = 300, periods = 1, threshold = 1
      says   = "its source is held (quota spent or banned): no requests until the hold ends"
    }
    # Runs that make no progress and end without an error: a request timeout the deadline
    # leaves no room for, an upstream that never answers in time, a Retry-After longer
    # than the invocation (Stalled: incomplete, no page collected, not held). Every run
    # of the job in an hour stalled (for a job scheduled hourly or less often: its run).
    stalled = {
      metric = "Stalled", statistic = "Minimum", period = 3600, periods = 1, threshold = 1
      says   = "every run in the last hour ended without collecting a page (see the log's stopped reason)"
    }
    # A walk that never finishes: every run in six hours ended incomplete (a walk cut by
    # the deadline normally completes within a few runs, resuming from its cursor).
    incomplete = {
      metric = "Incomplete", statistic = "Minimum", period = 21600, periods = 1, threshold = 1
      says   = "no run completed its walk in six hours: it never reaches its last page"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "job" {
  for_each = {
    for pair in setproduct(keys(var.jobs), keys(local.job_alarms)) : "${pair[1]}-${pair[0]}" => {
      job   = pair[0]
      alarm = local.job_alarms[pair[1]]
    }
  }
  # <name>-<alarm>-<job>: grouped by what is wrong; not the <name>-<job>-<alarm> of the
  # separate resources these replaced, so an upgrade's create and delete cannot collide.
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "Job ${each.value.job} (source ${var.jobs[each.value.job].source}): ${each.value.alarm.says}."
  namespace           = "pricewire"
  metric_name         = each.value.alarm.metric
  dimensions          = { source = var.jobs[each.value.job].source, job = each.value.job }
  statistic           = each.value.alarm.statistic
  period              = each.value.alarm.period
  evaluation_periods  = each.value.alarm.periods
  datapoints_to_alarm = each.value.alarm.periods
  threshold           = each.value.alarm.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}
