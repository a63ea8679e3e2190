# A key of the stack's own for what must never be readable with a plain AWS managed key:
# the functions' logs and the sources' tokens. Made only when kms_key_arn is unset (with
# it set, that key encrypts everything). One key costs about 1 USD a month plus requests.
#
# Why: a token under alias/aws/ssm can be decrypted by any principal of the account that
# may call ssm:GetParameter on it (the AWS managed key's policy allows every caller via
# SSM); under this key it also takes a kms:Decrypt grant, which only the collector role
# has (through SSM). The log groups' data is encrypted under a key whose policy names
# only this stack's log groups, which the operator can audit, disable or delete (reading
# the logs is still governed by the logs: permissions).

resource "aws_kms_key" "stack" {
  count = local.use_cmk ? 0 : 1

  description             = "${var.name}: function logs and source tokens"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.stack_key[0].json
}

resource "aws_kms_alias" "stack" {
  count = local.use_cmk ? 0 : 1

  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.stack[0].key_id
}

data "aws_iam_policy_document" "stack_key" {
  count = local.use_cmk ? 0 : 1

  statement {
    # The account administers the key; IAM policies grant its use (the collector's
    # KmsViaSsm statement).
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    # CloudWatch Logs encrypts and decrypts this stack's log groups only.
    sid       = "LogsOfThisStack"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.aws_region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:/aws/lambda/${var.name}-*"]
    }
  }
}

locals {
  # The key of the log groups and the token parameters: the operator's, or the stack's.
  secrets_key_arn = local.use_cmk ? var.kms_key_arn : aws_kms_key.stack[0].arn
}
