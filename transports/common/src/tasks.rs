//! The connection tasks that [`Handle::shutdown`](crate::Handle::shutdown) waits for, on any
//! runtime: each is spawned detached, abortable, and holds a token whose end tells shutdown
//! it finished.

use crate::runtime::{self, Runtime};
use futures_util::future::{AbortHandle, Abortable};
use slab::Slab;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The tasks of open connections; closed for new ones once shutdown takes them.
pub(crate) struct Tasks {
    open: Mutex<Option<Running>>,
    /// Ends (returns an error) once every token is dropped: every task finished.
    ended: async_channel::Receiver<()>,
}

/// What shutdown takes: the tokens' source and a way to abort each task still running.
struct Running {
    alive: async_channel::Sender<()>,
    aborts: Slab<AbortHandle>,
}

impl Tasks {
    pub fn new() -> Arc<Self> {
        let (alive, ended) = async_channel::bounded(1);
        Arc::new(Self {
            open: Mutex::new(Some(Running {
                alive,
                aborts: Slab::new(),
            })),
            ended,
        })
    }

    /// Spawn `task` on `runtime`, tracked. Once shutdown has started, `task` is handed back.
    pub fn spawn<R: Runtime, F>(self: &Arc<Self>, runtime: &R, task: F) -> Result<(), F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (abort, registration) = AbortHandle::new_pair();
        let (key, token) = match self.open.lock().expect("not poisoned").as_mut() {
            Some(running) => (running.aborts.insert(abort), running.alive.clone()),
            None => return Err(task),
        };
        let tasks = Arc::clone(self);
        runtime.spawn(async move {
            let _alive = token;
            let _ = Abortable::new(task, registration).await;
            if let Some(running) = tasks.open.lock().expect("not poisoned").as_mut() {
                running.aborts.remove(key);
            }
        });
        Ok(())
    }

    /// Refuse new tasks, wait up to `grace` for the running ones, then abort the rest and
    /// wait for them to stop. Later calls return at once.
    pub async fn shutdown<R: Runtime>(&self, runtime: &R, grace: Duration) {
        let Some(Running { alive, aborts }) = self.open.lock().expect("not poisoned").take() else {
            return;
        };
        drop(alive);
        if runtime::timeout(runtime, grace, self.ended.recv())
            .await
            .is_none()
        {
            tracing::warn!(
                left = aborts.len(),
                "shutdown grace over: dropping connections"
            );
            for (_, abort) in &aborts {
                abort.abort();
            }
            let _ = self.ended.recv().await;
        }
    }
}
