# Local twin configuration: applied to a moto server by the twin runner through
#   infra/scripts/tf-moto.sh --scratch DIR --var-file infra/moto/twin.tfvars \
#     --var travelpayouts_base_url=http://127.0.0.1:SIMPORT --var travelpayouts_token=TOKEN PORT
# The runner reads the functions, event source mappings and schedules back from moto
# and the alerts from the <name>-inbox queue. travelpayouts_base_url and
# travelpayouts_token are deliberately not set here (passed with --var).

name                 = "pricewire"
aws_region           = "us-east-1"
force_destroy_bucket = true
log_level            = "info"

# Four jobs, both Travelpayouts endpoint shapes, every 5 minutes.
jobs = {
  # v3 prices_for_dates.
  "led-kzn" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin       = "LED"
      destination  = "KZN"
      departure_at = "2026-12"
      currency     = "rub"
      limit        = "30"
    }
  }
  # v2 month-matrix.
  "mow-aer" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin             = "MOW"
      destination        = "AER"
      month              = "2026-12-01"
      currency           = "rub"
      show_to_affiliates = "true"
    }
  }
  # v3 prices_for_dates.
  "mow-led" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin       = "MOW"
      destination  = "LED"
      departure_at = "2026-12"
      currency     = "rub"
      limit        = "20"
    }
  }
  # v2 month-matrix.
  "svx-mow" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin      = "SVX"
      destination = "MOW"
      month       = "2026-12-01"
      currency    = "rub"
    }
  }
}

alert_rules = [
  {
    name   = "cheap-aeroflot"
    source = "travelpayouts"
    kind   = "flight_price"
    when   = "price < 5000 && gate == \"Aeroflot\""
  },
  {
    name   = "direct-under-4000"
    source = "travelpayouts"
    kind   = "flight_price"
    when   = "transfers == 0 && price < 4000"
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
