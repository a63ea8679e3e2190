# Emulator (moto) configuration used by infra/scripts/tf-moto.sh:
# small, but exercises every resource type (seven schedules over six sources, rules,
# SMS + e-mail subscriptions, SMS preferences, alerter filter, tokens via write-only
# arguments).

name                 = "pricewire"
aws_region           = "us-east-1"
force_destroy_bucket = true
log_level            = "info,collector=debug,consumer=debug,alerter=debug"

# The odds module twice: The Odds API v4 under its module's name (defaults), and a
# dingerodds-style upstream declared as its own entry.
sources = {
  travelpayouts = {
    rate_limits = { "/aviasales/v3/prices_for_dates" = 120 }
    concurrency = 2
  }
  dinger = {
    module      = "odds"
    base_url    = "https://api.dingerodds.example"
    auth        = { style = "bearer" }
    rate_limits = { "*" = 60 }
    breaker     = { failure_threshold = 5, open_seconds = 600 }
    options     = { api = "dingerodds" }
  }
  binance = {
    options = { weight_budget = "2400" }
  }
  # A source declared here alone, with a key in a header (so a token parameter too).
  coingecko = {
    module      = "generic"
    base_url    = "https://api.coingecko.com"
    auth        = { style = "header", name = "x-cg-demo-api-key" }
    rate_limits = { "*" = 30 }
    options = {
      path                = "/api/v3/coins/markets"
      key                 = "id"
      price               = "current_price"
      time                = "last_updated"
      name                = "name"
      fixed_currency      = "USD"
      pagination          = "page"
      page_size           = "250"
      max_pages           = "4"
      "query.vs_currency" = "usd"
    }
  }
}

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
  # The Odds API v4, with the odds module's defaults.
  "nba-odds" = {
    source   = "odds"
    schedule = "rate(10 minutes)"
    params = {
      sport   = "basketball_nba"
      regions = "us"
      markets = "h2h,spreads,totals"
    }
  }
  # dingerodds style, a cursor chain.
  "mlb-moneyline" = {
    source   = "dinger"
    schedule = "rate(10 minutes)"
    params = {
      sport  = "baseball"
      market = "moneyline"
      limit  = "50"
    }
  }
  # Market data: many symbols on Binance, open interest on Bybit.
  "majors-1h" = {
    source   = "binance"
    schedule = "rate(15 minutes)"
    params = {
      symbols  = "BTCUSDT,ETHUSDT,SOLUSDT"
      interval = "1h"
      lookback = "7d"
    }
  }
  "eth-oi" = {
    source   = "bybit"
    schedule = "rate(5 minutes)"
    params = {
      symbol = "ETHUSDT"
      data   = "open_interest"
      period = "5m"
    }
  }
  "top-coins" = {
    source   = "coingecko"
    schedule = "rate(10 minutes)"
    params = {
      order = "market_cap_desc"
    }
  }
}

alert_rules = [
  {
    name   = "new-30-day-low"
    source = "travelpayouts"
    kind   = "flight_price"
    type   = "new_low"
    params = { days = 30, min_days_tracked = 7 }
    when   = "transfers == 0"
  },
  {
    name   = "cheap-aeroflot"
    source = "travelpayouts"
    kind   = "flight_price"
    when   = "price < 5000 && gate == \"Aeroflot\""
    # Re-alert on a fare at least 2 % lower, or after 12 hours; never at night.
    cooldown_minutes = 720
    step_percent     = 2
    quiet_hours      = "23:00-07:00"
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
    when   = "market == \"h2h\" && price >= 4.0"
  },
  {
    name   = "hourly-pump"
    source = "binance"
    kind   = "candle"
    when   = "change_percent >= 3.0"
  },
  {
    name   = "btc-under-60k"
    source = "coingecko"
    kind   = "price"
    when   = "key == \"bitcoin\" && price < 60000.0"
  },
]

alerter_filter_kinds = ["flight_price", "odds_quote", "candle", "price"]

# Declared subscribers: filtered subscriptions (tf-moto.sh checks their filter policies).
subscribers = {
  ann = {
    sms           = "+15555550101"
    rules         = ["cheap-aeroflot"]
    subjects      = ["LED-KZN"]
    time_zone     = "Europe/Moscow"
    sms_daily_cap = 5
  }
  ops = { email = "ops@example.com" }
}
sms_subscribers   = ["+15555550100"]
email_subscribers = ["alerts@example.com"]

source_tokens = {
  travelpayouts = "test-token"
  odds          = "test-odds-key"
  dinger        = "test-dinger-token"
  coingecko     = "test-coingecko-key"
}
