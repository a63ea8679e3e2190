output "stream_name" {
  description = "Kinesis stream the collector writes to."
  value       = aws_kinesis_stream.prices.name
}

output "stream_arn" {
  description = "ARN of the Kinesis stream."
  value       = aws_kinesis_stream.prices.arn
}

output "prices_table_name" {
  description = "DynamoDB price-history table."
  value       = aws_dynamodb_table.prices.name
}

output "state_table_name" {
  description = "DynamoDB alert de-duplication table."
  value       = aws_dynamodb_table.state.name
}

output "archive_bucket_name" {
  description = "S3 bucket holding raw/ and quarantine/."
  value       = aws_s3_bucket.archive.id
}

output "alerts_topic_arn" {
  description = "SNS topic the alerter publishes to."
  value       = aws_sns_topic.alerts.arn
}

output "token_parameter_names" {
  description = "SSM SecureString holding each source's token, by source name."
  value       = { for k, p in aws_ssm_parameter.source_token : k => p.name }
}

output "function_names" {
  description = "Lambda function names by role (collector, consumer, alerter)."
  value       = { for k, f in aws_lambda_function.fn : k => f.function_name }
}

output "dlq_urls" {
  description = "Dead-letter queue URLs (collector async failures, consumer, alerter, scheduler)."
  value       = { for k, q in aws_sqs_queue.dlq : k => q.url }
}

output "schedule_group_name" {
  description = "EventBridge Scheduler group holding the job schedules."
  value       = aws_scheduler_schedule_group.jobs.name
}

output "schedule_names" {
  description = "Schedule names (= job keys)."
  value       = sort([for s in aws_scheduler_schedule.job : s.name])
}

output "alert_inbox_url" {
  description = "URL of the SQS queue subscribed to the alerts topic (SNS envelopes, raw delivery off); null unless alert_inbox_queue is true."
  value       = one(aws_sqs_queue.alert_inbox[*].url)
}

output "subscriber_tap_urls" {
  description = "Per subscriber endpoint (\"<subscriber>/<sms|email>\"), the URL of its tap queue (subscriber_taps); empty unless subscriber_taps is true."
  value       = { for k, q in aws_sqs_queue.subscriber_tap : k => q.url }
}

output "subscriber_filter_policies" {
  description = "Per subscriber endpoint (\"<subscriber>/<sms|email>\"), the SNS filter policy of its subscription."
  value       = local.subscriber_filter_policies
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the stack (alarms, pipeline, a row per source); null unless dashboard is true."
  value       = one(aws_cloudwatch_dashboard.overview[*].dashboard_name)
}

output "dashboard_body" {
  description = "The dashboard's JSON body as it was created, read by the tests to check it names only metrics the functions emit; null unless dashboard is true."
  value       = one(aws_cloudwatch_dashboard.overview[*].dashboard_body)
}
