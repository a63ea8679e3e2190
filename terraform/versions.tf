terraform {
  # 1.11 is the first release with write-only resource arguments, used for the
  # source tokens (aws_ssm_parameter.value_wo, see secrets.tf) so that the
  # tokens never land in the plan or the state. 1.9+ would otherwise suffice
  # (cross-variable validation).
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.98+ has value_wo on aws_ssm_parameter; 5.100 is the version in the
      # offline mirror used by infra/scripts/tf-moto.sh.
      version = "~> 5.100"
    }
  }
}
