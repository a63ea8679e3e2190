# Travelpayouts API token, read by the collector with ssm:GetParameter
# (WithDecryption) from PRICEWIRE_TOKEN_PARAMETER.
#
# Why value_wo: Terraform 1.11 + AWS provider 5.100 support the write-only
# argument value_wo (tested against moto 5.2.1 and the provider: the token is
# written to SSM, and neither the plan nor terraform.tfstate contain it; state
# keeps value = "" and value_wo = null). Write-only arguments are not read back,
# so Terraform never sees drift: to rotate, pass the new token and bump
# travelpayouts_token_version. If travelpayouts_token is null a placeholder is
# written once and the real token is set out of band with
#   aws ssm put-parameter --name /<name>/travelpayouts/token --type SecureString \
#     --overwrite --value '<token>'
# which later applies do not undo (unless the version is bumped).
resource "aws_ssm_parameter" "travelpayouts_token" {
  name        = local.token_parameter_name
  description = "Travelpayouts API token for the ${var.name} collector"
  type        = "SecureString"
  tier        = "Standard"
  key_id      = var.kms_key_arn # null = alias/aws/ssm

  value_wo         = var.travelpayouts_token != null ? var.travelpayouts_token : "PLACEHOLDER-set-with-aws-ssm-put-parameter"
  value_wo_version = var.travelpayouts_token_version
}
