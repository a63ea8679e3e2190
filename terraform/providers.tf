# Production provider. Emulator settings (fake credentials, endpoints) live in
# infra/moto/emulator_override.tf.tmpl and are layered on by
# infra/scripts/tf-moto.sh in a scratch copy; nothing emulator-specific belongs here.
provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(
      {
        Project   = "pricewire"
        Stack     = var.name
        ManagedBy = "terraform"
      },
      var.tags,
    )
  }
}
