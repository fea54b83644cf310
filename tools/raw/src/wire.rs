//! The WebSocket framing the raw peer does itself: server frames framed once into shared bytes
//! (header and payload in one buffer, unmasked, as a server sends them), and client frames
//! parsed out of a read buffer (masked, as every client must send them). Header coding is
//! tungstenite's ([`FrameHeader`]); what is left here is where the bytes go.

use bytes::{Buf, Bytes, BytesMut};
use std::io::Cursor;
pub use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The largest client frame payload accepted (the load tool's frames are tiny); a larger one
/// closes the connection with 1009.
pub const MAX_CLIENT_PAYLOAD: u64 = 64 * 1024;

/// A complete, unmasked server frame of `opcode` carrying `payload`: written to any number of
/// sockets as it is.
pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    let length = payload.len() as u64;
    let mut frame = Vec::with_capacity(header.len(length) + payload.len());
    header
        .format(length, &mut frame)
        .expect("writing to a Vec cannot fail");
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// A server text frame.
pub fn text_frame(text: &str) -> Bytes {
    server_frame(OpCode::Data(Data::Text), text.as_bytes())
}

/// A server close frame with `code`.
pub fn close_frame(code: CloseCode) -> Bytes {
    server_frame(
        OpCode::Control(Control::Close),
        &u16::from(code).to_be_bytes(),
    )
}

/// A client frame, unmasked.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// A complete text message.
    Text(String),
    /// A ping, whose payload the pong echoes.
    Ping(Bytes),
    /// A close frame: the client is leaving.
    Close,
    /// Something the hub does not act on (a pong, a binary message).
    Ignored,
}

/// Why a client's bytes end the connection, with the close code it gets.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation(pub CloseCode);

/// Take the next complete frame out of `buffer`: `Ok(None)` until it is all there.
pub fn next_client_frame(buffer: &mut BytesMut) -> Result<Option<ClientFrame>, Violation> {
    let mut cursor = Cursor::new(&buffer[..]);
    let (header, length) = match FrameHeader::parse(&mut cursor) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Ok(None),
        Err(_) => return Err(Violation(CloseCode::Protocol)),
    };
    if length > MAX_CLIENT_PAYLOAD {
        return Err(Violation(CloseCode::Size));
    }
    let header_len = cursor.position() as usize;
    let Some(mask) = header.mask else {
        // RFC 6455 §5.1: a server closes the connection on an unmasked client frame.
        return Err(Violation(CloseCode::Protocol));
    };
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(Violation(CloseCode::Protocol));
    }
    // The hub's clients send single-frame messages; continuation frames are not reassembled.
    if !header.is_final || header.opcode == OpCode::Data(Data::Continue) {
        return Err(Violation(CloseCode::Unsupported));
    }
    let length = length as usize;
    if buffer.len() < header_len + length {
        return Ok(None);
    }
    buffer.advance(header_len);
    let mut payload = buffer.split_to(length);
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
    Ok(Some(match header.opcode {
        OpCode::Data(Data::Text) => match String::from_utf8(payload.to_vec()) {
            Ok(text) => ClientFrame::Text(text),
            Err(_) => return Err(Violation(CloseCode::Invalid)),
        },
        OpCode::Control(Control::Ping) => ClientFrame::Ping(payload.freeze()),
        OpCode::Control(Control::Close) => ClientFrame::Close,
        _ => ClientFrame::Ignored,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::Frame;

    /// A client's frame as tungstenite writes it (masked).
    fn masked(mut frame: Frame) -> Vec<u8> {
        frame.header_mut().mask = Some([1, 2, 3, 4]);
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    fn client_bytes(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        masked(Frame::message(payload.to_vec(), opcode, true))
    }

    #[test]
    fn a_server_frame_is_header_then_payload_unmasked() {
        assert_eq!(&text_frame("hi")[..], b"\x81\x02hi");
        let long = "x".repeat(300);
        let frame = text_frame(&long);
        assert_eq!(&frame[..4], &[0x81, 126, 1, 44]);
        assert_eq!(&frame[4..], long.as_bytes());
        assert_eq!(&close_frame(CloseCode::Normal)[..], &[0x88, 2, 0x03, 0xe8]);
    }

    #[test]
    fn client_frames_are_unmasked_and_taken_one_at_a_time() {
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&client_bytes(OpCode::Data(Data::Text), b"{\"a\":1}"));
        buffer.extend_from_slice(&masked(Frame::ping(b"p".to_vec())));
        let partial = masked(Frame::close(None));
        buffer.extend_from_slice(&partial[..1]);
        assert_eq!(
            next_client_frame(&mut buffer),
            Ok(Some(ClientFrame::Text("{\"a\":1}".into())))
        );
        assert_eq!(
            next_client_frame(&mut buffer),
            Ok(Some(ClientFrame::Ping(Bytes::from_static(b"p"))))
        );
        assert_eq!(next_client_frame(&mut buffer), Ok(None));
        buffer.extend_from_slice(&partial[1..]);
        assert_eq!(next_client_frame(&mut buffer), Ok(Some(ClientFrame::Close)));
        assert!(buffer.is_empty());
    }

    #[test]
    fn hostile_client_frames_get_their_close_codes() {
        let mut unmasked = BytesMut::from(&text_frame("hi")[..]);
        assert_eq!(
            next_client_frame(&mut unmasked),
            Err(Violation(CloseCode::Protocol))
        );
        let big = vec![b'x'; MAX_CLIENT_PAYLOAD as usize + 1];
        let mut oversized = BytesMut::from(&client_bytes(OpCode::Data(Data::Text), &big)[..20]);
        assert_eq!(
            next_client_frame(&mut oversized),
            Err(Violation(CloseCode::Size))
        );
        let bytes = masked(Frame::message(
            b"a".to_vec(),
            OpCode::Data(Data::Text),
            false,
        ));
        assert_eq!(
            next_client_frame(&mut BytesMut::from(&bytes[..])),
            Err(Violation(CloseCode::Unsupported))
        );
        let mut invalid = BytesMut::from(&client_bytes(OpCode::Data(Data::Text), &[0xff])[..]);
        assert_eq!(
            next_client_frame(&mut invalid),
            Err(Violation(CloseCode::Invalid))
        );
    }
}
