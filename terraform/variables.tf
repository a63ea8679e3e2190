# ---------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------

variable "name" {
  description = "Name prefix for every resource (stream, tables, functions, roles, queues, bucket). Lower-case letters, digits and hyphens, 3-24 characters, so derived names stay within S3 (63), IAM and Lambda (64) limits."
  type        = string
  default     = "pricewire"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 3-24 characters of a-z, 0-9 and '-', start with a letter, end with a letter or digit, and contain no '--'."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$", var.aws_region))
    error_message = "aws_region must look like an AWS region code, e.g. us-east-1 or eu-central-1."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition = alltrue([
      for k, v in var.tags : length(k) >= 1 && length(k) <= 128 && length(v) <= 256 && !startswith(lower(k), "aws:")
    ])
    error_message = "Tag keys must be 1-128 characters and not start with 'aws:'; values at most 256 characters."
  }
}

variable "kms_key_arn" {
  description = <<-EOT
    ARN of a customer managed KMS key used for every encrypted resource (Kinesis, SNS,
    DynamoDB, S3, SQS, SSM parameter, Lambda environment, CloudWatch log groups).
    null (default) uses AWS managed keys / service encryption: alias/aws/kinesis,
    alias/aws/sns, DynamoDB's AWS managed key, S3 SSE-S3 (AES256), SQS-managed SSE,
    alias/aws/ssm. When set, the matching kms: actions are added to the IAM roles;
    the key policy must also allow the logs.<region>.amazonaws.com service principal
    (log groups) and sns.amazonaws.com / cloudwatch.amazonaws.com if they publish.
  EOT
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null ? true : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), not an alias: IAM policies need the key ARN."
  }
}

# ---------------------------------------------------------------------------
# Lambda functions
# ---------------------------------------------------------------------------

variable "architecture" {
  description = "Instruction set of the Lambda functions; must match how bootstrap.zip was built."
  type        = string
  default     = "x86_64"
  nullable    = false

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\"."
  }
}

variable "lambda_zip_dir" {
  description = "Directory holding <fn>/bootstrap.zip for collector, consumer and alerter (cargo lambda build --release --output-format zip). Relative paths are relative to the working directory of terraform."
  type        = string
  default     = "../target/lambda"
  nullable    = false

  validation {
    condition     = length(trimspace(var.lambda_zip_dir)) > 0
    error_message = "lambda_zip_dir must not be empty."
  }
}

variable "functions" {
  description = "Memory (MB) and timeout (s) per function. Omitted fields keep their defaults: collector 256 MB/120 s, consumer 256 MB/60 s, alerter 256 MB/60 s."
  type = object({
    collector = optional(object({
      memory_mb       = optional(number, 256)
      timeout_seconds = optional(number, 120)
    }), {})
    consumer = optional(object({
      memory_mb       = optional(number, 256)
      timeout_seconds = optional(number, 60)
    }), {})
    alerter = optional(object({
      memory_mb       = optional(number, 256)
      timeout_seconds = optional(number, 60)
    }), {})
  })
  default  = {}
  nullable = false

  validation {
    condition = alltrue([
      for f in [var.functions.collector, var.functions.consumer, var.functions.alerter] :
      f.memory_mb >= 128 && f.memory_mb <= 10240 && floor(f.memory_mb) == f.memory_mb
    ])
    error_message = "functions.*.memory_mb must be a whole number between 128 and 10240."
  }

  validation {
    condition = alltrue([
      for f in [var.functions.collector, var.functions.consumer, var.functions.alerter] :
      f.timeout_seconds >= 1 && f.timeout_seconds <= 900 && floor(f.timeout_seconds) == f.timeout_seconds
    ])
    error_message = "functions.*.timeout_seconds must be a whole number between 1 and 900."
  }
}

variable "log_level" {
  description = "RUST_LOG value for every function, e.g. \"info\" or \"info,collector=debug\"."
  type        = string
  default     = "info"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_:=,.\\-\\[\\]{}\"/ ]{1,512}$", var.log_level))
    error_message = "log_level must be a RUST_LOG directive string of 1-512 characters (e.g. \"info\" or \"warn,collector=debug\")."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' CloudWatch log groups, in days (0 = never expire)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' allowed values: 0 (never), 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "http_timeout_ms" {
  description = "Per-request timeout of the collector's upstream HTTP calls, in milliseconds (PRICEWIRE_HTTP_TIMEOUT_MS)."
  type        = number
  default     = 10000
  nullable    = false

  validation {
    condition     = var.http_timeout_ms >= 100 && var.http_timeout_ms <= 900000 && floor(var.http_timeout_ms) == var.http_timeout_ms
    error_message = "http_timeout_ms must be a whole number between 100 and 900000."
  }
}

variable "http_max_attempts" {
  description = "Maximum attempts per upstream HTTP request, including the first (PRICEWIRE_HTTP_MAX_ATTEMPTS)."
  type        = number
  default     = 4
  nullable    = false

  validation {
    condition     = var.http_max_attempts >= 1 && var.http_max_attempts <= 10 && floor(var.http_max_attempts) == var.http_max_attempts
    error_message = "http_max_attempts must be a whole number between 1 and 10."
  }
}

variable "put_max_attempts" {
  description = "Maximum Kinesis PutRecords attempts for records that keep failing (PRICEWIRE_PUT_MAX_ATTEMPTS). Ten loses an entry once in ten million even with 20 % of entries throttled."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.put_max_attempts >= 1 && var.put_max_attempts <= 20 && floor(var.put_max_attempts) == var.put_max_attempts
    error_message = "put_max_attempts must be a whole number between 1 and 20."
  }
}

variable "write_max_attempts" {
  description = "Maximum DynamoDB write attempts (unprocessed items, throttling) in consumer and alerter (PRICEWIRE_WRITE_MAX_ATTEMPTS)."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.write_max_attempts >= 1 && var.write_max_attempts <= 20 && floor(var.write_max_attempts) == var.write_max_attempts
    error_message = "write_max_attempts must be a whole number between 1 and 20."
  }
}

# ---------------------------------------------------------------------------
# Kinesis stream and event source mappings
# ---------------------------------------------------------------------------

variable "stream_mode" {
  description = "Kinesis capacity mode: PROVISIONED (shard_count shards) or ON_DEMAND."
  type        = string
  default     = "PROVISIONED"
  nullable    = false

  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.stream_mode)
    error_message = "stream_mode must be \"PROVISIONED\" or \"ON_DEMAND\"."
  }
}

variable "shard_count" {
  description = "Number of shards; used only when stream_mode is PROVISIONED."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.shard_count >= 1 && var.shard_count <= 500 && floor(var.shard_count) == var.shard_count
    error_message = "shard_count must be a whole number between 1 and 500."
  }
}

variable "stream_retention_hours" {
  description = "Kinesis data retention in hours (24-8760)."
  type        = number
  default     = 24
  nullable    = false

  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 8760 && floor(var.stream_retention_hours) == var.stream_retention_hours
    error_message = "stream_retention_hours must be a whole number between 24 and 8760."
  }
}

variable "stream_batch_size" {
  description = "Maximum records per consumer/alerter invocation (1-10000)."
  type        = number
  default     = 100
  nullable    = false

  validation {
    condition     = var.stream_batch_size >= 1 && var.stream_batch_size <= 10000 && floor(var.stream_batch_size) == var.stream_batch_size
    error_message = "stream_batch_size must be a whole number between 1 and 10000."
  }
}

variable "stream_batching_window_seconds" {
  description = "Maximum time Lambda gathers records before invoking (0-300 s)."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.stream_batching_window_seconds >= 0 && var.stream_batching_window_seconds <= 300 && floor(var.stream_batching_window_seconds) == var.stream_batching_window_seconds
    error_message = "stream_batching_window_seconds must be a whole number between 0 and 300."
  }
}

variable "stream_max_retry_attempts" {
  description = "Retries of a failing batch before its records go to the DLQ (-1 = until the record expires, 0-10000)."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.stream_max_retry_attempts >= -1 && var.stream_max_retry_attempts <= 10000 && floor(var.stream_max_retry_attempts) == var.stream_max_retry_attempts
    error_message = "stream_max_retry_attempts must be a whole number between -1 and 10000."
  }
}

variable "stream_max_record_age_seconds" {
  description = "Records older than this are sent to the DLQ instead of the function (-1 = no limit, or 60-604800)."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = floor(var.stream_max_record_age_seconds) == var.stream_max_record_age_seconds && (var.stream_max_record_age_seconds == -1 || (var.stream_max_record_age_seconds >= 60 && var.stream_max_record_age_seconds <= 604800))
    error_message = "stream_max_record_age_seconds must be -1 or a whole number between 60 and 604800."
  }
}

variable "stream_parallelization_factor" {
  description = "Concurrent batches per shard for each event source mapping (1-10)."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.stream_parallelization_factor >= 1 && var.stream_parallelization_factor <= 10 && floor(var.stream_parallelization_factor) == var.stream_parallelization_factor
    error_message = "stream_parallelization_factor must be a whole number between 1 and 10."
  }
}

variable "alerter_filter_kinds" {
  description = "If non-empty, the alerter's event source mapping only delivers the changes of these kinds (of the sources alert_rules name; filter criteria on the change stream's keys); [] = the changes of every source and kind some rule names."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for k in var.alerter_filter_kinds : can(regex("^[a-z][a-z0-9_]{0,63}$", k))])
    error_message = "alerter_filter_kinds entries must match ^[a-z][a-z0-9_]{0,63}$."
  }

  validation {
    condition     = length(distinct(var.alerter_filter_kinds)) == length(var.alerter_filter_kinds) && length(var.alerter_filter_kinds) <= 50
    error_message = "alerter_filter_kinds must not contain duplicates and has at most 50 entries."
  }

  # A filter that leaves out a rule's kind means that rule never sees a record: no alerts,
  # and nothing says why.
  validation {
    condition     = length(var.alerter_filter_kinds) == 0 || length(setsubtract([for r in var.alert_rules : r.kind], var.alerter_filter_kinds)) == 0
    error_message = "alerter_filter_kinds leaves out the kind of some alert_rules (${join(", ", sort(setsubtract([for r in var.alert_rules : r.kind], var.alerter_filter_kinds)))}): those rules would never alert. Add the kinds, or use [] for no filter."
  }

  validation {
    condition     = length(setsubtract(var.alerter_filter_kinds, flatten([for m in values(local.source_modules) : m.kinds]))) == 0
    error_message = "alerter_filter_kinds names kinds no source makes (${join(", ", sort(setsubtract(var.alerter_filter_kinds, flatten([for m in values(local.source_modules) : m.kinds]))))})."
  }
}

# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------

variable "archive_bucket_name" {
  description = "Name of the S3 archive bucket. null (default) = \"<name>-archive-<account id>\"."
  type        = string
  default     = null

  validation {
    condition = var.archive_bucket_name == null ? true : (
      can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.archive_bucket_name)) &&
      !strcontains(var.archive_bucket_name, "..") &&
      !can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$", var.archive_bucket_name)) &&
      !startswith(var.archive_bucket_name, "xn--") &&
      !endswith(var.archive_bucket_name, "-s3alias")
    )
    error_message = "archive_bucket_name must be a valid S3 bucket name: 3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit, no '..', not an IP address."
  }
}

variable "history_ttl_days" {
  description = "Days a change item is kept in the prices table after it was stored (the newest one of an entity: after it was last seen) before DynamoDB TTL removes it (PRICEWIRE_HISTORY_TTL_DAYS). At least the widest statistics window."
  type        = number
  default     = 90
  nullable    = false

  validation {
    condition     = var.history_ttl_days >= 1 && var.history_ttl_days <= 3650 && floor(var.history_ttl_days) == var.history_ttl_days
    error_message = "history_ttl_days must be a whole number between 1 and 3650."
  }
}

variable "stat_windows_days" {
  description = "Windows, in days, over which every change item carries the entity's minimum, maximum and typical value before it (PRICEWIRE_STAT_WINDOWS_DAYS): the min7/typ30 figures history rules use."
  type        = list(number)
  default     = [7, 30]
  nullable    = false

  validation {
    condition = (
      length(var.stat_windows_days) <= 4 &&
      alltrue([for d in var.stat_windows_days : d >= 1 && d <= 365 && floor(d) == d]) &&
      length(distinct(var.stat_windows_days)) == length(var.stat_windows_days)
    )
    error_message = "stat_windows_days must be at most 4 distinct whole numbers of days from 1 to 365."
  }
}

variable "plausibility" {
  description = "Per record kind, overrides of the consumer's plausibility bounds (PRICEWIRE_PLAUSIBILITY): min and max as decimal strings (a value outside is quarantined with its reason), outlier_factor (a value this many times the entity's typical one, or less than its inverse, is stored flagged and kept out of statistics and alerts; 0 switches the test off). Kinds not named keep their defaults (README: Plausibility)."
  type = map(object({
    min            = optional(string)
    max            = optional(string)
    outlier_factor = optional(number)
  }))
  default  = {}
  nullable = false

  validation {
    condition = alltrue([
      for kind in keys(var.plausibility) :
      contains(["flight_price", "odds_quote", "candle", "funding_rate", "open_interest", "price"], kind)
    ])
    error_message = "plausibility keys must be record kinds: flight_price, odds_quote, candle, funding_rate, open_interest, price."
  }

  validation {
    condition = alltrue(flatten([
      for kind, b in var.plausibility : [
        for v in [b.min, b.max] : v == null || can(regex("^-?[0-9]+(\\.[0-9]+)?$", v))
      ]
    ]))
    error_message = "plausibility min and max must be decimal strings such as \"1\" or \"10000000\" or \"-0.5\"."
  }

  validation {
    condition     = alltrue([for kind, b in var.plausibility : b.outlier_factor == null || try(b.outlier_factor > 1 || b.outlier_factor == 0, false)])
    error_message = "plausibility outlier_factor must be above 1, or 0 for no outlier test."
  }
}

variable "raw_archive_ia_days" {
  description = "Days after which raw/ objects move to STANDARD_IA (S3 requires at least 30)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.raw_archive_ia_days >= 30 && floor(var.raw_archive_ia_days) == var.raw_archive_ia_days
    error_message = "raw_archive_ia_days must be a whole number of at least 30 (S3 minimum for STANDARD_IA transitions)."
  }
}

variable "raw_archive_expire_days" {
  description = "Days after which raw/ objects are deleted; must be greater than raw_archive_ia_days."
  type        = number
  default     = 365
  nullable    = false

  validation {
    condition     = floor(var.raw_archive_expire_days) == var.raw_archive_expire_days && var.raw_archive_expire_days > var.raw_archive_ia_days
    error_message = "raw_archive_expire_days must be a whole number greater than raw_archive_ia_days."
  }
}

variable "quarantine_expire_days" {
  description = "Days after which quarantine/ objects are deleted."
  type        = number
  default     = 90
  nullable    = false

  validation {
    condition     = var.quarantine_expire_days >= 1 && floor(var.quarantine_expire_days) == var.quarantine_expire_days
    error_message = "quarantine_expire_days must be a whole number of at least 1."
  }
}

variable "force_destroy_bucket" {
  description = "Allow terraform destroy to delete the archive bucket with its objects. Keep false in production."
  type        = bool
  default     = false
  nullable    = false
}

# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------

variable "jobs" {
  description = <<-EOT
    Collection jobs keyed by job name. Each becomes one EventBridge Scheduler schedule
    that invokes the collector with {"job": <key>, "source": <source>, "params": <params>}.
    schedule: rate(...), cron(...) or at(yyyy-mm-ddThh:mm:ss). enabled = false keeps the
    schedule but sets it DISABLED.
  EOT
  type = map(object({
    source   = string
    schedule = string
    params   = map(string)
    enabled  = optional(bool, true)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for k in keys(var.jobs) : can(regex("^[a-z0-9][a-z0-9-]{0,63}$", k))])
    error_message = "jobs keys must match ^[a-z0-9][a-z0-9-]{0,63}$."
  }

  validation {
    condition     = alltrue([for j in values(var.jobs) : contains(concat(keys(var.sources), keys(local.source_modules)), j.source)])
    error_message = "jobs[*].source must name an entry of var.sources or a module of local.source_modules (travelpayouts, odds)."
  }

  validation {
    condition = alltrue([
      for j in values(var.jobs) : (
        can(regex("^rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)$", j.schedule)) ||
        can(regex("^cron\\(\\S+ \\S+ \\S+ \\S+ \\S+ \\S+\\)$", j.schedule)) ||
        can(regex("^at\\([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\)$", j.schedule))
      )
    ])
    error_message = "jobs[*].schedule must be rate(1 minute|hour|day), rate(N minutes|hours|days) with N >= 2, cron(six fields) or at(yyyy-mm-ddThh:mm:ss)."
  }

  validation {
    condition = alltrue(flatten([
      for j in values(var.jobs) : [
        for pk, pv in j.params : can(regex("^[A-Za-z_][A-Za-z0-9_]{0,63}$", pk)) && length(pv) > 0 && length(pv) <= 1024
      ]
    ]))
    error_message = "jobs[*].params keys must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$ and values must be 1-1024 characters."
  }
}

variable "schedule_timezone" {
  description = "IANA time zone in which cron(...) and at(...) schedule expressions are evaluated."
  type        = string
  default     = "UTC"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$", var.schedule_timezone))
    error_message = "schedule_timezone must be an IANA time zone name such as UTC or Europe/Moscow."
  }
}

variable "schedule_max_retry_attempts" {
  description = "Scheduler retries when handing an event to the collector fails (throttling, permissions; 0-185). The scheduler invokes asynchronously: errors returned by the function are retried by Lambda (collector_async_max_retries)."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.schedule_max_retry_attempts >= 0 && var.schedule_max_retry_attempts <= 185 && floor(var.schedule_max_retry_attempts) == var.schedule_max_retry_attempts
    error_message = "schedule_max_retry_attempts must be a whole number between 0 and 185."
  }
}

variable "schedule_max_event_age_seconds" {
  description = "How long the scheduler keeps retrying an invocation before sending it to the scheduler DLQ (60-86400 s)."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.schedule_max_event_age_seconds >= 60 && var.schedule_max_event_age_seconds <= 86400 && floor(var.schedule_max_event_age_seconds) == var.schedule_max_event_age_seconds
    error_message = "schedule_max_event_age_seconds must be a whole number between 60 and 86400."
  }
}

variable "collector_async_max_retries" {
  description = "Times Lambda retries a collector invocation whose function returned an error (asynchronous invocation, 0-2). Events that still fail go to the <name>-collector-dlq queue."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.collector_async_max_retries >= 0 && var.collector_async_max_retries <= 2 && floor(var.collector_async_max_retries) == var.collector_async_max_retries
    error_message = "collector_async_max_retries must be 0, 1 or 2."
  }
}

variable "collector_async_max_event_age_seconds" {
  description = "Maximum age of an asynchronous collector event (60-21600 s); older events are not retried but sent to the <name>-collector-dlq queue."
  type        = number
  default     = 3600
  nullable    = false

  validation {
    condition     = var.collector_async_max_event_age_seconds >= 60 && var.collector_async_max_event_age_seconds <= 21600 && floor(var.collector_async_max_event_age_seconds) == var.collector_async_max_event_age_seconds
    error_message = "collector_async_max_event_age_seconds must be a whole number between 60 and 21600."
  }
}

# ---------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------

variable "alert_rules" {
  description = "Alert rules evaluated by the alerter on every stored change (passed as JSON in PRICEWIRE_ALERT_RULES). when is a CEL expression, e.g. \"price < 5000 && gate == \\\"Aeroflot\\\"\"; type and params name a rule type (README: Rule types), e.g. type = \"new_low\", params = { days = 30 }. A rule has when, type, or both (then both must hold)."
  type = list(object({
    name   = string
    source = string
    kind   = string
    when   = optional(string)
    type   = optional(string)
    params = optional(map(number), {})
    # Re-alerting (README: Re-alerting): null takes the kind's default.
    cooldown_minutes = optional(number)
    better           = optional(string)
    step_percent     = optional(number)
    quiet_hours      = optional(string)
  }))
  default  = []
  nullable = false

  validation {
    condition     = alltrue([for r in var.alert_rules : r.cooldown_minutes == null || try(r.cooldown_minutes >= 0 && r.cooldown_minutes <= 525600 && floor(r.cooldown_minutes) == r.cooldown_minutes, false)])
    error_message = "alert_rules[*].cooldown_minutes must be a whole number from 0 to 525600 (a year)."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : contains(["lower", "higher", "none"], coalesce(r.better, "none"))])
    error_message = "alert_rules[*].better must be one of lower, higher, none."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : r.step_percent == null || try(r.step_percent >= 0 && r.step_percent < 100, false)])
    error_message = "alert_rules[*].step_percent must be from 0 up to (not including) 100."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$", coalesce(r.quiet_hours, "22:00-07:00")))])
    error_message = "alert_rules[*].quiet_hours must be HH:MM-HH:MM in 24-hour time (e.g. 22:00-07:00), evaluated in each subscriber's time zone."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : can(regex("^[a-z0-9][a-z0-9-]{0,63}$", r.name))])
    error_message = "alert_rules[*].name must match ^[a-z0-9][a-z0-9-]{0,63}$."
  }

  validation {
    condition     = length(distinct([for r in var.alert_rules : r.name])) == length(var.alert_rules)
    error_message = "alert_rules names must be unique."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : contains(concat(keys(var.sources), keys(local.source_modules)), r.source)])
    error_message = "alert_rules[*].source must name an entry of var.sources or a module of local.source_modules (travelpayouts, odds)."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : can(regex("^[a-z][a-z0-9_]{0,63}$", r.kind))])
    error_message = "alert_rules[*].kind must match ^[a-z][a-z0-9_]{0,63}$ (e.g. flight_price)."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : contains(try(local.source_modules[try(coalesce(var.sources[r.source].module, r.source), r.source)].kinds, []), r.kind)])
    error_message = "alert_rules[*].kind must be a kind its source makes (travelpayouts: flight_price; odds: odds_quote; binance and bybit: candle, funding_rate, open_interest): ${join(", ", [for r in var.alert_rules : "${r.name} (${r.kind} from ${r.source})" if !contains(try(local.source_modules[try(coalesce(var.sources[r.source].module, r.source), r.source)].kinds, []), r.kind)])}."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : r.type != null || try(trimspace(r.when), "") != ""])
    error_message = "alert_rules[*] needs a when expression or a type."
  }

  validation {
    # HCL evaluates both sides of ||: an unset type stands in as a valid one.
    condition = alltrue([for r in var.alert_rules : contains([
      "price_at_or_under", "drop_from_previous", "drop_from_typical", "new_low",
      "odds_shortening", "line_move", "funding_beyond", "funding_flip", "open_interest_change",
    ], coalesce(r.type, "new_low"))])
    error_message = "alert_rules[*].type must be one of price_at_or_under, drop_from_previous, drop_from_typical, new_low, odds_shortening, line_move, funding_beyond, funding_flip, open_interest_change."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : try(r.params["bookmakers"] >= 1 && r.params["bookmakers"] <= 50 && floor(r.params["bookmakers"]) == r.params["bookmakers"], true)])
    error_message = "alert_rules[*].params.bookmakers must be a whole number from 1 to 50 (odds_shortening: how many bookmakers must move together)."
  }

  validation {
    condition     = alltrue([for r in var.alert_rules : try(contains(var.stat_windows_days, r.params["days"]), true)])
    error_message = "alert_rules[*].params.days must be one of stat_windows_days (the windows the consumer keeps statistics for)."
  }

  # Lambda caps the whole environment (keys + values) at 4 KB; the other alerter
  # variables need a few hundred bytes. functions.tf re-checks the total.
  validation {
    condition     = length(jsonencode(var.alert_rules)) < 3500
    error_message = "alert_rules, JSON-encoded, must stay under 3500 characters (Lambda's 4 KB environment limit)."
  }
}

variable "dedup_window_seconds" {
  description = "How long an alert's claim (rule, change) is kept, so a retried or replayed change never alerts twice within it (PRICEWIRE_DEDUP_WINDOW_SECONDS); re-alerting about an entity is the rules' cooldown_minutes."
  type        = number
  default     = 86400
  nullable    = false

  validation {
    condition     = var.dedup_window_seconds >= 60 && var.dedup_window_seconds <= 31536000 && floor(var.dedup_window_seconds) == var.dedup_window_seconds
    error_message = "dedup_window_seconds must be a whole number between 60 and 31536000."
  }
}

variable "alert_max_age_seconds" {
  description = "Records fetched longer ago than this raise no alert, so a replay of old data pages nobody (PRICEWIRE_ALERT_MAX_AGE_SECONDS). Null: the dedup window."
  type        = number
  default     = null

  validation {
    condition     = var.alert_max_age_seconds == null || (try(var.alert_max_age_seconds >= 60 && floor(var.alert_max_age_seconds) == var.alert_max_age_seconds, false))
    error_message = "alert_max_age_seconds must be a whole number of at least 60 seconds."
  }

  validation {
    condition     = var.alert_max_age_seconds == null || try(var.alert_max_age_seconds <= var.dedup_window_seconds, false)
    error_message = "alert_max_age_seconds must not exceed dedup_window_seconds, or an old record could alert twice."
  }
}

variable "subscribers" {
  description = <<-EOT
    Who gets which alerts, by name: an sms number (E.164) and/or an email address, and what
    they want — rules (names of alert_rules), sources, subjects (a route LED-KZN, a symbol
    BTCUSDT, a sport key, a generic record's key); empty lists mean all. time_zone (IANA)
    is where the rules' quiet hours and the SMS day are reckoned; sms_daily_cap is how many
    SMS the subscriber gets per local day (more are not sent, counted as SmsOverCap and
    logged). Each endpoint becomes an SNS subscription whose filter policy asks for the
    subscriber's name in sms_to / email_to and for what they want.
  EOT
  type = map(object({
    sms           = optional(string)
    email         = optional(string)
    rules         = optional(list(string), [])
    sources       = optional(list(string), [])
    subjects      = optional(list(string), [])
    time_zone     = optional(string, "UTC")
    sms_daily_cap = optional(number, 20)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for n, s in var.subscribers : can(regex("^[a-z0-9][a-z0-9-]{0,31}$", n))])
    error_message = "subscribers keys (names) must match ^[a-z0-9][a-z0-9-]{0,31}$."
  }

  validation {
    condition     = alltrue([for n, s in var.subscribers : s.sms != null || s.email != null])
    error_message = "subscribers: each needs an sms number or an email address: ${join(", ", [for n, s in var.subscribers : n if s.sms == null && s.email == null])}."
  }

  validation {
    condition     = alltrue([for n, s in var.subscribers : can(regex("^\\+[1-9][0-9]{6,14}$", coalesce(s.sms, "+10000000")))])
    error_message = "subscribers[*].sms must be an E.164 number: '+', country code, 7-15 digits in all, no spaces."
  }

  validation {
    condition     = alltrue([for n, s in var.subscribers : can(regex("^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$", coalesce(s.email, "a@b.cd")))])
    error_message = "subscribers[*].email must be a valid e-mail address (local@domain.tld)."
  }

  validation {
    condition     = alltrue(flatten([for n, s in var.subscribers : [for r in s.rules : contains([for a in var.alert_rules : a.name], r)]]))
    error_message = "subscribers[*].rules must name alert_rules: ${join(", ", flatten([for n, s in var.subscribers : [for r in s.rules : "${n}: ${r}" if !contains([for a in var.alert_rules : a.name], r)]]))}."
  }

  validation {
    condition     = alltrue(flatten([for n, s in var.subscribers : [for src in s.sources : contains(concat(keys(var.sources), keys(local.source_modules)), src)]]))
    error_message = "subscribers[*].sources must name an entry of var.sources or a source module."
  }

  validation {
    condition     = alltrue([for n, s in var.subscribers : can(regex("^(UTC|[A-Z][A-Za-z_-]+(/[A-Za-z0-9_+-]+){1,2})$", s.time_zone))])
    error_message = "subscribers[*].time_zone must be an IANA time zone such as Europe/Moscow or UTC (the alerter checks the name against the tz database at start)."
  }

  validation {
    condition     = alltrue([for n, s in var.subscribers : s.sms_daily_cap >= 1 && s.sms_daily_cap <= 1000 && floor(s.sms_daily_cap) == s.sms_daily_cap])
    error_message = "subscribers[*].sms_daily_cap must be a whole number from 1 to 1000."
  }

  # SNS: a filter policy holds at most 150 value combinations (the product of each key's
  # value count); the subscriber's own key contributes 1.
  validation {
    condition     = alltrue([for n, s in var.subscribers : max(1, length(s.rules)) * max(1, length(s.sources)) * max(1, length(s.subjects)) <= 150])
    error_message = "subscribers: rules × sources × subjects must be at most 150 per subscriber (SNS filter policy limit): ${join(", ", [for n, s in var.subscribers : n if max(1, length(s.rules)) * max(1, length(s.sources)) * max(1, length(s.subjects)) > 150])}."
  }
}

variable "sms_subscribers" {
  description = "Phone numbers (E.164, e.g. +15555550100) subscribed to every alert by SMS, without filters or caps; prefer subscribers."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for n in var.sms_subscribers : can(regex("^\\+[1-9][0-9]{6,14}$", n))])
    error_message = "sms_subscribers must be E.164 numbers: '+', country code, 7-15 digits in all, no spaces."
  }

  validation {
    condition     = length(distinct(var.sms_subscribers)) == length(var.sms_subscribers)
    error_message = "sms_subscribers must not contain duplicates."
  }
}

variable "email_subscribers" {
  description = "E-mail addresses subscribed to every alert (each must confirm the subscription), without filters; prefer subscribers."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for e in var.email_subscribers : can(regex("^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$", e)) && length(e) <= 254])
    error_message = "email_subscribers must be valid e-mail addresses (local@domain.tld, at most 254 characters)."
  }

  validation {
    condition     = length(distinct([for e in var.email_subscribers : lower(e)])) == length(var.email_subscribers)
    error_message = "email_subscribers must not contain duplicates."
  }
}

variable "subscriber_taps" {
  description = "For tests and the local twin: per subscriber endpoint, an SQS queue <name>-tap-<subscriber>-<sms|email> subscribed with the endpoint's filter policy, so what SNS delivers to each can be read back (output subscriber_tap_urls)."
  type        = bool
  default     = false
  nullable    = false
}

variable "alert_inbox_queue" {
  description = <<-EOT
    Subscribe an SQS queue, <name>-inbox, to the alerts topic (raw message delivery off:
    each message is the SNS envelope with Message, Timestamp and MessageAttributes),
    retention 4 days. Meant for tests and the local twin, which read alerts back from it;
    also usable as an audit trail. With kms_key_arn set, the key policy must allow
    sns.amazonaws.com kms:GenerateDataKey* and kms:Decrypt for delivery to work.
  EOT
  type        = bool
  default     = false
  nullable    = false
}

variable "manage_sms_preferences" {
  description = "Manage the account's SNS SMS preferences (spend limit, SMS type, sender ID). These are region-wide account settings: enable in only one stack per account and region."
  type        = bool
  default     = true
  nullable    = false
}

variable "sms_monthly_spend_limit" {
  description = "Monthly SMS spend limit in whole USD (account-wide; raising it above the account quota requires an AWS support case)."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.sms_monthly_spend_limit >= 0 && floor(var.sms_monthly_spend_limit) == var.sms_monthly_spend_limit
    error_message = "sms_monthly_spend_limit must be a whole number of USD, at least 0."
  }
}

variable "sms_type" {
  description = "Default SMS type: Transactional (higher delivery priority) or Promotional (cheaper)."
  type        = string
  default     = "Transactional"
  nullable    = false

  validation {
    condition     = contains(["Transactional", "Promotional"], var.sms_type)
    error_message = "sms_type must be \"Transactional\" or \"Promotional\"."
  }
}

variable "sms_sender_id" {
  description = "Default SMS sender ID (1-11 alphanumeric characters, at least one letter), or null for none. Not supported in every country."
  type        = string
  default     = null

  validation {
    condition     = var.sms_sender_id == null ? true : (can(regex("^[A-Za-z0-9]{1,11}$", var.sms_sender_id)) && can(regex("[A-Za-z]", var.sms_sender_id)))
    error_message = "sms_sender_id must be 1-11 letters and digits with at least one letter."
  }
}

variable "alarm_actions" {
  description = "ARNs notified when a CloudWatch alarm fires (usually SNS topics). The alerts topic uses KMS encryption; an alarm topic must allow cloudwatch.amazonaws.com to use its key."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for a in var.alarm_actions : can(regex("^arn:aws[a-z-]*:[a-z0-9-]+:", a))])
    error_message = "alarm_actions must be ARNs (arn:aws...:service:...)."
  }
}

variable "iterator_age_alarm_threshold_ms" {
  description = "IteratorAge (maximum, ms) above which the consumer and alerter alarms fire."
  type        = number
  default     = 600000
  nullable    = false

  validation {
    condition     = var.iterator_age_alarm_threshold_ms >= 1000 && floor(var.iterator_age_alarm_threshold_ms) == var.iterator_age_alarm_threshold_ms
    error_message = "iterator_age_alarm_threshold_ms must be a whole number of at least 1000."
  }
}

variable "dashboard" {
  description = "Create the CloudWatch dashboard <name> (dashboard.tf): alarms, stream iterator age, records stored, alerts sent, DLQ depths, and a row per source. A dashboard beyond the account's first three costs about 3 USD a month."
  type        = bool
  default     = true
  nullable    = false
}

# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------

variable "sources" {
  description = <<-EOT
    Upstream sources by name; jobs name one in their `source`. Each entry names its
    module (see local.source_modules in sources.tf: travelpayouts, odds, binance, bybit), defaulting to
    the entry's own name, and may override the module's defaults:
      base_url           the upstream's base URL
      auth               { style = "none" | "header" | "bearer" | "query", name = header or
                         query parameter name (header and query styles) }
      rate_limits        requests per minute by API path, or "*" for the whole host (odds
                         counts every path together); over the module's documented limits
      concurrency        requests in flight to the host at once (default 2)
      breaker            { failure_threshold (default 10), open_seconds (default 300) }
      quota_hold_seconds how long a spent quota keeps the source away (default: the
                         module's; The Odds API's credits come back at the next month)
      options            module settings; odds: api = "v4" (default) or "dingerodds";
                         binance: market = "linear" (default, fapi) or "spot",
                         weight_budget = request weight per minute (default 2400/6000)
      max_body_bytes     the largest answer body read (default 4 MiB, at most 64 MiB); a
                         bigger body is an upstream failure the breaker counts
      max_records_per_run records one run gathers before it stops and leaves a cursor
                         (default 20000, 100 to 200000)
    A job may name a module that has no entry here: it gets that module's defaults. Every
    source whose auth needs a secret gets the SSM SecureString /<name>/<source>/token
    (source_tokens). Delivered to the collector as PRICEWIRE_SOURCES (JSON), which checks
    it again at start, naming the field.
  EOT
  type = map(object({
    module   = optional(string)
    base_url = optional(string)
    auth = optional(object({
      style = string
      name  = optional(string)
    }))
    rate_limits = optional(map(number), {})
    concurrency = optional(number)
    breaker = optional(object({
      failure_threshold = optional(number)
      open_seconds      = optional(number)
    }), {})
    quota_hold_seconds  = optional(number)
    options             = optional(map(string), {})
    max_body_bytes      = optional(number)
    max_records_per_run = optional(number)
  }))
  default  = {}
  nullable = false

  validation {
    condition     = alltrue([for k, s in var.sources : coalesce(s.module, k) != "generic" || ((s.base_url != null || contains(keys(var.source_base_urls), k)) && contains(keys(s.options), "path") && contains(keys(s.options), "key") && contains(keys(s.options), "price"))])
    error_message = "sources[*] of the generic module need a base_url (or a source_base_urls entry) and options path, key and price (the module has no defaults): ${join(", ", [for k, s in var.sources : k if coalesce(s.module, k) == "generic" && !((s.base_url != null || contains(keys(var.source_base_urls), k)) && contains(keys(s.options), "path") && contains(keys(s.options), "key") && contains(keys(s.options), "price"))])}."
  }

  validation {
    condition     = alltrue([for k in keys(var.sources) : can(regex("^[a-z][a-z0-9-]{0,31}$", k))])
    error_message = "sources keys must be 1-32 characters of a-z, 0-9 and '-', starting with a letter."
  }

  validation {
    # The consumer quarantines poison stream records under quarantine/source=stream/.
    condition     = !contains(keys(var.sources), "stream")
    error_message = "sources: \"stream\" is reserved (the consumer's quarantine partition)."
  }

  validation {
    condition     = alltrue([for k, s in var.sources : contains(keys(local.source_modules), coalesce(s.module, k))])
    error_message = "sources[*].module (default: the entry's name) must be one of the modules in local.source_modules: travelpayouts, odds."
  }

  validation {
    condition = alltrue([for s in values(var.sources) : s.auth == null ? true : (
      contains(["none", "header", "bearer", "query"], s.auth.style) &&
      (contains(["header", "query"], s.auth.style) ? can(regex("^[A-Za-z0-9_-]{1,64}$", s.auth.name)) : s.auth.name == null)
    )])
    error_message = "sources[*].auth.style must be none, header, bearer or query; header and query need auth.name (A-Z, a-z, 0-9, '-', '_'), none and bearer take no name."
  }

  validation {
    condition     = alltrue([for s in values(var.sources) : s.base_url == null ? true : can(regex(local.upstream_url_pattern, s.base_url))])
    error_message = "sources[*].base_url must be an https:// URL without query or fragment (plain http:// only to localhost or 127.x.x.x, where the local twin listens)."
  }

  validation {
    condition = alltrue([for s in values(var.sources) : (
      (s.max_body_bytes == null ? true : s.max_body_bytes >= 1024 && s.max_body_bytes <= 67108864 && floor(s.max_body_bytes) == s.max_body_bytes) &&
      (s.max_records_per_run == null ? true : s.max_records_per_run >= 100 && s.max_records_per_run <= 200000 && floor(s.max_records_per_run) == s.max_records_per_run)
    )])
    error_message = "sources[*]: max_body_bytes must be 1024-67108864 (64 MiB), max_records_per_run 100-200000, both whole numbers."
  }

  validation {
    condition = alltrue(flatten([for s in values(var.sources) : [
      for path, rpm in s.rate_limits : (startswith(path, "/") || path == "*") && rpm >= 1 && rpm <= 100000 && floor(rpm) == rpm
    ]]))
    error_message = "sources[*].rate_limits keys must be API paths starting with / (or \"*\" for the whole host), values whole numbers of requests per minute from 1 to 100000."
  }

  validation {
    condition = alltrue([for s in values(var.sources) : (
      (s.concurrency == null ? true : s.concurrency >= 1 && s.concurrency <= 16 && floor(s.concurrency) == s.concurrency) &&
      (s.breaker.failure_threshold == null ? true : s.breaker.failure_threshold >= 1 && s.breaker.failure_threshold <= 1000 && floor(s.breaker.failure_threshold) == s.breaker.failure_threshold) &&
      (s.breaker.open_seconds == null ? true : s.breaker.open_seconds >= 1 && s.breaker.open_seconds <= 86400 && floor(s.breaker.open_seconds) == s.breaker.open_seconds) &&
      (s.quota_hold_seconds == null ? true : s.quota_hold_seconds >= 1 && s.quota_hold_seconds <= 2764800 && floor(s.quota_hold_seconds) == s.quota_hold_seconds)
    )])
    error_message = "sources[*]: concurrency must be 1-16, breaker.failure_threshold 1-1000, breaker.open_seconds 1-86400, quota_hold_seconds 1-2764800 (32 days), all whole numbers."
  }

  validation {
    condition = alltrue(flatten([for k, s in var.sources : [
      for option, value in s.options : anytrue([
        for allowed in try(local.source_modules[coalesce(s.module, k)].options[
          startswith(option, "query.") ? "query.*" : option
        ], []) :
        startswith(allowed, "/") ? can(regex(trimsuffix(trimprefix(allowed, "/"), "/"), value)) : allowed == value
      ])
    ]]))
    error_message = "sources[*].options must be options of the entry's module with an allowed value (odds: api = \"v4\" or \"dingerodds\"; binance: market = \"linear\" or \"spot\", weight_budget = a whole number; generic: see its options in sources.tf; travelpayouts and bybit take none)."
  }
}

variable "source_base_urls" {
  description = "Base URL by source name, over sources[*].base_url and the module defaults: for a staging upstream, a recording proxy, or the local twin's simulators."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k, u in var.source_base_urls : can(regex(local.upstream_url_pattern, u))])
    error_message = "source_base_urls values must be https:// URLs without query or fragment (plain http:// only to localhost or 127.x.x.x, where the local twin listens)."
  }
}

variable "source_tokens" {
  description = <<-EOT
    Secrets by source name (write-only: stored in SSM SecureString
    /<name>/<source>/token with a write-only argument, never in the plan or the state).
    A source that needs a secret and has none here gets a placeholder once; set the real
    value out of band with `aws ssm put-parameter --overwrite`, which later applies leave
    alone. Bump the source's entry in source_token_versions to write a new value.
  EOT
  type        = map(string)
  default     = null
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = var.source_tokens == null ? true : alltrue([for v in values(var.source_tokens) : can(regex("^\\S+$", v)) && length(v) <= 4096])
    error_message = "source_tokens values must be 1-4096 characters without whitespace."
  }
}

variable "source_token_versions" {
  description = "Version of each source's token (default 1); increase one to make Terraform write that source's token again (write-only arguments are not diffed)."
  type        = map(number)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for v in values(var.source_token_versions) : v >= 1 && floor(v) == v])
    error_message = "source_token_versions values must be whole numbers of at least 1."
  }
}
