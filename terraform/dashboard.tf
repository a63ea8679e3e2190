# One CloudWatch dashboard for the whole pipeline, so an operator sees in one place what
# the alarms (monitoring.tf) watch and what led up to them: the state of every alarm at
# the top; the stream readers' iterator age, records stored, alerts sent, DLQ depths and
# function errors; then one row per source that has jobs, with that source's alarms
# beside its graphs.
#
# The pricewire namespace holds only the EMF metrics the functions emit (the metrics in
# functions/*/src/lib.rs, not their details): collector {function, source}, consumer and
# alerter {function}. A series named here that no function emits would just stay empty,
# so the e2e test checks every one against the functions' log lines (output
# dashboard_body). Per job figures are in the log lines only (`filter job = "..."`).
locals {
  dashboard_period = 300
  # Ordered, so the rows do not move between plans.
  dashboard_sources = sort(tolist(local.job_sources))

  # Every alarm of the stack.
  dashboard_alarm_arns = concat(
    [for a in aws_cloudwatch_metric_alarm.dlq_not_empty : a.arn],
    [aws_cloudwatch_metric_alarm.collector_errors.arn],
    [for a in aws_cloudwatch_metric_alarm.iterator_age : a.arn],
    [for a in aws_cloudwatch_metric_alarm.source : a.arn],
  )
  # An alarm status widget lists at most 100 alarms.
  dashboard_alarm_chunks = chunklist(local.dashboard_alarm_arns, 100)
  # Roughly four alarms a line at full width, title included.
  dashboard_alarm_height = max(3, min(12, 2 + ceil(min(100, length(local.dashboard_alarm_arns)) / 4)))

  # Per source, the graphs of the source alarms' metrics (local.source_alarms) with each
  # alarm's threshold as a line, so the graph and the alarm cannot disagree.
  dashboard_source_alarm_graphs = {
    breaker  = { title = "breaker state (0 closed, 1 half-open, 2 open) and hold", alarms = ["breaker-open", "held"] }
    progress = { title = "minutes without a page / without a complete walk", alarms = ["stalled", "incomplete"] }
  }

  dashboard_collector = { for s in local.dashboard_sources : s => ["function", "collector", "source", s] }

  dashboard_header = [{
    type = "text", x = 0, y = 0, width = 24, height = 2
    properties = {
      markdown = join("\n", [
        "## ${var.name}: collector → Kinesis → consumer → DynamoDB → alerter → SNS",
        "Alarms first, then the pipeline, then one row per source (namespace `pricewire`, 5-minute periods). Per job: Logs Insights on `/aws/lambda/${var.name}-collector`, e.g. `fields @timestamp, job, Requests, Throttled, RecordsOut | filter source = \"<source>\"`.",
      ])
    }
  }]

  dashboard_alarm_widgets = [for i, arns in local.dashboard_alarm_chunks : {
    type = "alarm", x = 0, y = 2 + i * local.dashboard_alarm_height, width = 24, height = local.dashboard_alarm_height
    properties = {
      title  = length(local.dashboard_alarm_chunks) > 1 ? "Alarms (${i + 1} of ${length(local.dashboard_alarm_chunks)})" : "Alarms"
      alarms = arns
    }
  }]

  dashboard_pipeline_y = 2 + length(local.dashboard_alarm_chunks) * local.dashboard_alarm_height

  dashboard_pipeline = [
    {
      type = "metric", x = 0, y = local.dashboard_pipeline_y, width = 8, height = 6
      properties = {
        title  = "Stream iterator age per reader (ms, maximum)"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Maximum"
        metrics = [for r in sort(tolist(local.stream_readers)) :
          ["AWS/Lambda", "IteratorAge", "FunctionName", aws_lambda_function.fn[r].function_name, { label = r }]
        ]
        annotations = { horizontal = [{ label = "iterator-age alarm", value = var.iterator_age_alarm_threshold_ms }] }
        yAxis       = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 8, y = local.dashboard_pipeline_y, width = 8, height = 6
      properties = {
        title  = "Consumer: records in, changes stored, rejected"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Sum"
        metrics = [for m in ["RecordsIn", "Changes", "Implausible", "Poison", "FailedRecords"] :
          ["pricewire", m, "function", "consumer", { label = m }]
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 16, y = local.dashboard_pipeline_y, width = 8, height = 6
      properties = {
        title  = "Alerter: changes in, alerts sent"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Sum"
        metrics = [for m in ["ChangesIn", "AlertsPublished", "SmsOverCap", "RuleErrors", "FailedRecords"] :
          ["pricewire", m, "function", "alerter", { label = m }]
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 0, y = local.dashboard_pipeline_y + 6, width = 8, height = 6
      properties = {
        title  = "Dead-letter queue depths (messages visible, maximum)"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Maximum"
        metrics = [for k, q in aws_sqs_queue.dlq :
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.name, { label = k }]
        ]
        annotations = { horizontal = [{ label = "not-empty alarms", value = 0 }] }
        yAxis       = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 8, y = local.dashboard_pipeline_y + 6, width = 8, height = 6
      properties = {
        title  = "Function errors and throttles"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Sum"
        metrics = concat(
          [for k in sort(tolist(local.function_keys)) :
          ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.fn[k].function_name, { label = "${k} errors" }]],
          [for k in sort(tolist(local.function_keys)) :
          ["AWS/Lambda", "Throttles", "FunctionName", aws_lambda_function.fn[k].function_name, { label = "${k} throttles" }]],
        )
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 16, y = local.dashboard_pipeline_y + 6, width = 8, height = 6
      properties = {
        title  = "Alerts topic: notifications delivered and failed"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Sum"
        metrics = [
          ["AWS/SNS", "NumberOfMessagesPublished", "TopicName", aws_sns_topic.alerts.name, { label = "published" }],
          ["AWS/SNS", "NumberOfNotificationsDelivered", "TopicName", aws_sns_topic.alerts.name, { label = "delivered" }],
          ["AWS/SNS", "NumberOfNotificationsFailed", "TopicName", aws_sns_topic.alerts.name, { label = "failed" }],
        ]
        yAxis = { left = { min = 0 } }
      }
    },
  ]

  dashboard_sources_y = local.dashboard_pipeline_y + 12

  # Per source, one row: runs and requests (429s), records out and quarantined, the
  # graphs of its alarms' metrics, and its alarms.
  dashboard_source_rows = flatten([for i, s in local.dashboard_sources : [
    {
      type = "metric", x = 0, y = local.dashboard_sources_y + 6 * i, width = 6, height = 6
      properties = {
        title  = "${s}: runs, requests, 429s"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Sum"
        metrics = [
          concat(["pricewire", "Runs"], local.dashboard_collector[s], [{ label = "runs" }]),
          concat(["pricewire", "Failures"], local.dashboard_collector[s], [{ label = "failed runs" }]),
          concat(["pricewire", "Requests"], local.dashboard_collector[s], [{ label = "requests" }]),
          concat(["pricewire", "Throttled"], local.dashboard_collector[s], [{ label = "429s" }]),
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    {
      type = "metric", x = 6, y = local.dashboard_sources_y + 6 * i, width = 6, height = 6
      properties = {
        title  = "${s}: records out, quarantined"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Sum"
        metrics = [
          concat(["pricewire", "RecordsOut"], local.dashboard_collector[s], [{ label = "records out" }]),
          concat(["pricewire", "Quarantined"], local.dashboard_collector[s], [{ label = "quarantined" }]),
        ]
        yAxis = { left = { min = 0 } }
      }
    },
    [for j, g in values(local.dashboard_source_alarm_graphs) : {
      type = "metric", x = 12 + 4 * j, y = local.dashboard_sources_y + 6 * i, width = 4, height = 6
      properties = {
        title  = "${s}: ${g.title}"
        region = var.aws_region, view = "timeSeries", stacked = false
        period = local.dashboard_period, stat = "Maximum"
        metrics = [for a in g.alarms :
          concat(["pricewire", local.source_alarms[a].metric], local.dashboard_collector[s], [{ label = local.source_alarms[a].metric }])
        ]
        annotations = { horizontal = [for a in g.alarms : { label = "${a} alarm", value = local.source_alarms[a].threshold }] }
        yAxis       = { left = { min = 0 } }
      }
    }],
    {
      type = "alarm", x = 20, y = local.dashboard_sources_y + 6 * i, width = 4, height = 6
      properties = {
        title  = "${s}: alarms"
        alarms = [for a in sort(keys(local.source_alarms)) : aws_cloudwatch_metric_alarm.source["${a}-${s}"].arn]
      }
    },
  ]])

  dashboard_body = jsonencode({
    widgets = concat(
      local.dashboard_header,
      local.dashboard_alarm_widgets,
      local.dashboard_pipeline,
      local.dashboard_source_rows,
    )
  })
}

resource "aws_cloudwatch_dashboard" "overview" {
  count = var.dashboard ? 1 : 0

  dashboard_name = var.name # a-z, 0-9 and '-' (variables.tf): a valid dashboard name
  dashboard_body = local.dashboard_body
}
