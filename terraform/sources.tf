# Sources: the module registry Terraform checks configuration against, and every source
# entry the collector gets (PRICEWIRE_SOURCES), with its secret's SSM parameter.
#
# A new source module adds one line to source_modules: its default auth (which decides
# whether it needs a secret), the record kinds it makes, and the options it takes with
# their allowed values. The Rust module checks the same things again at start.

locals {
  source_modules = {
    travelpayouts = {
      auth    = { style = "header", name = "X-Access-Token" }
      kinds   = ["flight_price"]
      options = {}
    }
    odds = {
      auth    = { style = "query", name = "apiKey" }
      kinds   = ["odds_quote"]
      options = { api = ["v4", "dingerodds"] }
    }
  }

  # Every source a job or an entry names: an entry of var.sources, or a module's defaults.
  source_names = toset(concat(keys(var.sources), [for j in values(var.jobs) : j.source]))

  source_entries = {
    for name in local.source_names : name => merge(
      {
        module             = null
        base_url           = null
        auth               = null
        rate_limits        = {}
        concurrency        = null
        breaker            = {}
        quota_hold_seconds = null
        options            = {}
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
        quota_hold_seconds = s.quota_hold_seconds
        options            = length(s.options) > 0 ? s.options : null
      } : k => v if v != null
    }
  }
}
