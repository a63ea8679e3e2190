//! The adapters every function shares, each behind a small trait defined beside the code
//! that uses it: the S3 archive (collector and consumer) and checkpoints (stream readers),
//! with in-memory twins in `memory`. A function's own adapters live in its crate.
//! The retry wrapper here is the one every AWS adapter uses.

pub mod dynamodb;
pub mod memory;
pub mod s3;
use crate::backoff::RetryPolicy;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
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

/// A conditional write's outcome: `Ok(true)` written, `Ok(false)` its condition did not
/// hold (`ConditionalCheckFailedException`), else the error as one line.
pub fn conditional<T, E: ProvideErrorMetadata + std::error::Error + 'static>(
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<bool, dynamodb::StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(se))
            if se.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(dynamodb::StoreError(describe(&e))),
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
// Only implemented below, for closures: callers see the concrete future, Send included.
#[allow(async_fn_in_trait)]
pub trait RetriedCall<T, E> {
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
