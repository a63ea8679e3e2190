# A source no module knows, declared in Terraform alone (the generic module): CoinGecko's
# market list, coin prices in USD, with alerts on a target price and on prices low
# against their own history.
#
#   make build
#   TF_VAR_source_tokens='{coingecko="<CoinGecko demo API key, CG-...>"}' \
#     terraform -chdir=terraform apply -var-file=examples/generic.tfvars
#
# The key is write-only (SSM SecureString /pricewire/coingecko/token, never in the plan or
# the state); left out, a placeholder is written once, to be replaced with
# `aws ssm put-parameter --overwrite`.
#
# Calls: the demo plan allows 30 a minute and 10,000 a month. The jobs below make about
# 2 x 24 (top 500, hourly) + 144 (watch list, every 10 minutes) = 192 a day, some 5,800
# a month.

name       = "pricewire"
aws_region = "us-east-1"

sources = {
  # GET /api/v3/coins/markets?vs_currency=usd&page=N&per_page=250: a JSON array of
  # {id, symbol, name, current_price, last_updated, ...}. The entity key is the coin's
  # id ("bitcoin"): what rules read as `key` and subscribers name as a subject.
  coingecko = {
    module      = "generic"
    base_url    = "https://api.coingecko.com"
    auth        = { style = "header", name = "x-cg-demo-api-key" }
    rate_limits = { "*" = 30 }
    options = {
      path           = "/api/v3/coins/markets"
      key            = "id"
      price          = "current_price"
      time           = "last_updated"
      name           = "name"
      fixed_currency = "USD"
      # Pages 1, 2, ... of 250 (page, per_page), at most 2 a run; a short page ends it.
      pagination          = "page"
      page_param          = "page"
      page_size_param     = "per_page"
      page_size           = "250"
      max_pages           = "2"
      "query.vs_currency" = "usd"
    }
  }
}

# A generic job's params are sent as query parameters, as they are.
jobs = {
  # The 500 largest coins by market cap, hourly.
  "top-500" = {
    source   = "coingecko"
    schedule = "rate(1 hour)"
    params = {
      order = "market_cap_desc"
    }
  }
  # A watch list, every 10 minutes (one short page).
  "watchlist" = {
    source   = "coingecko"
    schedule = "rate(10 minutes)"
    params = {
      ids   = "bitcoin,ethereum,solana,chainlink"
      order = "market_cap_desc"
    }
  }
}

# A coin quoted at 0 is a delisting or a data gap, not a deal: quarantined, never stored.
# A price 10 times its typical one (or a tenth of it) is stored flagged and never alerts
# (the default outlier factor).
plausibility = {
  price = { min = "0.00000001" }
}

# Once a rule has alerted about a coin it speaks again when the price is lower than the
# last alert, or after the cooldown (generic prices' defaults: better = lower,
# cooldown_minutes = 1440).
alert_rules = [
  # Bitcoin at or under 60,000 USD; again at each further 2 % lower, never at night.
  {
    name         = "btc-under-60k"
    source       = "coingecko"
    kind         = "price"
    type         = "price_at_or_under"
    params       = { target = 60000 }
    when         = "key == \"bitcoin\""
    step_percent = 2
    quiet_hours  = "23:00-07:00"
  },
  # Any tracked coin under its 30-day minimum, after two weeks of history.
  {
    name   = "coin-30-day-low"
    source = "coingecko"
    kind   = "price"
    type   = "new_low"
    params = { days = 30, min_days_tracked = 14 }
  },
  # 15 % under the coin's typical price of the last week.
  {
    name   = "dip-under-typical"
    source = "coingecko"
    kind   = "price"
    type   = "drop_from_typical"
    params = { percent = 15, days = 7 }
  },
  # Down 10 % from the previous price within 20 minutes.
  {
    name   = "flash-drop"
    source = "coingecko"
    kind   = "price"
    type   = "drop_from_previous"
    params = { percent = 10 }
    when   = "minutes_since_previous <= 20.0"
  },
]

# The alerter only receives generic prices (the only kind here).
alerter_filter_kinds = ["price"]

subscribers = {
  # SMS for Bitcoin and Ether, Los Angeles time, at most 6 a day.
  fay = {
    sms           = "+15555550105"
    rules         = ["btc-under-60k", "coin-30-day-low", "flash-drop"]
    subjects      = ["bitcoin", "ethereum"]
    time_zone     = "America/Los_Angeles"
    sms_daily_cap = 6
  }
  # The history rules for every coin, by e-mail.
  research = {
    email = "research@example.com"
    rules = ["coin-30-day-low", "dip-under-typical", "flash-drop"]
  }
}

# Account-wide SMS settings (one stack per account and region manages them).
sms_monthly_spend_limit = 3
sms_type                = "Transactional"

# alarm_actions = ["arn:aws:sns:us-east-1:123456789012:ops-alarms"]
