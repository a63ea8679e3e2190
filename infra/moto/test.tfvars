# Emulator (moto) configuration used by infra/scripts/tf-moto.sh:
# small, but exercises every resource type (two schedules, two rules, SMS + e-mail
# subscriptions, SMS preferences, alerter filter, token via write-only argument).

name                 = "pricewire"
aws_region           = "us-east-1"
force_destroy_bucket = true
log_level            = "info,collector=debug,consumer=debug,alerter=debug"

jobs = {
  # Travelpayouts v3 prices_for_dates.
  "led-kzn" = {
    source   = "travelpayouts"
    schedule = "rate(5 minutes)"
    params = {
      origin       = "LED"
      destination  = "KZN"
      departure_at = "2026-12"
      currency     = "rub"
      sorting      = "price"
      limit        = "100"
    }
  }
  # Travelpayouts v2 month-matrix.
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

alerter_filter_kinds = ["flight_price"]

sms_subscribers   = ["+15555550100"]
email_subscribers = ["alerts@example.com"]

travelpayouts_token = "test-token"
