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
# and a dingerodds-style upstream, Bearer token, cursor pages. The exchanges under their
# modules' names: binance with the simulated weight budget (as copied from exchangeInfo).
sources = {
  dinger = {
    module  = "odds"
    auth    = { style = "bearer" }
    options = { api = "dingerodds" }
  }
  binance = {
    options = { weight_budget = "600" }
  }
  # An upstream no module knows, declared here alone (the generic module): a shop's
  # offers, pages numbered from 1, the region as a fixed query parameter.
  shop = {
    module = "generic"
    options = {
      path           = "/v1/offers"
      records        = "/data/items"
      key            = "store,/item/sku"
      price          = "/item/price"
      time           = "updated_at"
      currency       = "currency"
      name           = "/item/title"
      pagination     = "page"
      page_size      = "8"
      "query.region" = "eu"
    }
  }
}

# Four flight jobs, both Travelpayouts endpoint shapes, three odds jobs (two v4 sports,
# one dingerodds chain of two pages), and four market jobs (Binance candles of three
# symbols and funding; Bybit open interest by cursor pages and hourly candles of two
# symbols), every 5 minutes.
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
  # Binance USD-M futures: minute candles of three symbols, one walk each.
  "majors-1m" = {
    source   = "binance"
    schedule = "rate(5 minutes)"
    params = {
      symbols  = "BTCUSDT,ETHUSDT,SOLUSDT"
      interval = "1m"
      lookback = "30m"
      limit    = "100"
    }
  }
  "btc-funding" = {
    source   = "binance"
    schedule = "rate(5 minutes)"
    params = {
      data     = "funding"
      symbol   = "BTCUSDT"
      lookback = "3d"
    }
  }
  # Bybit: open interest in cursor pages of ten, hourly candles of two symbols.
  "eth-oi" = {
    source   = "bybit"
    schedule = "rate(5 minutes)"
    params = {
      data     = "open_interest"
      symbol   = "ETHUSDT"
      period   = "5m"
      lookback = "2h"
      limit    = "10"
    }
  }
  # The generic source: its params are sent as they are.
  "tea" = {
    source   = "shop"
    schedule = "rate(5 minutes)"
    params = {
      category = "tea"
    }
  }
  "alts-1h" = {
    source   = "bybit"
    schedule = "rate(5 minutes)"
    params = {
      symbols  = "XRPUSDT,DOGEUSDT"
      interval = "1h"
      lookback = "12h"
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
  {
    name   = "minute-pump"
    source = "binance"
    kind   = "candle"
    when   = "change_percent >= 0.4 && interval == \"1m\""
  },
  {
    name   = "negative-funding"
    source = "binance"
    kind   = "funding_rate"
    when   = "rate < 0.0"
  },
  {
    name   = "cheap-tea"
    source = "shop"
    kind   = "price"
    when   = "price < 10.0 && currency == \"EUR\""
  },
  {
    name   = "wide-hour"
    source = "bybit"
    kind   = "candle"
    when   = "range_percent >= 0.6"
  },
  # Rules on history, exercised by the scripted history twin_e2e puts on the stream
  # (route LED-EVN, event scripted-final, SCRIPTUSDT), and by whatever else matches.
  {
    name   = "fare-drop"
    source = "travelpayouts"
    kind   = "flight_price"
    type   = "drop_from_previous"
    params = { percent = 5 }
    when   = "route == \"LED-EVN\""
  },
  {
    name   = "fare-30-day-low"
    source = "travelpayouts"
    kind   = "flight_price"
    type   = "new_low"
    params = { days = 30, min_days_tracked = 7 }
  },
  {
    name   = "odds-shortening"
    source = "odds"
    kind   = "odds_quote"
    type   = "odds_shortening"
    params = { points = 5, minutes = 30 }
  },
  {
    name   = "odds-steam"
    source = "odds"
    kind   = "odds_quote"
    type   = "odds_shortening"
    params = { points = 5, minutes = 30, bookmakers = 2 }
    when   = "event_id == \"scripted-final\""
  },
  {
    name   = "line-move"
    source = "odds"
    kind   = "odds_quote"
    type   = "line_move"
    params = { points = 1.5, minutes = 30 }
  },
  {
    name   = "funding-flip"
    source = "binance"
    kind   = "funding_rate"
    type   = "funding_flip"
  },
]

# Consumer and alerter event source mappings (bisect on error and
# ReportBatchItemFailures are always on).
stream_batch_size              = 100
stream_batching_window_seconds = 1
stream_max_retry_attempts      = 3
stream_max_record_age_seconds  = 3600

# The alerter only receives the kinds its rules are about (Kinesis filter criteria).
alerter_filter_kinds = ["flight_price", "odds_quote", "candle", "funding_rate", "price"]

# An SMS subscriber of one rule and route, an e-mail subscriber of everything; taps let
# the twin read what SNS delivers to each (through the subscriptions' filter policies).
subscribers = {
  ann = {
    sms       = "+15555550123"
    rules     = ["fare-30-day-low"]
    subjects  = ["LED-EVN"]
    time_zone = "Europe/Moscow"
  }
  ops = { email = "ops@example.com" }
}
subscriber_taps         = true
manage_sms_preferences  = true
sms_monthly_spend_limit = 1

# The twin reads alerts (SNS envelopes) from pricewire-inbox.
alert_inbox_queue = true
