//! Who runs a shard: its task, or a caller that finds it free ([`Seat`]).
//!
//! A shard's state is held in a seat that one party at a time occupies. The shard task takes
//! it for each socket event, inbound input or timer, and drains before leaving; a request from
//! the [`Handle`](crate::Handle) (a publish over HTTP, a connection opening, a join) takes it
//! directly on the caller's own thread when nobody holds it, runs, drains and answers, with no
//! hand-off to the task and back. Under fan-out that hand-off decided when the publish reached
//! the writers: every publish woke the shard task on the other core, which woke the writers
//! there, and each found fewer frames to write per wake-up. A request that finds the seat taken
//! is queued through the shard's inbox as before ([`Command::Call`](crate::shard::Command)), so
//! no caller ever waits on a lock another thread holds; only the task does, for at most one
//! request's run and drain, which never awaits anything.
//!
//! The hub's order is the order in which the seat was taken: a caller's requests stay in order
//! because each is answered before the next is made, and a connection's socket events stay in
//! order because they all go through the task. A request does not overtake what sockets
//! delivered before it was made either (a client's close, then a publish to its user, must find
//! the connection closed and keep the message for the next one): a connection's events are
//! counted from the moment they are sent to the task until it has fed them ([`SocketInbox`]),
//! and a request runs directly only while none is waiting. Flush reports are not counted: they
//! only hand the hub back budget, and under fan-out thousands of them are always in flight.
//!
//! A request run directly can schedule a timer earlier than the one the task sleeps until (a
//! new connection's heartbeat, a waiter's deadline): it then rings the task, which rearms. When
//! the task stops it empties the seat, so the shard's state (and with it the application's
//! event inbox) is dropped, and later requests answer [`Error::Stopped`].

use crate::error::Error;
use crate::shard::{Command, Shard, SocketEvent};
use async_channel::{Receiver, Sender, TrySendError};
use futures_util::future::{self, Either};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Instant;
use switchboard::ConnId;

/// A shard's state, shared by its task and the callers that run on it directly (see the
/// module docs).
#[derive(Clone)]
pub(crate) struct Seat {
    /// The shard, or `None` once its task stopped (or a hub panicked while in it).
    shard: Arc<Mutex<Option<Shard>>>,
    /// Rung when a direct run scheduled a timer earlier than the one the task sleeps until.
    rearm: Sender<()>,
    /// What a request run directly would overtake: socket events sent to the task and not fed
    /// yet (flush reports aside), and the task itself while it waits for the seat.
    ahead: Arc<AtomicUsize>,
}

impl Seat {
    /// A seat holding `shard`, and the receiver of its rings for the task.
    pub fn new(shard: Shard) -> (Self, Receiver<()>) {
        let (rearm, rung) = async_channel::bounded(1);
        let seat = Seat {
            shard: Arc::new(Mutex::new(Some(shard))),
            rearm,
            ahead: Arc::default(),
        };
        (seat, rung)
    }

    /// Run `f` and drain on the caller's thread if nobody holds the shard and nothing waits
    /// ahead of the request (a socket event for the task, the task itself); `f` is handed back
    /// otherwise.
    pub fn try_call<T, F>(&self, f: F) -> Result<Result<T, Error>, F>
    where
        F: FnOnce(&mut Shard, Instant) -> T,
    {
        let mut guard = match self.shard.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => return Err(f),
            Err(TryLockError::Poisoned(_)) => return Ok(Err(Error::Stopped)),
        };
        if self.ahead.load(Ordering::SeqCst) > 0 {
            return Err(f);
        }
        let Some(shard) = guard.as_mut() else {
            return Ok(Err(Error::Stopped));
        };
        let result = f(shard, Instant::now());
        shard.drain();
        if earlier(shard.hub.poll_timeout(), shard.armed) {
            // Full means a ring is already pending: the task rearms once for both.
            let _ = self.rearm.try_send(());
        }
        Ok(Ok(result))
    }

    /// Take the shard for the task, waiting for a caller in it to finish; `None` once the
    /// shard stopped (a hub that panicked in a caller's run stops it too). While the task
    /// waits, requests go through its inbox instead of taking the seat before it: however many
    /// callers publish at once, the task has its turn after the run in progress.
    pub fn take(&self) -> Option<Occupied<'_>> {
        self.ahead.fetch_add(1, Ordering::SeqCst);
        let guard = self.shard.lock();
        self.ahead.fetch_sub(1, Ordering::SeqCst);
        let guard = guard.ok()?;
        guard.is_some().then_some(Occupied(guard))
    }

    /// Empty the seat: the shard's state is dropped and later requests answer
    /// [`Error::Stopped`].
    pub fn stop(&self) {
        drop(
            self.shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
    }

    /// The way `commands` (the task's inbox) takes a connection's socket events, counting
    /// those a request must not overtake.
    pub fn socket_inbox(&self, commands: Sender<Command>) -> SocketInbox {
        SocketInbox {
            commands,
            ahead: self.ahead.clone(),
        }
    }

    /// The task fed `event`, which its connection's inbox counted if a request must not
    /// overtake it (called while the task holds the seat).
    pub fn fed(&self, event: &SocketEvent) {
        if waits_its_turn(event) {
            self.ahead.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A connection's way to its shard's task (see the module docs).
#[derive(Clone)]
pub(crate) struct SocketInbox {
    commands: Sender<Command>,
    ahead: Arc<AtomicUsize>,
}

impl SocketInbox {
    /// Queue `event` for the task, waiting for room; an error once the shard stopped.
    ///
    /// Queued at once, as this is called, when there is room (nearly always); only a full
    /// inbox makes the returned future wait, boxed then, so that a connection's task keeps no
    /// room for the wait the rest of the time and a writer's flush report allocates nothing.
    pub fn send(
        &self,
        conn: ConnId,
        event: SocketEvent,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        let counted = waits_its_turn(&event);
        if counted {
            self.ahead.fetch_add(1, Ordering::SeqCst);
        }
        let failed = move || {
            if counted {
                self.ahead.fetch_sub(1, Ordering::SeqCst);
            }
            Error::Stopped
        };
        match self.commands.try_send(Command::Socket { conn, event }) {
            Ok(()) => Either::Left(future::ready(Ok(()))),
            Err(TrySendError::Full(command)) => Either::Right(Box::pin(async move {
                self.commands.send(command).await.map_err(|_| failed())
            })),
            Err(TrySendError::Closed(_)) => Either::Left(future::ready(Err(failed()))),
        }
    }
}

/// True for a socket event a request made after it was sent must not overtake: everything but a
/// flush report.
fn waits_its_turn(event: &SocketEvent) -> bool {
    !matches!(event, SocketEvent::Flushed(_))
}

/// The task in the seat: the shard, until dropped.
pub(crate) struct Occupied<'a>(MutexGuard<'a, Option<Shard>>);

impl std::ops::Deref for Occupied<'_> {
    type Target = Shard;

    fn deref(&self) -> &Shard {
        self.0.as_ref().expect("occupied seats hold a shard")
    }
}

impl std::ops::DerefMut for Occupied<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        self.0.as_mut().expect("occupied seats hold a shard")
    }
}

/// True if `wake` is due before `armed` (`None`: no timer).
fn earlier(wake: Option<Instant>, armed: Option<Instant>) -> bool {
    match (wake, armed) {
        (Some(wake), Some(armed)) => wake < armed,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::NodeRoster;
    use crate::shard::Relays;
    use futures_util::FutureExt;
    use std::time::Duration;
    use switchboard::{Config, Hub};

    fn seat() -> (Seat, Receiver<()>) {
        let (events, _) = async_channel::unbounded();
        let (own, _) = async_channel::unbounded();
        let relays = Relays {
            siblings: Vec::new(),
            own,
            roster: NodeRoster::default(),
        };
        Seat::new(Shard::new(
            0,
            Hub::new(Config::default()),
            events,
            None,
            relays,
        ))
    }

    #[test]
    fn a_free_shard_runs_the_request_on_the_callers_thread() {
        let (seat, _rung) = seat();
        let caller = std::thread::current().id();
        let ran_on = seat.try_call(|_, _| std::thread::current().id());
        assert!(matches!(ran_on, Ok(Ok(id)) if id == caller));
    }

    #[test]
    fn a_busy_shard_hands_the_request_back_unrun() {
        let (seat, _rung) = seat();
        let held = seat.take().expect("running");
        let mut ran = false;
        assert!(seat.try_call(|_, _| ran = true).is_err());
        drop(held);
        assert!(!ran);
    }

    #[test]
    fn a_sooner_timer_rings_the_task_and_a_later_one_does_not() {
        let (seat, rung) = seat();
        let soon = Instant::now() + Duration::from_millis(50);
        let user = switchboard::UserId::from("nobody");
        let waited = seat.try_call(|s, _| s.hub.wait_for_connection(&user, soon));
        assert!(matches!(waited, Ok(Ok(_))));
        assert_eq!(
            rung.try_recv(),
            Ok(()),
            "a deadline before the task's timer"
        );
        seat.take().expect("running").armed = Some(soon);
        let later = soon + Duration::from_secs(60);
        let waited = seat.try_call(|s, _| s.hub.wait_for_connection(&user, later));
        assert!(matches!(waited, Ok(Ok(_))));
        assert!(rung.try_recv().is_err(), "the task already wakes sooner");
    }

    #[test]
    fn a_request_never_overtakes_a_socket_event_sent_before_it() {
        let (seat, _rung) = seat();
        let (commands, queued) = async_channel::bounded(4);
        let inbox = seat.socket_inbox(commands);
        let opened = seat.try_call(|s, now| s.hub.open(now, switchboard::Open::new("alice")));
        let Ok(Ok(Ok(conn))) = opened else {
            panic!("alice's connection opens");
        };
        let send = |event| inbox.send(conn, event).now_or_never().expect("room");
        send(SocketEvent::Flushed(1)).expect("sent");
        assert!(
            seat.try_call(|_, _| ()).is_ok(),
            "a flush report is no turn"
        );
        send(SocketEvent::Closed).expect("sent");
        assert!(seat.try_call(|_, _| ()).is_err(), "the close is fed first");
        for command in [queued.try_recv(), queued.try_recv()] {
            let Ok(Command::Socket { event, .. }) = command else {
                panic!("a socket event");
            };
            seat.fed(&event);
        }
        assert!(seat.try_call(|_, _| ()).is_ok(), "nothing left ahead");
    }

    #[test]
    fn a_stopped_shard_answers_stopped() {
        let (seat, _rung) = seat();
        seat.stop();
        assert!(seat.take().is_none());
        assert!(matches!(seat.try_call(|_, _| ()), Ok(Err(Error::Stopped))));
    }

    #[test]
    fn only_a_sooner_timer_rings_the_task() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert!(earlier(Some(now), Some(later)));
        assert!(earlier(Some(now), None));
        assert!(!earlier(Some(later), Some(now)));
        assert!(!earlier(Some(now), Some(now)));
        assert!(!earlier(None, Some(now)));
        assert!(!earlier(None, None));
    }
}
