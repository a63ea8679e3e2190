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

# Per source, from the collector's EMF metrics (namespace pricewire, dimensions function
# and source; the job is a property of the log line, so metric series and these alarms
# grow with the sources, not the jobs). Each run reports its own job's figures and the
# alarm takes the maximum, so one bad job of a source is enough; which one is in the
# logs: `fields job, StalledMinutes | filter source = "<source>" and StalledMinutes > 0`.
# None of these is a function error, so none would show in the Errors alarm.
locals {
  source_alarms = {
    # The circuit breaker for an upstream of the source is open (BreakerState 2).
    breaker-open = {
      metric = "BreakerState", period = 300, periods = 3, threshold = 2
      says   = "the circuit breaker for an upstream of the source is open: requests are not being made"
    }
    # The upstream told the source to stay away: quota spent (The Odds API's
    # OUT_OF_USAGE_CREDITS, x-requests-remaining: 0) or the host banned us.
    held = {
      metric = "Held", period = 300, periods = 1, threshold = 1
      says   = "the source is held (quota spent or banned): no requests until the hold ends"
    }
    # Runs that make no progress and end without an error: a request timeout the deadline
    # leaves no room for, an upstream that never answers in time, a Retry-After longer
    # than the invocation. A job's runs have collected no page for an hour (the run
    # record keeps when its streak began, so the job's schedule does not matter).
    stalled = {
      metric = "StalledMinutes", period = 300, periods = 1, threshold = 60
      says   = "a job's runs have collected no page for an hour (see the log's job and stopped reason)"
    }
    # A walk that never finishes: a job's runs have ended incomplete for six hours (a walk
    # cut by the deadline normally completes within a few runs, resuming from its cursor).
    incomplete = {
      metric = "IncompleteMinutes", period = 300, periods = 1, threshold = 360
      says   = "a job has not completed its walk in six hours: it never reaches its last page"
    }
  }
  job_sources = toset([for job in values(var.jobs) : job.source])
}

resource "aws_cloudwatch_metric_alarm" "source" {
  for_each = {
    for pair in setproduct(local.job_sources, keys(local.source_alarms)) : "${pair[1]}-${pair[0]}" => {
      source = pair[0]
      alarm  = local.source_alarms[pair[1]]
    }
  }
  # <name>-<alarm>-<source>, grouped by what is wrong.
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = "Source ${each.value.source}: ${each.value.alarm.says}."
  namespace           = "pricewire"
  metric_name         = each.value.alarm.metric
  dimensions          = { function = "collector", source = each.value.source }
  statistic           = "Maximum"
  period              = each.value.alarm.period
  evaluation_periods  = each.value.alarm.periods
  datapoints_to_alarm = each.value.alarm.periods
  threshold           = each.value.alarm.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}
