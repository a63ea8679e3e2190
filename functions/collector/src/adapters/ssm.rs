//! SSM Parameter Store: each source's secret, a SecureString, read the first time a job of
//! that source runs in this process and kept for the next ones.

use crate::secrets::SecretStore;
use async_trait::async_trait;
use pricewire_pipeline::adapters::describe;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// SecureStrings, decrypted with the parameter's key.
pub struct SsmSecrets {
    client: aws_sdk_ssm::Client,
}

impl SsmSecrets {
    pub fn new(client: aws_sdk_ssm::Client) -> SsmSecrets {
        SsmSecrets { client }
    }
}

#[async_trait]
impl SecretStore for SsmSecrets {
    async fn secret(&self, parameter: &str) -> Result<Secret, String> {
        secure_string(&self.client, parameter).await
    }
}

/// Reads and decrypts a SecureString. Errors name the parameter, never its value.
pub async fn secure_string(client: &aws_sdk_ssm::Client, name: &str) -> Result<Secret, String> {
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| format!("SSM parameter {name}: {}", describe(&e)))?;
    match out.parameter().and_then(|p| p.value()) {
        Some(v) if !v.is_empty() => Ok(Secret::new(v.to_string())),
        _ => Err(format!("SSM parameter {name}: empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new("tok-123".into())),
            "Secret(***)"
        );
    }
}
