//! The in-memory harness ([`switchboard::testing::Harness`]) as a [`Transport`]: one hub, a
//! manual clock, recording clients. Everything happens at once, so a client's `recv` that
//! finds nothing pending on an open connection fails the case (a network client would wait
//! forever).

use crate::{Client, Connect, Received, Transport};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use switchboard::testing::Harness;
use switchboard::{
    AgentUpdate, Audience, Config, ConnId, Delivery, Message, Open, PublishError, Reason,
    SocketInput, UserId,
};

/// The in-memory harness as a transport.
#[derive(Debug, Clone)]
pub struct InMemory {
    harness: Rc<RefCell<Harness>>,
}

/// A harness client.
#[derive(Debug)]
pub struct InMemoryClient {
    harness: Rc<RefCell<Harness>>,
    /// The connection, or the close code it was refused with.
    conn: Result<ConnId, u16>,
    /// Frames taken from the harness and not yet returned.
    read: VecDeque<Value>,
    paused: bool,
}

impl Transport for InMemory {
    const NAME: &'static str = "harness";
    type Client = InMemoryClient;

    fn block_on<F: Future>(case: F) -> F::Output {
        futures_executor::block_on(case)
    }

    async fn start(config: Config) -> Self {
        Self {
            harness: Rc::new(RefCell::new(Harness::new(config))),
        }
    }

    async fn connect(&self, connect: Connect) -> InMemoryClient {
        let mut open = Open::new(connect.user.as_str());
        if let Some(thread) = &connect.thread {
            open = open.thread(thread.as_str());
        }
        if let Some(position) = connect.resume {
            open = open.resume(position);
        }
        let conn = self
            .harness
            .borrow_mut()
            .open(open)
            .map_err(|refused| refused.close_code());
        InMemoryClient {
            harness: Rc::clone(&self.harness),
            conn,
            read: VecDeque::new(),
            paused: false,
        }
    }

    async fn publish(&self, to: Audience, message: Message) -> Result<Delivery, PublishError> {
        self.harness
            .borrow_mut()
            .with_hub(|hub, now| hub.publish(now, to, &message))
    }

    async fn agent_update(
        &self,
        user: &str,
        update: AgentUpdate,
    ) -> Result<Delivery, PublishError> {
        let user = UserId::from(user);
        self.harness
            .borrow_mut()
            .with_hub(|hub, now| hub.send_agent_update(now, &user, update))
    }

    async fn advance(&self, by: Duration) {
        self.harness.borrow_mut().advance(by);
    }

    async fn shutdown(&self) {
        self.harness
            .borrow_mut()
            .with_hub(|hub, _| hub.shutdown(Reason::Shutdown));
    }
}

impl InMemoryClient {
    fn send_text(&mut self, bytes: &[u8]) {
        if let Ok(conn) = self.conn {
            self.harness.borrow_mut().send_bytes(conn, bytes);
        }
    }
}

impl Client for InMemoryClient {
    async fn send(&mut self, text: &str) {
        self.send_text(text.as_bytes());
    }

    async fn send_raw_text(&mut self, bytes: &[u8]) {
        self.send_text(bytes);
    }

    async fn send_binary(&mut self, bytes: &[u8]) {
        if let Ok(conn) = self.conn {
            let _ = self
                .harness
                .borrow_mut()
                .with_hub(|hub, now| hub.handle_socket(now, SocketInput::Binary { conn, bytes }));
        }
    }

    async fn send_ping(&mut self, _payload: &[u8]) {
        if let Ok(conn) = self.conn {
            self.harness.borrow_mut().socket(SocketInput::Ping { conn });
        }
    }

    async fn send_unsolicited_pong(&mut self, payload: &[u8]) {
        assert_ne!(payload.len(), 8, "a payload that cannot echo a hub ping");
        if let Ok(conn) = self.conn {
            self.harness
                .borrow_mut()
                .socket(SocketInput::Pong { conn, payload });
        }
    }

    async fn recv(&mut self) -> Received {
        let conn = match self.conn {
            Ok(conn) => conn,
            Err(code) => return Received::Closed(Some(code)),
        };
        let mut harness = self.harness.borrow_mut();
        if std::mem::take(&mut self.paused) {
            harness.set_reading(conn, true);
        }
        if self.read.is_empty() {
            self.read.extend(harness.take(conn));
        }
        if let Some(frame) = self.read.pop_front() {
            return Received::Frame(frame);
        }
        match harness.closed(conn) {
            Some((code, _)) => Received::Closed(Some(code)),
            None => panic!("harness: {conn} waits for a frame, but none is pending"),
        }
    }

    fn pause(&mut self) {
        if let Ok(conn) = self.conn {
            self.paused = true;
            self.harness.borrow_mut().set_reading(conn, false);
        }
    }

    fn silence(&mut self) {
        if let Ok(conn) = self.conn {
            self.harness.borrow_mut().set_answers_pings(conn, false);
        }
    }

    /// The harness answers pings by itself; the clock is the transport's to move.
    async fn idle(&mut self, _duration: Duration) {}

    async fn close(self) {
        if let Ok(conn) = self.conn {
            self.harness.borrow_mut().drop_connection(conn);
        }
    }
}
