# Local twin configuration: applied to a moto server by the twin runner through
#   infra/scripts/tf-moto.sh --scratch DIR --var-file infra/moto/twin.tfvars \
#     --var 'source_base_urls={travelpayouts="http://127.0.0.1:P1",odds="…",dinger="…"}' \
#     --var 'source_tokens={travelpayouts="TOKEN",odds="TOKEN",dinger="TOKEN"}' PORT
# The runner reads the functions, event source mappings and schedules back from moto
# and the alerts from the <name>-inbox queue. Base URLs (one simulator per source) and
# tokens are deliberately not set here (passed with --var).

name                 = "pricewire"
aws_region           = "us-east-1"
force_destroy_bucket = true
log_level            = "info"

# The odds module twice: The Odds API v4 under the module's own name (no entry needed),
# and a dingerodds-style upstream, Bearer token, cursor pages.
sources = {
  dinger = {
    module  = "odds"
    auth    = { style = "bearer" }
    options = { api = "dingerodds" }
  }
}

# Four flight jobs, both Travelpayouts endpoint shapes, and three odds jobs (two v4
# sports, one dingerodds chain of two pages), every 5 minutes.
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
  # The Odds API v4: every market, one region.
  "nba-odds" = {
    source   = "odds"
    schedule = "rate(5 minutes)"
    params = {
      sport   = "basketball_nba"
      regions = "us"
      markets = "h2h,spreads,totals"
    }
  }
  "epl-odds" = {
    source   = "odds"
    schedule = "rate(5 minutes)"
    params = {
      sport   = "soccer_epl"
      regions = "uk"
      markets = "h2h"
    }
  }
  # dingerodds: pages of three events, followed by cursor.
  "mlb-moneyline" = {
    source   = "dinger"
    schedule = "rate(5 minutes)"
    params = {
      sport  = "baseball"
      market = "moneyline"
      limit  = "3"
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
  {
    name   = "long-shot"
    source = "odds"
    kind   = "odds_quote"
    when   = "market == \"h2h\" && price >= 3.5"
  },
  {
    name   = "mlb-favourite"
    source = "dinger"
    kind   = "odds_quote"
    when   = "implied_probability >= 0.6"
  },
]

# Consumer and alerter event source mappings (bisect on error and
# ReportBatchItemFailures are always on).
stream_batch_size              = 100
stream_batching_window_seconds = 1
stream_max_retry_attempts      = 3
stream_max_record_age_seconds  = 3600

# The alerter only receives the kinds its rules are about (Kinesis filter criteria).
alerter_filter_kinds = ["flight_price", "odds_quote"]

sms_subscribers         = ["+15555550123"]
manage_sms_preferences  = true
sms_monthly_spend_limit = 1

# The twin reads alerts (SNS envelopes) from pricewire-inbox.
alert_inbox_queue = true
