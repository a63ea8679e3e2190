//! One adapter per external service, each behind a small trait so the handlers can be
//! tested with fakes, and the adapters with `aws-smithy-mocks`.

pub mod dynamodb;
pub mod http;
pub mod kinesis;
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod ssm;

use crate::backoff::RetryPolicy;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use backon::Retryable;
use std::future::Future;

/// Error codes AWS services use for throttling and transient server faults.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "KMSThrottlingException",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "TransactionConflictException",
];

/// Whether an SDK call is worth repeating: throttling, 5xx, timeouts and transport errors are;
/// validation, access and not-found errors are not.
pub fn is_retryable<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            se.err()
                .code()
                .is_some_and(|c| RETRYABLE_CODES.contains(&c))
                || se.raw().status().is_server_error()
        }
        _ => false,
    }
}

/// An SDK error as one line with its code and message (`SdkError`'s Display says only
/// "service error").
pub fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &SdkError<E, HttpResponse>,
) -> String {
    match err {
        SdkError::ServiceError(se) => match se.err().code() {
            Some(code) => format!("{code}: {}", se.err().message().unwrap_or("(no message)")),
            None => DisplayErrorContext(se.err()).to_string(),
        },
        other => DisplayErrorContext(other).to_string(),
    }
}

/// One SDK call under an adapter's retry policy, repeating only what [`is_retryable`]
/// says is worth repeating: `(|| client.op().send()).retried(policy).await`.
pub(crate) trait RetriedCall<T, E> {
    async fn retried(self, policy: RetryPolicy) -> Result<T, SdkError<E, HttpResponse>>;
}

impl<T, E, F, Fut> RetriedCall<T, E> for F
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata,
{
    async fn retried(self, policy: RetryPolicy) -> Result<T, SdkError<E, HttpResponse>> {
        self.retry(policy)
            .when(is_retryable)
            .sleep(tokio::time::sleep)
            .await
    }
}
