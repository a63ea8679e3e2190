//! Each source's secret, from where it is kept (SSM SecureString in AWS), fetched the
//! first time a job of that source runs in this process and kept for the next ones: a
//! cold start pays for the secrets its jobs use, not for every source's.

use crate::adapters::ssm::Secret;
use async_trait::async_trait;
use std::collections::HashMap;
use tokio::sync::Mutex;

/// The one capability: read one secret by its parameter name.
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn secret(&self, parameter: &str) -> Result<Secret, String>;
}

/// Remembers what a store answered, per parameter, for the life of the process.
pub struct CachedSecrets<S> {
    inner: S,
    cache: Mutex<HashMap<String, Secret>>,
}

impl<S: SecretStore> CachedSecrets<S> {
    pub fn new(inner: S) -> CachedSecrets<S> {
        CachedSecrets {
            inner,
            cache: Mutex::default(),
        }
    }
}

#[async_trait]
impl<S: SecretStore> SecretStore for CachedSecrets<S> {
    async fn secret(&self, parameter: &str) -> Result<Secret, String> {
        if let Some(s) = self.cache.lock().await.get(parameter) {
            return Ok(s.clone());
        }
        // Read without the lock: different parameters are read at once (cold start).
        let s = self.inner.secret(parameter).await?;
        self.cache
            .lock()
            .await
            .insert(parameter.to_string(), s.clone());
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    #[async_trait]
    impl SecretStore for Counting {
        async fn secret(&self, parameter: &str) -> Result<Secret, String> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(Secret::new(format!("value of {parameter}")))
        }
    }

    #[tokio::test]
    async fn each_parameter_is_read_once_per_process() {
        let s = CachedSecrets::new(Counting(AtomicUsize::new(0)));
        for _ in 0..3 {
            assert_eq!(s.secret("/a").await.unwrap().expose(), "value of /a");
        }
        s.secret("/b").await.unwrap();
        assert_eq!(s.inner.0.load(Ordering::Relaxed), 2);
    }
}
