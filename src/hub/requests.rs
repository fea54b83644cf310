//! The application's requests to the [`Hub`]: publishing, agent run events, rooms and threads
//! on the server's initiative, token refresh answers, answers to application frames, closing
//! connections, waiting for a user, shutting down. Each borrows the parts it needs, runs the
//! rule, and ends the operation (`finish`) like every input.

use super::membership::Ask;
use super::reply::Reply;
use super::{agent, membership, refresh, Fanout, Hub, Parts};
use crate::error::{PublishError, RoomError, UnknownConnection};
use crate::id::{ConnId, RoomId, RunId, ThreadId, UserId};
use crate::io::{AgentUpdate, Answer, ClientRef, Delivery, RefreshGrant, RefreshRefusal, WaiterId};
use crate::message::Message;
use crate::protocol::ServerFrame;
use crate::reason::Reason;
use crate::target::{Audience, Target};
use std::time::Instant;

impl Hub {
    /// Publish `message` to `to`. The frame is serialized once and shared by every recipient.
    /// Messages to a user, a thread or a room are sequenced in their stream and kept in its
    /// history; to a user with no open connection they are buffered there. Never waits for any
    /// connection: a slow one is queued, coalesced or closed by the backpressure rules.
    pub fn publish(
        &mut self,
        now: Instant,
        to: impl Into<Audience>,
        message: &Message,
    ) -> Result<Delivery, PublishError> {
        let audience = to.into();
        if let Target::Connection(id) = audience.target {
            if let Err(e) = self.conns.check(id) {
                self.out.counters.drops.add(Reason::UnknownConnection);
                return Err(e.into());
            }
        }
        let delivery = self.parts().fanout.publish(now, &audience, message, None);
        self.finish();
        Ok(delivery)
    }

    /// Publish one agent run event of `user`'s run. An event out of order is refused with a
    /// [`RunError`](crate::RunError) and reaches no one. When the run ends a
    /// [`Notice::RunEnded`](crate::Notice::RunEnded) carries its report.
    pub fn send_agent_update(
        &mut self,
        now: Instant,
        user: &UserId,
        update: AgentUpdate,
    ) -> Result<Delivery, PublishError> {
        let mut p = self.parts();
        let delivery = agent::update(p.runs, &mut p.fanout, now, user, update);
        self.finish();
        delivery
    }

    /// The producer of `user`'s `run` went away (its process died, its request was
    /// cancelled): a run in progress ends with `producer_lost`. Returns that event's delivery,
    /// or `None` if the run is not in progress.
    pub fn producer_lost(&mut self, now: Instant, user: &UserId, run: &RunId) -> Option<Delivery> {
        let mut p = self.parts();
        let delivery = agent::producer_lost(p.runs, &mut p.fanout, now, user, run);
        self.finish();
        delivery
    }

    /// Join `conn` to `room` on the server's initiative (the client gets `joined`).
    pub fn join_room(
        &mut self,
        now: Instant,
        conn: ConnId,
        room: &RoomId,
    ) -> Result<(), RoomError> {
        let mut p = self.parts();
        let limits = &p.config.limits;
        let reply = Reply::to(conn);
        let joined = membership::join(&mut p.fanout, limits, now, reply, room, Ask::default());
        self.finish();
        joined
    }

    /// Remove `conn` from `room` on the server's initiative (the client gets `left`).
    pub fn leave_room(&mut self, conn: ConnId, room: &RoomId) -> Result<(), RoomError> {
        let mut f = self.parts().fanout;
        f.leave(conn, room)?;
        let left = ServerFrame::Left {
            room,
            reason: None,
            reference: None,
        };
        Reply::to(conn).send(f.conns, f.out, &left);
        self.finish();
        Ok(())
    }

    /// Bind `conn` to `thread` (or unbind with `None`); the client gets `bound`, then the
    /// events so far of agent runs in progress on the new thread and the thread's messages
    /// that waited for a connection.
    pub fn update_connection_thread(
        &mut self,
        conn: ConnId,
        thread: Option<ThreadId>,
    ) -> Result<(), UnknownConnection> {
        self.conns.check(conn)?;
        let f = self.parts().fanout;
        membership::bind(f.conns, f.streams, f.out, Reply::to(conn), thread);
        self.finish();
        Ok(())
    }

    /// The fresh token `conn` sent ([`Notice::Refresh`](crate::Notice::Refresh)) was verified and
    /// grants `grant`: it applies at once. The connection leaves the rooms the new join grant does
    /// not allow (each with a `left` frame with reason `forbidden`), takes the new publish grant
    /// and the new expiry (a `refresh` frame ahead of it, 4005 after it), and the client gets
    /// `refreshed`. Also the way to change a connection's grants on the application's own
    /// initiative (then `refreshed` carries no `ref`). A connection closed meanwhile (its old token
    /// expired first) is unknown: nothing happens.
    pub fn refreshed(
        &mut self,
        now: Instant,
        conn: ConnId,
        grant: RefreshGrant,
    ) -> Result<(), UnknownConnection> {
        let Parts {
            config,
            fanout: mut f,
            ..
        } = self.parts();
        refresh::refreshed(&mut f, now, &config.tokens, conn, grant)?;
        self.finish();
        Ok(())
    }

    /// The fresh token `conn` sent ([`Notice::Refresh`](crate::Notice::Refresh)) was refused: the
    /// client gets an `error` (`forbidden` or `invalid_token`, with the refresh's `ref`) and a
    /// strike, and the connection keeps its grants and expiry. A connection closed meanwhile is
    /// unknown.
    pub fn refresh_refused(
        &mut self,
        now: Instant,
        conn: ConnId,
        refusal: RefreshRefusal,
    ) -> Result<(), UnknownConnection> {
        let mut f = self.parts().fanout;
        refresh::refused(&mut f, now, conn, refusal)?;
        self.finish();
        Ok(())
    }

    /// Answer `conn`'s frame of an application type ([`Notice::App`](crate::Notice::App)) that
    /// carried `reference`: the client gets a `reply` with the data, or an `error` with the
    /// application's code (no strike), echoing the `ref`. A connection closed meanwhile is unknown:
    /// nothing happens.
    pub fn answer(
        &mut self,
        conn: ConnId,
        reference: Option<ClientRef>,
        answer: Answer,
    ) -> Result<(), UnknownConnection> {
        self.conns.check(conn)?;
        let Fanout { conns, out, .. } = self.parts().fanout;
        let reply = Reply::asked(conn, reference.as_ref().map(ClientRef::raw));
        let frame = match &answer {
            Answer::Reply(data) => ServerFrame::Reply {
                data,
                reference: reply.reference,
            },
            Answer::Error { code, message } => ServerFrame::AppError {
                code: code.as_str(),
                message,
                reference: reply.reference,
            },
        };
        reply.send(conns, out, &frame);
        self.finish();
        Ok(())
    }

    /// Close one connection (the application's decision) with `reason`'s close code. A reason
    /// that has no close code (a drop reason, or `PeerClosed`) closes as `Normal` (1000): the
    /// client is always sent a close frame.
    pub fn close_connection(
        &mut self,
        id: ConnId,
        reason: Reason,
    ) -> Result<(), UnknownConnection> {
        self.conns.check(id)?;
        let reason = match reason.close_code() {
            Some(_) => reason,
            None => Reason::Normal,
        };
        self.parts().fanout.close(id, reason);
        self.finish();
        Ok(())
    }

    /// Close every connection of `user` with 4002. Returns how many were closed.
    pub fn disconnect_user(&mut self, user: &UserId) -> usize {
        let conns = self.conns.user_connections(user).to_vec();
        let mut f = self.parts().fanout;
        for &id in &conns {
            f.close(id, Reason::Disconnected);
        }
        self.finish();
        conns.len()
    }

    /// Ask to be told when `user` has a connection: a
    /// [`Notice::UserConnected`](crate::Notice::UserConnected) (at once if one is open) or a
    /// [`Notice::WaitExpired`](crate::Notice::WaitExpired) at `deadline`. Events published to the
    /// user in the meantime wait in the user's stream and are delivered when the connection opens.
    pub fn wait_for_connection(&mut self, user: &UserId, deadline: Instant) -> WaiterId {
        (self.waiters).wait(user, deadline, &self.conns, &mut self.out)
    }

    /// Withdraw a registration. Returns false if it already resolved or expired.
    pub fn cancel_wait(&mut self, waiter: WaiterId) -> bool {
        self.waiters.cancel(waiter)
    }

    /// Stop accepting connections and close every open one with `reason` (`Shutdown`, 1001,
    /// or `ServiceRestart`, 1012; any other reason closes as `Shutdown`) after handing out what
    /// was queued for it.
    pub fn shutdown(&mut self, reason: Reason) {
        let reason = match reason {
            Reason::ServiceRestart => reason,
            _ => Reason::Shutdown,
        };
        let ids = self.conns.close_all(reason);
        let mut f = self.parts().fanout;
        for id in ids {
            f.close(id, reason);
        }
        self.finish();
    }

    /// True once [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.conns.is_closing()
    }
}
