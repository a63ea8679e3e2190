# Sports odds: The Odds API v4 (NBA, NFL, Premier League) and a dingerodds-style upstream
# (MLB), with alerts on moves against the previous quotes: a market move across
# bookmakers, one bookmaker's sharp shortening, a moving spread or total, a drifting
# outsider.
#
#   make build
#   TF_VAR_source_tokens='{odds="<The Odds API key>",dinger="<dingerodds token>"}' \
#     terraform -chdir=terraform apply -var-file=examples/odds.tfvars
#
# Tokens are write-only (SSM SecureString /pricewire/<source>/token, never in the plan or
# the state); one left out gets a placeholder, to be replaced with
# `aws ssm put-parameter --overwrite`.
#
# Credits: The Odds API charges markets x regions per call (up to 10 bookmakers count as
# one region). The jobs below spend about 3 x 96 (NBA) + 2 x 48 (NFL) + 2 x 24 (EPL) =
# 432 credits a day, some 13,000 a month: the 20K plan, not the free 500.

name       = "pricewire"
aws_region = "us-east-1"

sources = {
  # The Odds API v4 under its module's name: base URL https://api.the-odds-api.com and the
  # key as the apiKey query parameter are the defaults. A spent quota holds the source
  # until the first of next month; after upgrading the plan mid-month, probe daily instead.
  odds = {
    quota_hold_seconds = 86400
  }
  # A second upstream of the odds module in the dingerodds style: Bearer token, cursor
  # pages, about 60 requests a minute for the whole host. Put your provider's host here.
  dinger = {
    module      = "odds"
    base_url    = "https://api.dingerodds.example"
    auth        = { style = "bearer" }
    rate_limits = { "*" = 60 }
    concurrency = 1
    breaker     = { failure_threshold = 5, open_seconds = 600 }
    options     = { api = "dingerodds" }
  }
}

jobs = {
  # NBA moneylines, spreads and totals from US bookmakers: 3 credits a call.
  "nba-odds" = {
    source   = "odds"
    schedule = "rate(15 minutes)"
    params = {
      sport   = "basketball_nba"
      regions = "us"
      markets = "h2h,spreads,totals"
    }
  }
  # NFL lines from three named bookmakers (one region's worth): 2 credits a call.
  "nfl-lines" = {
    source   = "odds"
    schedule = "rate(30 minutes)"
    params = {
      sport      = "americanfootball_nfl"
      bookmakers = "draftkings,fanduel,betmgm"
      markets    = "spreads,totals"
    }
  }
  # Premier League match odds from UK and European bookmakers: 2 credits a call.
  "epl-odds" = {
    source   = "odds"
    schedule = "rate(1 hour)"
    params = {
      sport   = "soccer_epl"
      regions = "uk,eu"
      markets = "h2h"
    }
  }
  # dingerodds: MLB moneylines, pages of 50 events, at most 5 pages a run. Off-season:
  # paused until spring training.
  "mlb-moneyline" = {
    source   = "dinger"
    schedule = "rate(10 minutes)"
    enabled  = false
    params = {
      sport     = "baseball"
      market    = "moneyline"
      limit     = "50"
      max_pages = "5"
    }
  }
}

# Odds rules see each quote change with the previous one (implied_probability = 1 /
# price). By default an odds rule alerts on every matching change (cooldown 0).
alert_rules = [
  # A market move: the same outcome shortened by 4+ points of implied probability at three
  # bookmakers within 30 minutes. Alerted once, at the bookmaker that completes it.
  {
    name   = "steam-move"
    source = "odds"
    kind   = "odds_quote"
    type   = "odds_shortening"
    params = { points = 4, minutes = 30, bookmakers = 3 }
  },
  # One bookmaker cut a match-odds price by 8+ points within the hour; at most one alert
  # per quote every 2 hours.
  {
    name             = "big-shortening"
    source           = "odds"
    kind             = "odds_quote"
    type             = "odds_shortening"
    params           = { points = 8, minutes = 60 }
    when             = "market == \"h2h\""
    cooldown_minutes = 120
  },
  # A spread or total moved 1.5 points (either way) from the previous quote within the
  # hour: NFL and NBA only; quiet at night.
  {
    name        = "line-move"
    source      = "odds"
    kind        = "odds_quote"
    type        = "line_move"
    params      = { points = 1.5, minutes = 60 }
    when        = "sport == \"americanfootball_nfl\" || sport == \"basketball_nba\""
    quiet_hours = "01:00-08:00"
  },
  # An outsider (6.0 or longer) drifted 25 % from its previous price; again only when it
  # drifts further (better = higher for a bettor), or after 3 hours.
  {
    name             = "long-shot-drift"
    source           = "odds"
    kind             = "odds_quote"
    when             = "market == \"h2h\" && price >= 6.0 && previous_change_percent >= 25.0"
    better           = "higher"
    cooldown_minutes = 180
  },
  # The dingerodds feed: one bookmaker shortening a moneyline by 5+ points in 30 minutes.
  {
    name   = "mlb-shortening"
    source = "dinger"
    kind   = "odds_quote"
    type   = "odds_shortening"
    params = { points = 5, minutes = 30 }
  },
]

# The alerter only receives odds quotes (the only kind here).
alerter_filter_kinds = ["odds_quote"]

subscribers = {
  # SMS for market moves and line moves in American football and basketball, New York
  # time (the line-move rule's quiet hours are his), at most 10 a day.
  carl = {
    sms           = "+15555550103"
    rules         = ["steam-move", "line-move"]
    subjects      = ["americanfootball_nfl", "basketball_nba"]
    time_zone     = "America/New_York"
    sms_daily_cap = 10
  }
  # Everything from The Odds API by e-mail, London time.
  dana = {
    email     = "dana@example.com"
    sources   = ["odds"]
    time_zone = "Europe/London"
  }
  # The whole feed by e-mail.
  desk = { email = "desk@example.com" }
}

# Account-wide SMS settings (one stack per account and region manages them).
sms_monthly_spend_limit = 10
sms_type                = "Transactional"

# alarm_actions = ["arn:aws:sns:us-east-1:123456789012:ops-alarms"]
