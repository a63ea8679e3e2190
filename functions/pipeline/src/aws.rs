//! The one place that builds AWS clients.
//!
//! Endpoints come from the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! variables, so the same binary talks to AWS or to an emulator without a code change.
//!
//! DynamoDB and S3 every function uses; the other services are cargo features, so a
//! function crate depends only on the SDKs it calls (the consumer has no SNS, SSM or
//! Kinesis client, the alerter no Kinesis or SSM).

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};

pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The trusted roots every HTTPS client of the process uses: Mozilla's, compiled in
/// (`webpki-root-certs`). The system store is not read: rustls-native-certs reads the
/// bundle and every file of the certificate directory at start, a cold-start cost, and
/// twice in the collector (the SDK's client and reqwest's). AWS endpoints (Amazon Root
/// CA 1–4, Starfield) and the upstream APIs chain to these roots.
pub fn root_certificates() -> impl ExactSizeIterator<Item = &'static [u8]> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| der.as_ref())
}

/// The roots as one PEM bundle: the SDK's trust store takes PEM only.
fn roots_pem() -> Vec<u8> {
    use base64::Engine;
    let mut pem = Vec::with_capacity(root_certificates().len() * 2048);
    for der in root_certificates() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// The SDK's HTTP client: the SDKs' own (hyper, rustls with aws-lc), trusting
/// [`root_certificates`] instead of the system store.
fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(roots_pem());
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Not reachable with compiled-in roots; the default context trusts the system store.
        Err(e) => {
            tracing::warn!(error = %e, "compiled-in trust roots refused; using the system store");
            builder.build_https()
        }
    }
}

/// Configuration for an AWS emulator (moto) at `endpoint`, with fake credentials: what the
/// local twin and the integration tests use instead of the environment.
pub async fn emulator(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

fn endpoint_overridden(config: &SdkConfig, service_env: &str) -> bool {
    config.endpoint_url().is_some() || std::env::var_os(service_env).is_some()
}

#[cfg(feature = "kinesis")]
pub fn kinesis(config: &SdkConfig) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(config)
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// S3 with path-style addressing when the endpoint is overridden: virtual-host style needs
/// DNS for `<bucket>.<host>`, which an emulator on loopback does not have.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = endpoint_overridden(config, "AWS_ENDPOINT_URL_S3");
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

#[cfg(feature = "sns")]
pub fn sns(config: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(config)
}

#[cfg(feature = "ssm")]
pub fn ssm(config: &SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(config)
}

#[cfg(feature = "sqs")]
pub fn sqs(config: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_make_one_pem_bundle_of_every_certificate() {
        let pem = String::from_utf8(roots_pem()).unwrap();
        assert!(root_certificates().len() > 100);
        assert_eq!(
            pem.matches("-----BEGIN CERTIFICATE-----").count(),
            root_certificates().len()
        );
        // The SDK's trust store accepts it.
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(pem.into_bytes());
        assert!(TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .is_ok());
    }
}
