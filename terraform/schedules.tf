resource "aws_scheduler_schedule_group" "jobs" {
  name = local.schedule_group_name
}

# One schedule per job; the schedule name is the job key (unique within the group).
resource "aws_scheduler_schedule" "job" {
  #checkov:skip=CKV_AWS_297:The CMK is used when kms_key_arn is set; otherwise Scheduler's AWS owned key encrypts the job input (no secrets in it).
  for_each = var.jobs

  name        = each.key
  group_name  = aws_scheduler_schedule_group.jobs.name
  description = "${var.name}: collect ${each.value.source} job ${each.key}"
  state       = each.value.enabled ? "ENABLED" : "DISABLED"

  # Encrypts the schedule's input; the scheduler role has kms:Decrypt on it.
  kms_key_arn = var.kms_key_arn

  schedule_expression          = each.value.schedule
  schedule_expression_timezone = var.schedule_timezone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_lambda_function.fn["collector"].arn
    role_arn = aws_iam_role.scheduler.arn

    input = jsonencode({
      job    = each.key
      source = each.value.source
      params = each.value.params
    })

    retry_policy {
      maximum_retry_attempts       = var.schedule_max_retry_attempts
      maximum_event_age_in_seconds = var.schedule_max_event_age_seconds
    }

    dead_letter_config {
      arn = aws_sqs_queue.dlq["scheduler"].arn
    }
  }

  # A typo in a job's parameters fails here, not every tick into the DLQ.
  lifecycle {
    precondition {
      condition     = length(local.job_param_problems[each.key]) == 0
      error_message = "jobs[\"${each.key}\"]: ${join("; ", local.job_param_problems[each.key])}."
    }
  }

  # The role must be able to invoke the collector before the first run.
  depends_on = [aws_iam_role_policy.scheduler]
}
