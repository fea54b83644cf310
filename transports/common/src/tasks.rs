//! The connections that [`Handle::shutdown`](crate::Handle::shutdown) waits for, on any
//! runtime: each runs abortable, in a task spawned for it or in its caller's own task, and
//! holds a token whose end tells shutdown it finished. Running a connection in its caller's
//! task (the WebSocket upgrade's, say) rather than in a second one spares every connection a
//! task and the room its future takes twice.

use crate::runtime::{self, Runtime};
use futures_util::future::{AbortHandle, Abortable};
use futures_util::FutureExt;
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
        runtime.spawn(self.track(task)?);
        Ok(())
    }

    /// `task`, tracked, to run wherever the caller polls it: shutdown waits for it to finish
    /// (or to be dropped), and aborts it after the grace. Once shutdown has started, `task` is
    /// handed back.
    pub fn track<F>(self: &Arc<Self>, task: F) -> Result<impl Future<Output = ()>, F>
    where
        F: Future<Output = ()>,
    {
        let (abort, registration) = AbortHandle::new_pair();
        let (key, alive) = match self.open.lock().expect("not poisoned").as_mut() {
            Some(running) => (running.aborts.insert(abort), running.alive.clone()),
            None => return Err(task),
        };
        let tracked = Tracked {
            tasks: Arc::clone(self),
            key,
            _alive: alive,
        };
        // A combinator, not an async block: that would keep `task` twice, as what it captured
        // and as what it awaits, for as long as the connection lives.
        Ok(Abortable::new(task, registration).map(move |_| drop(tracked)))
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

/// A tracked task's registration, given back when the task finishes or is dropped.
struct Tracked {
    tasks: Arc<Tasks>,
    key: usize,
    /// Its end (with every other token's) tells shutdown that all tasks finished.
    _alive: async_channel::Sender<()>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(running) = self.tasks.open.lock().expect("not poisoned").as_mut() {
            running.aborts.remove(self.key);
        }
    }
}
