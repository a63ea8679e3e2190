# Sources: the module registry Terraform checks configuration against, and every source
# entry the collector gets (PRICEWIRE_SOURCES), with its secret's SSM parameter.
#
# A new source module adds one line to source_modules: its default auth (which decides
# whether it needs a secret), the record kinds it makes, and the options it takes with
# their allowed values. The Rust module checks the same things again at start.

locals {
  # Upstreams are reached over https; plain http only on loopback, where the twin's
  # simulators listen. The collector checks the same at start (settings.rs check_url).
  upstream_url_pattern = "^(https://[^\\s/?#]+|http://(localhost|127\\.[0-9]+\\.[0-9]+\\.[0-9]+|\\[::1\\])(:[0-9]+)?)(/[^\\s?#]*)?$"

  # Job parameters, checked at plan: each API's parameter names with a pattern for the
  # value, and the parameters it requires (each inner list: at least one of them). The
  # module checks the same again, and more (which month-matrix parameters go together),
  # when a run starts: travelpayouts.rs query(), odds.rs plan().
  month_or_date = "^[0-9]{4}-(0?[1-9]|1[0-2])(-(0?[1-9]|[12][0-9]|3[01]))?$"
  truth         = "^(true|false)$"
  one_to_1000   = "^([1-9][0-9]{0,2}|1000)$"
  key_list      = "^\\s*[a-z0-9_]{1,64}\\s*(,\\s*[a-z0-9_]{1,64}\\s*)*$"
  rfc3339       = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
  # Market jobs (binance.rs, bybit.rs, market.rs): one symbol or a list of them, a
  # series (klines by default), its interval or period, and how far the first run looks.
  symbol       = "^[A-Z0-9]{2,32}$"
  symbol_list  = "^\\s*[A-Z0-9]{2,32}\\s*(,\\s*[A-Z0-9]{2,32}\\s*)*$"
  series       = "^(klines|funding|open_interest)$"
  lookback     = "^[1-9][0-9]{0,5}[mhd]$"
  market_limit = "^[1-9][0-9]{0,3}$"
  market_job = {
    required = [["symbol", "symbols"]]
    params = {
      data      = local.series
      symbol    = local.symbol
      symbols   = local.symbol_list
      limit     = local.market_limit
      lookback  = local.lookback
      max_steps = local.one_to_1000
    }
  }

  source_modules = {
    travelpayouts = {
      auth    = { style = "header", name = "X-Access-Token" }
      kinds   = ["flight_price"]
      options = {}
      # Which option picks the jobs' API (null: one API), and the API when it is unset.
      variant_option  = null
      default_variant = "default"
      jobs = {
        default = {
          required = [["origin"], ["destination"]]
          params = {
            endpoint           = "^(prices_for_dates|v3|month-matrix|month_matrix)$"
            origin             = "^[A-Za-z]{3}$"
            destination        = "^[A-Za-z]{3}$"
            departure_at       = local.month_or_date
            return_at          = local.month_or_date
            month              = local.month_or_date
            currency           = "^[A-Za-z]{3}$"
            market             = "^[a-z]{2,8}$"
            limit              = local.one_to_1000
            page               = local.one_to_1000
            max_pages          = local.one_to_1000
            sorting            = "^(price|route)$"
            one_way            = local.truth
            direct             = local.truth
            unique             = local.truth
            show_to_affiliates = local.truth
            trip_duration      = "^[0-9]{1,3}$"
          }
        }
      }
    }
    odds = {
      auth            = { style = "query", name = "apiKey" }
      kinds           = ["odds_quote"]
      options         = { api = ["v4", "dingerodds"] }
      variant_option  = "api"
      default_variant = "v4"
      jobs = {
        v4 = {
          required = [["sport"], ["regions", "bookmakers"]]
          params = {
            sport            = "^[a-z0-9_]{1,64}$"
            regions          = "^\\s*(us|us2|uk|eu|au)\\s*(,\\s*(us|us2|uk|eu|au)\\s*)*$"
            bookmakers       = local.key_list
            markets          = local.key_list
            oddsFormat       = "^decimal$"
            dateFormat       = "^iso$"
            eventIds         = "^\\s*[A-Za-z0-9]+\\s*(,\\s*[A-Za-z0-9]+\\s*)*$"
            commenceTimeFrom = local.rfc3339
            commenceTimeTo   = local.rfc3339
          }
        }
        dingerodds = {
          required = [["sport"]]
          params = {
            sport     = "^[a-z0-9_]{1,64}$"
            market    = "^(moneyline|spread|total)$"
            limit     = "^([1-9][0-9]?|100)$"
            max_pages = local.one_to_1000
          }
        }
      }
    }
    # Option values: a list of the allowed ones, or "/<pattern>/" for a free value.
    binance = {
      auth            = { style = "none" }
      kinds           = ["candle", "funding_rate", "open_interest"]
      options         = { market = ["linear", "spot"], weight_budget = ["/^[1-9][0-9]{1,6}$/"] }
      variant_option  = null
      default_variant = "default"
      jobs = {
        default = merge(local.market_job, {
          params = merge(local.market_job.params, {
            interval = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$"
            derive   = "^(3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$"
            period   = "^(5m|15m|30m|1h|2h|4h|6h|12h|1d)$"
          })
        })
      }
    }
    # An upstream no module knows, declared in its entry's options alone (generic.rs):
    # where the records are, which fields are the key, price, time and currency, and how
    # pages follow each other. Its jobs' params are sent as query parameters, unchecked
    # here (the module checks their names at start). It has no default base_url.
    generic = {
      auth  = { style = "none" }
      kinds = ["price"]
      options = {
        path            = ["/^/[^?#\\s]*$/"]
        records         = ["/^(/.*)?$/"]
        key             = ["/^[^,]+(,[^,]+){0,7}$/"]
        price           = ["/^.{1,256}$/"]
        time            = ["/^.{1,256}$/"]
        currency        = ["/^.{1,256}$/"]
        fixed_currency  = ["/^[A-Z]{3}$/"]
        name            = ["/^.{1,256}$/"]
        pagination      = ["none", "page", "cursor", "link"]
        page_param      = ["/^[A-Za-z0-9_.\\[\\]-]{1,64}$/"]
        page_size_param = ["/^[A-Za-z0-9_.\\[\\]-]{1,64}$/"]
        page_size       = ["/^([1-9][0-9]{0,2}|1000)$/"]
        max_pages       = ["/^([1-9][0-9]{0,2}|1000)$/"]
        cursor_field    = ["/^.{1,256}$/"]
        cursor_param    = ["/^[A-Za-z0-9_.\\[\\]-]{1,64}$/"]
        max_steps       = ["/^([1-9][0-9]{0,2}|1000)$/"]
        "query.*"       = ["/^.{0,512}$/"]
      }
      variant_option  = null
      default_variant = "default"
      jobs            = {}
    }
    bybit = {
      auth            = { style = "none" }
      kinds           = ["candle", "funding_rate", "open_interest"]
      options         = {}
      variant_option  = null
      default_variant = "default"
      jobs = {
        default = merge(local.market_job, {
          params = merge(local.market_job.params, {
            category = "^(spot|linear|inverse)$"
            interval = "^(1m|3m|5m|15m|30m|1h|2h|4h|6h|12h|1d|1w)$"
            derive   = "^(3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w)$"
            period   = "^(5m|15m|30m|1h|4h|1d)$"
          })
        })
      }
    }
  }

  # Each job's parameter problems, named (schedules.tf fails the plan on any).
  job_param_spec = {
    for k, j in var.jobs : k => try(
      local.source_modules[local.source_module[j.source]].jobs[
        local.source_modules[local.source_module[j.source]].variant_option == null ? "default" : lookup(
          local.source_entries[j.source].options,
          local.source_modules[local.source_module[j.source]].variant_option,
          local.source_modules[local.source_module[j.source]].default_variant
        )
      ],
      null
    )
  }
  job_param_problems = {
    for k, j in var.jobs : k => local.job_param_spec[k] == null ? [] : concat(
      [for p in sort(keys(j.params)) : "params.${p} is not a parameter of this source (expected one of ${join(", ", sort(keys(local.job_param_spec[k].params)))})" if !contains(keys(local.job_param_spec[k].params), p)],
      [for p in sort(keys(j.params)) : "params.${p} = \"${j.params[p]}\" does not match ${local.job_param_spec[k].params[p]}" if contains(keys(local.job_param_spec[k].params), p) && !can(regex(local.job_param_spec[k].params[p], j.params[p]))],
      [for alts in local.job_param_spec[k].required : "params.${join(" or params.", alts)} is required" if length(setintersection(alts, keys(j.params))) == 0]
    )
  }

  # Every source a job or an entry names: an entry of var.sources, or a module's defaults.
  source_names = toset(concat(keys(var.sources), [for j in values(var.jobs) : j.source]))

  source_entries = {
    for name in local.source_names : name => merge(
      {
        module              = null
        base_url            = null
        auth                = null
        rate_limits         = {}
        concurrency         = null
        breaker             = {}
        quota_hold_seconds  = null
        options             = {}
        max_body_bytes      = null
        max_records_per_run = null
      },
      try(var.sources[name], {})
    )
  }

  source_module = { for name, s in local.source_entries : name => coalesce(s.module, name) }
  source_auth = {
    for name, s in local.source_entries : name => coalesce(s.auth, local.source_modules[local.source_module[name]].auth)
  }
  # Sources whose auth needs a secret: one SSM SecureString (and one IAM grant) each.
  secret_sources = toset([for name, a in local.source_auth : name if a.style != "none"])

  # What the collector reads; unset fields are left out (the module's defaults apply).
  collector_sources = {
    for name, s in local.source_entries : name => {
      for k, v in {
        module   = local.source_module[name]
        base_url = lookup(var.source_base_urls, name, s.base_url)
        auth = s.auth == null ? null : {
          for ak, av in s.auth : ak => av if av != null
        }
        secret_parameter = contains(local.secret_sources, name) ? "/${var.name}/${name}/token" : null
        rate_limits      = length(s.rate_limits) > 0 ? s.rate_limits : null
        concurrency      = s.concurrency
        breaker = s.breaker == null ? null : (length({ for bk, bv in s.breaker : bk => bv if bv != null }) > 0 ? {
          for bk, bv in s.breaker : bk => bv if bv != null
        } : null)
        quota_hold_seconds  = s.quota_hold_seconds
        options             = length(s.options) > 0 ? s.options : null
        max_body_bytes      = s.max_body_bytes
        max_records_per_run = s.max_records_per_run
      } : k => v if v != null
    }
  }
}
