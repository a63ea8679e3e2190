# Market data from Binance and Bybit (public, no key): candles, funding rates and open
# interest of the majors, with alerts on moves that stand out: a big hourly candle, a
# daily close well under the day before, funding flipping sign or running hot, open
# interest jumping.
#
#   make build
#   terraform -chdir=terraform apply -var-file=examples/market.tfvars
#
# No source here needs a token (auth "none"): no SSM parameter is made, no
# TF_VAR_source_tokens is needed.

name       = "pricewire"
aws_region = "us-east-1"

sources = {
  # USD-M futures (fapi.binance.com) under the module's name. Binance counts request
  # weight per IP and minute: plan on half the futures budget of 2400, the walk pausing
  # before it is spent.
  binance = {
    options = { weight_budget = "1200" }
  }
  # The same module for spot: another entry, its own base URL and budget (6000 by default).
  binance-spot = {
    module   = "binance"
    base_url = "https://api.binance.com"
    options  = { market = "spot" }
  }
  # Bybit v5 (api.bybit.com) needs no entry: jobs name the module and get its defaults.
}

jobs = {
  # Hourly candles of four perpetuals, one walk per symbol; the first run looks back a
  # week, every later one starts where the last ended. A still-open candle is never taken.
  "majors-1h" = {
    source   = "binance"
    schedule = "rate(15 minutes)"
    params = {
      symbols  = "BTCUSDT,ETHUSDT,SOLUSDT,BNBUSDT"
      interval = "1h"
      lookback = "7d"
    }
  }
  # Funding (every 8 hours on Binance), a month back on the first run.
  "majors-funding" = {
    source   = "binance"
    schedule = "rate(1 hour)"
    params = {
      data     = "funding"
      symbols  = "BTCUSDT,ETHUSDT"
      lookback = "30d"
    }
  }
  # Hourly open interest (Binance keeps 30 days of it).
  "majors-oi-1h" = {
    source   = "binance"
    schedule = "rate(1 hour)"
    params = {
      data     = "open_interest"
      symbols  = "BTCUSDT,ETHUSDT"
      period   = "1h"
      lookback = "7d"
    }
  }
  # Spot daily candles, three months back on the first run.
  "spot-daily" = {
    source   = "binance-spot"
    schedule = "rate(6 hours)"
    params = {
      symbols  = "BTCUSDT,ETHUSDT"
      interval = "1d"
      lookback = "90d"
    }
  }
  # Bybit linear perpetual: 8-hour candles built from complete pairs of 4-hour ones.
  "bybit-btc-8h" = {
    source   = "bybit"
    schedule = "rate(1 hour)"
    params = {
      symbol   = "BTCUSDT"
      interval = "4h"
      derive   = "8h"
    }
  }
  # Bybit open interest every 15 minutes, a day back on the first run.
  "bybit-eth-oi" = {
    source   = "bybit"
    schedule = "rate(15 minutes)"
    params = {
      data     = "open_interest"
      symbol   = "ETHUSDT"
      period   = "15m"
      lookback = "1d"
    }
  }
}

# Series rules see each new point with the previous one. By default a market rule alerts
# on every matching point (cooldown 0): each candle or funding print is its own event.
alert_rules = [
  # An hourly candle that moved 3 % either way, open to close.
  {
    name   = "hourly-move"
    source = "binance"
    kind   = "candle"
    when   = "interval == \"1h\" && (change_percent >= 3.0 || change_percent <= -3.0)"
  },
  # A daily spot close 7 % under the day before. (Series points carry the previous point
  # only, not the stat_windows_days figures: new_low and drop_from_typical are for
  # fares, odds and generic prices.)
  {
    name   = "daily-drop"
    source = "binance-spot"
    kind   = "candle"
    type   = "drop_from_previous"
    params = { percent = 7 }
    when   = "interval == \"1d\""
  },
  # An 8-hour Bybit candle with a 6 % range (high - low against the open).
  {
    name   = "wide-8h"
    source = "bybit"
    kind   = "candle"
    when   = "interval == \"8h\" && range_percent >= 6.0"
  },
  # Funding changed sign: longs now paid by shorts, or the other way.
  {
    name   = "funding-flip"
    source = "binance"
    kind   = "funding_rate"
    type   = "funding_flip"
  },
  # Funding at or beyond +-0.1 % an interval (ten times the usual 0.01 %).
  {
    name   = "funding-hot"
    source = "binance"
    kind   = "funding_rate"
    type   = "funding_beyond"
    params = { rate_percent = 0.1 }
  },
  # Open interest up or down 5 % from the previous reading, within 30 minutes.
  {
    name   = "oi-jump"
    source = "bybit"
    kind   = "open_interest"
    type   = "open_interest_change"
    params = { percent = 5, minutes = 30 }
  },
  # Hourly open interest moving 8 % in an hour on Binance.
  {
    name   = "oi-surge-1h"
    source = "binance"
    kind   = "open_interest"
    type   = "open_interest_change"
    params = { percent = 8, minutes = 60 }
  },
]

# The alerter only receives the kinds the rules are about.
alerter_filter_kinds = ["candle", "funding_rate", "open_interest"]

subscribers = {
  # SMS for the rarer signals on BTC and ETH, London time, at most 8 a day.
  erin = {
    sms           = "+15555550104"
    rules         = ["funding-flip", "oi-jump", "oi-surge-1h", "daily-drop"]
    subjects      = ["BTCUSDT", "ETHUSDT"]
    time_zone     = "Europe/London"
    sms_daily_cap = 8
  }
  # Every alert by e-mail.
  desk = { email = "desk@example.com" }
}

# Account-wide SMS settings (one stack per account and region manages them).
sms_monthly_spend_limit = 5
sms_type                = "Transactional"

# alarm_actions = ["arn:aws:sns:us-east-1:123456789012:ops-alarms"]
