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

/// What Terraform writes when no token was given (see `terraform/secrets.tf`).
pub const PLACEHOLDER_PREFIX: &str = "PLACEHOLDER";
/// The longest secret accepted (SSM Standard parameters hold 4 KB).
const SECRET_MAX_BYTES: usize = 4096;

impl Secret {
    /// Whether the value can be a real token: not Terraform's placeholder, no whitespace
    /// or control characters (a trailing newline from `echo`), printable ASCII (it travels
    /// as a header value or a query parameter). Says what is wrong, never the value.
    pub fn check(&self) -> Result<(), String> {
        let v = self.0.as_str();
        if v.starts_with(PLACEHOLDER_PREFIX) {
            return Err(
                "is still the placeholder: set it with aws ssm put-parameter --overwrite".into(),
            );
        }
        if v.is_empty() || v.len() > SECRET_MAX_BYTES {
            return Err(format!("is not 1 to {SECRET_MAX_BYTES} bytes"));
        }
        if let Some(i) = v.find(|c: char| c.is_whitespace() || c.is_control() || !c.is_ascii()) {
            return Err(format!(
                "has whitespace or a character that is not printable ASCII at byte {i} of {} (a trailing newline?)",
                v.len()
            ));
        }
        Ok(())
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
    fn placeholders_and_mangled_tokens_are_refused_without_showing_them() {
        assert!(Secret::new("tok-123_ABC.xyz".into()).check().is_ok());
        for (bad, why) in [
            ("PLACEHOLDER-set-with-aws-ssm-put-parameter", "placeholder"),
            ("tok-123\n", "trailing newline"),
            ("tok 123", "whitespace"),
            ("tok-é", "printable ASCII"),
            ("", "1 to 4096"),
        ] {
            let err = Secret::new(bad.into()).check().unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(bad.is_empty() || !err.contains(bad.trim()), "{err}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(
            format!("{:?}", Secret::new("tok-123".into())),
            "Secret(***)"
        );
    }
}
