# The fault run of the local twin (infra/pricewire/tests/faults_e2e.rs): the twin's
# stack with heavier jobs. Applied like twin.tfvars (see there).

name                 = "pricewire"
aws_region           = "us-east-1"
force_destroy_bucket = true
log_level            = "info"

# Four v3 jobs of 500 offers each, every 5 minutes (5 s at the test's 60x speed):
# 2,000 records a round.
jobs = {
  "led-kzn" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin       = "LED"
      destination  = "KZN"
      departure_at = "2026-12"
      currency     = "rub"
      limit        = "500"
    }
  }
  "mow-led" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin       = "MOW"
      destination  = "LED"
      departure_at = "2026-12"
      currency     = "rub"
      limit        = "500"
    }
  }
  "mow-aer" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin       = "MOW"
      destination  = "AER"
      departure_at = "2026-12"
      currency     = "rub"
      limit        = "500"
    }
  }
  "svx-mow" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin       = "SVX"
      destination  = "MOW"
      departure_at = "2026-12"
      currency     = "rub"
      limit        = "500"
    }
  }
}

# Every matching change alerts (cooldown 0): under these faults records reach the table
# out of order, and "better than the last alert" depends on the order changes arrive in,
# so only without re-alerting is the exact set of alerts independent of the faults. The
# twin checks re-alerting exactly (its deliveries are in order).
alert_rules = [
  {
    name             = "cheap-aeroflot"
    source           = "travelpayouts"
    kind             = "flight_price"
    when             = "price < 5000 && gate == \"Aeroflot\""
    cooldown_minutes = 0
  },
  {
    name             = "direct-under-4000"
    source           = "travelpayouts"
    kind             = "flight_price"
    when             = "transfers == 0 && price < 4000"
    cooldown_minutes = 0
  },
]

# Consumer and alerter event source mappings (bisect on error and
# ReportBatchItemFailures are always on).
stream_batch_size              = 100
stream_batching_window_seconds = 1
stream_max_retry_attempts      = 3
stream_max_record_age_seconds  = 3600

# The alerter only receives flight_price records (Kinesis filter criteria).
alerter_filter_kinds = ["flight_price"]

sms_subscribers         = ["+15555550123"]
manage_sms_preferences  = true
sms_monthly_spend_limit = 1

# The twin reads alerts (SNS envelopes) from pricewire-inbox.
alert_inbox_queue = true
