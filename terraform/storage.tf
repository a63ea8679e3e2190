# ---------------------------------------------------------------------------
# DynamoDB
# ---------------------------------------------------------------------------

# Price history, changes only (functions/pipeline/src/table.rs): per entity (pk), one
# change item per stored change (sk T#<time>…, in time order) and one entity item
# (sk E) that the sparse KEYS_ONLY GSI latest_by_source lists per source and kind. No
# index projects ALL: a change item is one write unit and touches no index.
resource "aws_dynamodb_table" "prices" {
  name         = "${var.name}-prices"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  # The alerter reads the changes as they are stored (a new change item is an INSERT).
  stream_enabled   = true
  stream_view_type = "NEW_AND_OLD_IMAGES"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "lpk"
    type = "S"
  }

  attribute {
    name = "lsk"
    type = "S"
  }

  global_secondary_index {
    name            = "latest_by_source"
    hash_key        = "lpk"
    range_key       = "lsk"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  # enabled = true without a key = the AWS managed key alias/aws/dynamodb.
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  lifecycle {
    precondition {
      condition     = var.history_ttl_days >= max(concat([0], var.stat_windows_days)...)
      error_message = "history_ttl_days must be at least the widest of stat_windows_days: a statistics window cannot reach past what the table keeps."
    }
  }
}

# Alert de-duplication state (conditional writes by the alerter).
resource "aws_dynamodb_table" "state" {
  name         = "${var.name}-state"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"
  range_key    = "sk"

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# ---------------------------------------------------------------------------
# S3 archive: raw/ (gzip upstream responses) and quarantine/ (rejected records)
# ---------------------------------------------------------------------------

resource "aws_s3_bucket" "archive" {
  #checkov:skip=CKV_AWS_18:Access logging would need a second bucket; the archive is written only by the pipeline's own roles.
  #checkov:skip=CKV_AWS_21:Objects are write-once under unique keys and expire by lifecycle; versioning would only add cost.
  #checkov:skip=CKV_AWS_144:Cross-region replication is not needed for a re-collectable raw archive.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications.
  #checkov:skip=CKV_AWS_145:SSE-KMS is used when kms_key_arn is set; SSE-S3 otherwise by design.
  bucket        = local.archive_bucket_name
  force_destroy = var.force_destroy_bucket
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket = aws_s3_bucket.archive.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.use_cmk ? "aws:kms" : "AES256"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests (and cost) when a CMK is used.
    bucket_key_enabled = local.use_cmk
  }
}

data "aws_iam_policy_document" "archive_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.archive.arn,
      "${aws_s3_bucket.archive.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "archive" {
  bucket = aws_s3_bucket.archive.id
  policy = data.aws_iam_policy_document.archive_bucket.json

  # S3 rejects some policies while the public access block is being applied.
  depends_on = [aws_s3_bucket_public_access_block.archive]
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id

  # Note: since 2024 S3 by default does not transition objects smaller than
  # 128 KiB; small gzip responses stay in STANDARD until they expire.
  rule {
    id     = "raw-archive"
    status = "Enabled"

    filter {
      prefix = "raw/"
    }

    transition {
      days          = var.raw_archive_ia_days
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = var.raw_archive_expire_days
    }
  }

  rule {
    id     = "quarantine"
    status = "Enabled"

    filter {
      prefix = "quarantine/"
    }

    expiration {
      days = var.quarantine_expire_days
    }
  }

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_ownership_controls.archive]
}
