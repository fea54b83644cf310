//! A command connection to Redis that reconnects by itself, with capped exponential backoff.

use crate::counters::Counters;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The first and the largest wait between two connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn next(&self, current: Duration) -> Duration {
        (current * 2).clamp(self.min, self.max)
    }
}

/// One multiplexed connection shared by the bridge's tasks. While Redis is unreachable,
/// requests fail at once (they never wait for Redis) and a new connection is attempted after
/// a wait that doubles up to the cap.
pub(crate) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    backoff: Backoff,
    counters: Arc<Counters>,
    state: Mutex<State>,
}

struct State {
    conn: Option<MultiplexedConnection>,
    wait: Duration,
    retry_at: Option<Instant>,
    lost: bool,
}

impl Link {
    pub fn new(
        client: Client,
        timeout: Duration,
        backoff: Backoff,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(timeout),
            backoff,
            counters,
            state: Mutex::new(State {
                conn: None,
                wait: backoff.min,
                retry_at: None,
                lost: false,
            }),
        }
    }

    /// The current connection, or a new one if the backoff allows an attempt.
    pub async fn conn(&self) -> RedisResult<MultiplexedConnection> {
        let mut state = self.state.lock().await;
        if let Some(conn) = &state.conn {
            return Ok(conn.clone());
        }
        if state.retry_at.is_some_and(|at| Instant::now() < at) {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "redis is unreachable; waiting before the next attempt",
            )));
        }
        match self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
        {
            Ok(conn) => {
                if state.lost {
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("redis connection restored");
                }
                *state = State {
                    conn: Some(conn.clone()),
                    wait: self.backoff.min,
                    retry_at: None,
                    lost: false,
                };
                Ok(conn)
            }
            Err(e) => {
                state.retry_at = Some(Instant::now() + state.wait);
                state.wait = self.backoff.next(state.wait);
                state.lost = true;
                Err(e)
            }
        }
    }

    /// Forget the connection if `result` shows that it is broken.
    pub async fn check<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if broken(e) {
                let mut state = self.state.lock().await;
                if state.conn.take().is_some() {
                    tracing::warn!(error = %e, "redis connection lost");
                    state.lost = true;
                }
            }
        }
        result
    }
}

/// True for errors that mean the connection itself is gone.
pub(crate) fn broken(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        let mut wait = backoff.min;
        let mut waits = Vec::new();
        for _ in 0..4 {
            wait = backoff.next(wait);
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [200, 350, 350, 350]);
    }
}
