//! One connection of the raw peer after its handshake: a reader that parses the client's
//! frames (`join`, ping, close) and a writer that sends the connection's queued frames, each
//! wake-up's worth in one vectored write.

use crate::wire::{self, ClientFrame, Violation};
use crate::{Hub, QUEUE_FRAMES};
use bytes::{Buf, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::json;
use std::io::IoSlice;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tungstenite::protocol::frame::coding::CloseCode;

/// Frames taken from the queue per wake-up at most: Linux's `IOV_MAX` (1 024 slices per
/// `writev`).
const FRAMES_PER_WRITE: usize = 1024;

/// Bytes the read buffer starts with (client frames are a few dozen bytes).
const READ_BUFFER_BYTES: usize = 1024;

/// A client frame: only `join` is understood.
#[derive(Deserialize)]
struct Join {
    #[serde(rename = "type")]
    kind: String,
    room: Option<String>,
}

/// Run connection `id` of `user` on `stream`, whose first bytes (read along with the
/// handshake) are `read_ahead`, until the client leaves or breaks the protocol.
pub async fn run(hub: Arc<Hub>, id: u64, user: String, stream: TcpStream, read_ahead: Bytes) {
    let (mut reader, writer_half) = stream.into_split();
    let (queue, frames) = mpsc::channel::<Bytes>(QUEUE_FRAMES);
    let writer = tokio::spawn(write(writer_half, frames));
    let welcome = json!({"type": "welcome", "conn": id.to_string(), "user": user});
    let _ = queue.try_send(wire::text_frame(&welcome.to_string()));
    let mut joined: Vec<String> = Vec::new();
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    buffer.extend_from_slice(&read_ahead);
    let closing = 'read: loop {
        loop {
            match wire::next_client_frame(&mut buffer) {
                Ok(Some(ClientFrame::Text(text))) => {
                    let Ok(Join {
                        kind,
                        room: Some(room),
                    }) = serde_json::from_str::<Join>(&text)
                    else {
                        continue;
                    };
                    if kind == "join" {
                        hub.join(&room, id, &queue);
                        let reply = json!({"type": "joined", "room": room});
                        let _ = queue.try_send(wire::text_frame(&reply.to_string()));
                        joined.push(room);
                    }
                }
                Ok(Some(ClientFrame::Ping(payload))) => {
                    let pong =
                        wire::server_frame(wire::OpCode::Control(wire::Control::Pong), &payload);
                    let _ = queue.try_send(pong);
                }
                Ok(Some(ClientFrame::Close)) => break 'read Some(CloseCode::Normal),
                Ok(Some(ClientFrame::Ignored)) => {}
                Ok(None) => break,
                Err(Violation(code)) => break 'read Some(code),
            }
        }
        match reader.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => break None,
            Ok(_) => {}
        }
    };
    hub.leave(&joined, id);
    if let Some(code) = closing {
        let _ = queue.try_send(wire::close_frame(code));
    }
    // The writer sends what is queued (the close frame last) and ends with the queue.
    drop(queue);
    let _ = writer.await;
}

/// Send every frame queued on `frames`: per wake-up, everything queued (up to
/// [`FRAMES_PER_WRITE`]) in one vectored write, continued only where the kernel took part of
/// it. Ends when the queue is closed and drained, or the socket fails.
async fn write(mut socket: OwnedWriteHalf, mut frames: mpsc::Receiver<Bytes>) {
    let mut batch: Vec<Bytes> = Vec::new();
    while frames.recv_many(&mut batch, FRAMES_PER_WRITE).await > 0 {
        let mut first = 0;
        while first < batch.len() {
            let slices: Vec<IoSlice<'_>> = batch[first..].iter().map(|f| IoSlice::new(f)).collect();
            let mut written = match socket.write_vectored(&slices).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            drop(slices);
            while written > 0 {
                let frame = &mut batch[first];
                let taken = written.min(frame.len());
                frame.advance(taken);
                written -= taken;
                if frame.is_empty() {
                    first += 1;
                }
            }
        }
        batch.clear();
    }
    let _ = socket.shutdown().await;
}
