# Flight prices from the Travelpayouts (Aviasales) Data API: both endpoint shapes, alerts
# on fares that are low against their own history, SMS to a traveller, e-mail to a list.
#
#   make build
#   TF_VAR_source_tokens='{travelpayouts="<your Travelpayouts API token>"}' \
#     terraform -chdir=terraform apply -var-file=examples/flights.tfvars
#
# The token is write-only (SSM SecureString /pricewire/travelpayouts/token, never in the
# plan or the state); left out, a placeholder is written once, to be replaced with
# `aws ssm put-parameter --overwrite`. Dates below are early 2027: move them forward.

name       = "pricewire"
aws_region = "us-east-1"

# cron(...) schedules below are Moscow time, like the routes.
schedule_timezone = "Europe/Moscow"

# Fares are seasonal: keep a quarter of history and compare with it (90-day typical and
# minimum), besides the week and the month. history_ttl_days must cover the widest window.
stat_windows_days = [7, 30, 90]
history_ttl_days  = 120

# Only what differs from the module's defaults (base URL https://api.travelpayouts.com,
# token in X-Access-Token). Half the documented limits (600 and 300 a minute): the token's
# limits are shared with whatever else uses it, a site's search widget say.
sources = {
  travelpayouts = {
    rate_limits = {
      "/aviasales/v3/prices_for_dates" = 300
      "/v2/prices/month-matrix"        = 150
    }
  }
}

jobs = {
  # v3 prices_for_dates: the cheapest one-way fares St Petersburg -> Kazan in February,
  # up to 3 pages of 100 offers, every hour.
  "led-kzn" = {
    source   = "travelpayouts"
    schedule = "rate(1 hour)"
    params = {
      origin       = "LED"
      destination  = "KZN"
      departure_at = "2027-02"
      one_way      = "true"
      currency     = "rub"
      sorting      = "price"
      limit        = "100"
      max_pages    = "3"
    }
  }
  # v3 round trips Moscow -> Istanbul in March, direct flights only, every 2 hours.
  "mow-ist-direct" = {
    source   = "travelpayouts"
    schedule = "rate(2 hours)"
    params = {
      origin       = "MOW"
      destination  = "IST"
      departure_at = "2027-03"
      return_at    = "2027-03"
      one_way      = "false"
      direct       = "true"
      currency     = "rub"
      limit        = "50"
    }
  }
  # v2 month-matrix (picked by `month`): the cheapest fare per departure day of March,
  # Moscow -> Sochi. The matrix is a cache refreshed a few times a day: every 3 hours,
  # on the hour, is plenty.
  "mow-aer-march" = {
    source   = "travelpayouts"
    schedule = "cron(0 */3 * * ? *)"
    params = {
      origin             = "MOW"
      destination        = "AER"
      month              = "2027-03-01"
      currency           = "rub"
      show_to_affiliates = "true"
    }
  }
  # A summer route, kept but paused until spring (the schedule exists, DISABLED).
  "led-aer-summer" = {
    source   = "travelpayouts"
    schedule = "cron(0 7 * * ? *)"
    enabled  = false
    params = {
      origin       = "LED"
      destination  = "AER"
      departure_at = "2027-07"
      currency     = "rub"
      sorting      = "price"
    }
  }
}

# Prices are RUB (the jobs' currency). Once a rule has alerted about a fare it speaks
# again when the fare is cheaper than the last alert, or after the cooldown (flight rules'
# defaults: better = lower, cooldown_minutes = 1440).
alert_rules = [
  # The cheapest fare of the last 30 days, once a week of history is there.
  {
    name   = "fare-30-day-low"
    source = "travelpayouts"
    kind   = "flight_price"
    type   = "new_low"
    params = { days = 30, min_days_tracked = 7 }
  },
  # A quarter under what the fare typically cost over 90 days; again at 5 % cheaper.
  {
    name         = "fare-under-typical"
    source       = "travelpayouts"
    kind         = "flight_price"
    type         = "drop_from_typical"
    params       = { percent = 25, days = 90 }
    step_percent = 5
  },
  # A fixed target for one route: re-alert on a 3 % better fare or after 12 hours, never
  # at night (in each subscriber's time zone).
  {
    name             = "led-kzn-under-3500"
    source           = "travelpayouts"
    kind             = "flight_price"
    type             = "price_at_or_under"
    params           = { target = 3500 }
    when             = "route == \"LED-KZN\""
    cooldown_minutes = 720
    step_percent     = 3
    quiet_hours      = "23:00-08:00"
  },
  # A direct round trip to Istanbul under 25,000 RUB.
  {
    name   = "ist-direct-deal"
    source = "travelpayouts"
    kind   = "flight_price"
    when   = "route == \"MOW-IST\" && transfers == 0 && price < 25000.0"
  },
  # A fare 15 % down from its previous price within 3 hours (a sale, a fare-class drop).
  {
    name   = "sharp-drop"
    source = "travelpayouts"
    kind   = "flight_price"
    type   = "drop_from_previous"
    params = { percent = 15 }
    when   = "minutes_since_previous <= 180.0"
  },
]

# The alerter only receives flight prices (the only kind here).
alerter_filter_kinds = ["flight_price"]

subscribers = {
  # SMS for two rules on her route, Moscow time, at most 5 a day.
  ann = {
    sms           = "+15555550101"
    rules         = ["fare-30-day-low", "led-kzn-under-3500"]
    subjects      = ["LED-KZN"]
    time_zone     = "Europe/Moscow"
    sms_daily_cap = 5
  }
  # SMS and e-mail for the Istanbul deals.
  boris = {
    sms           = "+15555550102"
    email         = "boris@example.com"
    rules         = ["ist-direct-deal", "fare-under-typical"]
    subjects      = ["MOW-IST"]
    time_zone     = "Europe/Istanbul"
    sms_daily_cap = 3
  }
  # Every alert by e-mail (each address confirms its subscription once).
  deals = { email = "deals@example.com" }
}

# Account-wide SMS settings (one stack per account and region manages them).
sms_monthly_spend_limit = 5
sms_type                = "Transactional"

# alarm_actions = ["arn:aws:sns:us-east-1:123456789012:ops-alarms"]
