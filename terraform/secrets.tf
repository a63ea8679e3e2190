# Each source's secret (API token), read by the collector with ssm:GetParameter
# (WithDecryption) from its entry's secret_parameter, the first time a job of the source
# runs in a process.
#
# Why value_wo: Terraform 1.11 + AWS provider 5.100 support the write-only argument
# value_wo (tested against moto 5.2.1 and the provider: the token is written to SSM, and
# neither the plan nor terraform.tfstate contain it; state keeps value = "" and
# value_wo = null). Write-only arguments are not read back, so Terraform never sees
# drift: to rotate, pass the new token and bump the source's source_token_versions entry.
# If a source has no source_tokens entry a placeholder is written once and the real token
# is set out of band with
#   aws ssm put-parameter --name /<name>/<source>/token --type SecureString \
#     --overwrite --value '<token>'
# which later applies do not undo (unless the version is bumped).
resource "aws_ssm_parameter" "source_token" {
  for_each = local.secret_sources

  name        = "/${var.name}/${each.key}/token"
  description = "API token of the ${each.key} source (${local.source_module[each.key]} module) for the ${var.name} collector"
  type        = "SecureString"
  tier        = "Standard"
  key_id      = local.secrets_key_arn # kms.tf: the stack's key when kms_key_arn is unset

  value_wo         = try(var.source_tokens[each.key], null) != null ? var.source_tokens[each.key] : "PLACEHOLDER-set-with-aws-ssm-put-parameter"
  value_wo_version = lookup(var.source_token_versions, each.key, 1)

  lifecycle {
    # A parameter made before the stack had its own key keeps alias/aws/ssm: changing
    # key_id makes the provider rewrite the value it holds in state, which for a
    # write-only value is empty, and would blank a token set out of band. To move one to
    # the stack's key, delete the parameter and apply with its token in source_tokens.
    ignore_changes = [key_id]
  }
}

# The Travelpayouts token had its own resource before sources were configurable; its
# parameter (/<name>/travelpayouts/token) is kept, with the value it holds.
moved {
  from = aws_ssm_parameter.travelpayouts_token
  to   = aws_ssm_parameter.source_token["travelpayouts"]
}
