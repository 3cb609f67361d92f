//! The BitTorrent peer wire protocol (BEP 3): handshake and length-prefixed messages, parsed from
//! and encoded to buffers without I/O.
//!
//! Only what a seeder with every piece needs is understood. Extended messages (BEP 10, id 20) and
//! ids this module does not know are skipped whole, so a peer that speaks more than BEP 3 is not
//! dropped for it. Bounds are checked before anything is buffered: a length prefix above
//! [`MAX_MESSAGE_LEN`] or a request above [`MAX_REQUEST_LEN`] is a protocol error, so a peer
//! cannot make the bridge hold more than about a mebibyte per connection.

use bytes::Bytes;

/// The protocol string every BEP 3 handshake starts with, after its length byte.
pub const PSTR: &[u8; 19] = b"BitTorrent protocol";

/// The length of a handshake: length byte, [`PSTR`], 8 reserved bytes, info hash, peer id.
pub const HANDSHAKE_LEN: usize = 68;

/// The largest length prefix accepted (1 MiB plus a piece message's header): enough for a
/// bitfield of eight million pieces or any block a sane peer sends, small enough to buffer.
pub const MAX_MESSAGE_LEN: u32 = (1 << 20) + 13;

/// The largest block a `request` may ask for (128 KiB). Clients ask 16 KiB; BEP 3 says peers
/// may drop connections asking more than 128 KiB, and the bridge does.
pub const MAX_REQUEST_LEN: u32 = 128 << 10;

const ID_CHOKE: u8 = 0;
const ID_UNCHOKE: u8 = 1;
const ID_INTERESTED: u8 = 2;
const ID_NOT_INTERESTED: u8 = 3;
const ID_HAVE: u8 = 4;
const ID_BITFIELD: u8 = 5;
const ID_REQUEST: u8 = 6;
const ID_PIECE: u8 = 7;
const ID_CANCEL: u8 = 8;

/// A peer's opening 68 bytes: who it is and which torrent it wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// Extension bits (BEP 10 is bit 20, BEP 6 bit 2 of byte 7). The bridge sends all zeros:
    /// it speaks plain BEP 3 only, so engines never send it extended or fast messages.
    pub reserved: [u8; 8],
    /// The torrent's SHA-1 info hash; a connection for another torrent is refused.
    pub info_hash: [u8; 20],
    /// The sender's peer id; engines refuse connections to their own id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Parses a handshake, checking its protocol string.
    ///
    /// # Errors
    ///
    /// [`WireError::Protocol`] when the first 20 bytes are not `19` and [`PSTR`].
    pub fn parse(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        let (head, rest) = bytes.split_at(20);
        if head[0] != 19 || &head[1..] != PSTR {
            return Err(WireError::Protocol);
        }
        let mut handshake = Self {
            reserved: [0; 8],
            info_hash: [0; 20],
            peer_id: [0; 20],
        };
        handshake.reserved.copy_from_slice(&rest[..8]);
        handshake.info_hash.copy_from_slice(&rest[8..28]);
        handshake.peer_id.copy_from_slice(&rest[28..48]);
        Ok(handshake)
    }

    /// The 68 bytes to send.
    #[must_use]
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PSTR);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }
}

/// One block of a piece, as named by `request` and `cancel`, and answered by `piece`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockRequest {
    /// The piece index.
    pub piece: u32,
    /// The block's offset inside the piece.
    pub offset: u32,
    /// The block's length; `1..=`[`MAX_REQUEST_LEN`] in any parsed request.
    pub length: u32,
}

/// A BEP 3 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A zero-length message that keeps an idle connection open.
    KeepAlive,
    /// The sender will not answer requests.
    Choke,
    /// The sender will answer requests.
    Unchoke,
    /// The sender wants pieces the receiver has.
    Interested,
    /// The sender wants nothing from the receiver.
    NotInterested,
    /// The sender now has this piece.
    Have {
        /// The piece index.
        piece: u32,
    },
    /// The pieces the sender has, one bit each, most significant bit of byte 0 first.
    Bitfield(Bytes),
    /// Asks for one block.
    Request(BlockRequest),
    /// One block's bytes.
    Piece {
        /// The piece index.
        piece: u32,
        /// The block's offset inside the piece.
        offset: u32,
        /// The block.
        data: Bytes,
    },
    /// Withdraws a request.
    Cancel(BlockRequest),
    /// An extended (id 20) or unknown message; its payload was skipped.
    Ignored {
        /// The message id.
        id: u8,
        /// The payload's length, in bytes.
        len: u32,
    },
}

/// What [`parse_message`] found at the start of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole message, which took `consumed` bytes of the buffer.
    Message {
        /// The message.
        message: Message,
        /// How many bytes to drop from the buffer's front.
        consumed: usize,
    },
    /// The buffer holds the start of a message; at least `needed` more bytes are wanted.
    Incomplete {
        /// The shortfall, so a reader can reserve for it.
        needed: usize,
    },
}

/// Why bytes from a peer are not valid BEP 3; the bridge closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The handshake does not start with `19` and [`PSTR`].
    #[error("the handshake is not BitTorrent protocol")]
    Protocol,
    /// A length prefix above [`MAX_MESSAGE_LEN`].
    #[error("message of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    TooLong {
        /// The announced length.
        len: u32,
    },
    /// A known message with a payload length its id does not allow.
    #[error("message id {id} with a {len}-byte payload")]
    BadLength {
        /// The message id.
        id: u8,
        /// The payload's length.
        len: u32,
    },
    /// A request for zero bytes or more than [`MAX_REQUEST_LEN`].
    #[error("request for {length} bytes (allowed 1..={MAX_REQUEST_LEN})")]
    RequestLength {
        /// The requested length.
        length: u32,
    },
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

/// Parses the message at the start of `buf`.
///
/// Never panics and never asks for more than [`MAX_MESSAGE_LEN`] + 4 bytes in total, whatever
/// the input.
///
/// # Errors
///
/// [`WireError`] when the length prefix is too large, a known message has the wrong length, or a
/// request is empty or too large. The bound is checked from the prefix alone, before the payload
/// arrives.
pub fn parse_message(buf: &[u8]) -> Result<Parsed, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(Parsed::Incomplete {
            needed: 4 - buf.len(),
        });
    };
    let len = be_u32(prefix);
    if len > MAX_MESSAGE_LEN {
        return Err(WireError::TooLong { len });
    }
    if len == 0 {
        return Ok(Parsed::Message {
            message: Message::KeepAlive,
            consumed: 4,
        });
    }
    let total = 4 + len as usize;
    let Some(body) = buf.get(4..total) else {
        return Ok(Parsed::Incomplete {
            needed: total - buf.len(),
        });
    };
    let (id, payload) = (body[0], &body[1..]);
    let payload_len = len - 1;
    let bad = || WireError::BadLength {
        id,
        len: payload_len,
    };
    let message = match id {
        ID_CHOKE | ID_UNCHOKE | ID_INTERESTED | ID_NOT_INTERESTED => {
            if !payload.is_empty() {
                return Err(bad());
            }
            match id {
                ID_CHOKE => Message::Choke,
                ID_UNCHOKE => Message::Unchoke,
                ID_INTERESTED => Message::Interested,
                _ => Message::NotInterested,
            }
        }
        ID_HAVE => {
            if payload.len() != 4 {
                return Err(bad());
            }
            Message::Have {
                piece: be_u32(payload),
            }
        }
        ID_BITFIELD => Message::Bitfield(Bytes::copy_from_slice(payload)),
        ID_REQUEST | ID_CANCEL => {
            if payload.len() != 12 {
                return Err(bad());
            }
            let request = BlockRequest {
                piece: be_u32(payload),
                offset: be_u32(&payload[4..]),
                length: be_u32(&payload[8..]),
            };
            if id == ID_CANCEL {
                Message::Cancel(request)
            } else if request.length == 0 || request.length > MAX_REQUEST_LEN {
                return Err(WireError::RequestLength {
                    length: request.length,
                });
            } else {
                Message::Request(request)
            }
        }
        ID_PIECE => {
            if payload.len() < 8 {
                return Err(bad());
            }
            Message::Piece {
                piece: be_u32(payload),
                offset: be_u32(&payload[4..]),
                data: Bytes::copy_from_slice(&payload[8..]),
            }
        }
        _ => Message::Ignored {
            id,
            len: payload_len,
        },
    };
    Ok(Parsed::Message {
        message,
        consumed: total,
    })
}

/// The 13 bytes that precede a block in a `piece` message, so the block itself can be written
/// straight from the piece cache without copying it into a message buffer.
#[must_use]
pub fn piece_header(piece: u32, offset: u32, block_len: u32) -> [u8; 13] {
    let mut out = [0; 13];
    out[..4].copy_from_slice(&(9 + block_len).to_be_bytes());
    out[4] = ID_PIECE;
    out[5..9].copy_from_slice(&piece.to_be_bytes());
    out[9..13].copy_from_slice(&offset.to_be_bytes());
    out
}

impl Message {
    /// Appends the message's encoding to `out`.
    ///
    /// [`Message::Ignored`] encodes as a message of that id with a zeroed payload of that length,
    /// which is what it parsed from up to the payload's content.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut frame = |id: u8, parts: &[&[u8]]| {
            let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.push(id);
            for part in parts {
                out.extend_from_slice(part);
            }
        };
        match self {
            Message::KeepAlive => out.extend_from_slice(&[0; 4]),
            Message::Choke => frame(ID_CHOKE, &[]),
            Message::Unchoke => frame(ID_UNCHOKE, &[]),
            Message::Interested => frame(ID_INTERESTED, &[]),
            Message::NotInterested => frame(ID_NOT_INTERESTED, &[]),
            Message::Have { piece } => frame(ID_HAVE, &[&piece.to_be_bytes()]),
            Message::Bitfield(bits) => frame(ID_BITFIELD, &[bits]),
            Message::Request(r) | Message::Cancel(r) => {
                let id = if matches!(self, Message::Request(_)) {
                    ID_REQUEST
                } else {
                    ID_CANCEL
                };
                frame(
                    id,
                    &[
                        &r.piece.to_be_bytes(),
                        &r.offset.to_be_bytes(),
                        &r.length.to_be_bytes(),
                    ],
                );
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => frame(
                ID_PIECE,
                &[&piece.to_be_bytes(), &offset.to_be_bytes(), data],
            ),
            Message::Ignored { id, len } => frame(*id, &[&vec![0; *len as usize]]),
        }
    }
}

/// A bitfield claiming all `pieces` pieces: `ceil(pieces / 8)` bytes, with the spare bits of
/// the last byte zero (BEP 3 lets peers drop connections that set them).
#[must_use]
pub fn full_bitfield(pieces: u32) -> Vec<u8> {
    let mut bits = vec![0xff; pieces.div_ceil(8) as usize];
    let spare = pieces % 8;
    if let Some(last) = bits.last_mut()
        && spare != 0
    {
        *last = 0xff << (8 - spare);
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        message.encode(&mut out);
        out
    }

    fn parse_whole(bytes: &[u8]) -> Result<Message, WireError> {
        match parse_message(bytes)? {
            Parsed::Message { message, consumed } => {
                assert_eq!(consumed, bytes.len(), "consumed the whole message");
                Ok(message)
            }
            Parsed::Incomplete { needed } => panic!("incomplete, {needed} more wanted"),
        }
    }

    #[test]
    fn handshake_round_trips_and_checks_the_protocol_string() {
        let handshake = Handshake {
            reserved: [0, 0, 0, 0, 0, 0x10, 0, 0x05],
            info_hash: [7; 20],
            peer_id: *b"-XW0100-abcdefghijkl",
        };
        let bytes = handshake.encode();
        assert_eq!(&bytes[..20], b"\x13BitTorrent protocol");
        assert_eq!(Handshake::parse(&bytes), Ok(handshake));

        let mut wrong = bytes;
        wrong[0] = 18;
        assert_eq!(Handshake::parse(&wrong), Err(WireError::Protocol));
        let mut wrong = bytes;
        wrong[5] = b'X';
        assert_eq!(Handshake::parse(&wrong), Err(WireError::Protocol));
    }

    #[test]
    fn known_encodings_match_bep3() {
        assert_eq!(encoded(&Message::KeepAlive), [0, 0, 0, 0]);
        assert_eq!(encoded(&Message::Unchoke), [0, 0, 0, 1, 1]);
        assert_eq!(
            encoded(&Message::Request(BlockRequest {
                piece: 1,
                offset: 0x4000,
                length: 0x4000
            })),
            [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]
        );
        let piece = encoded(&Message::Piece {
            piece: 2,
            offset: 3,
            data: Bytes::from_static(b"abc"),
        });
        assert_eq!(piece[..13], piece_header(2, 3, 3));
        assert_eq!(&piece[13..], b"abc");
    }

    #[test]
    fn partial_input_asks_for_the_rest() {
        assert_eq!(parse_message(&[]), Ok(Parsed::Incomplete { needed: 4 }));
        assert_eq!(parse_message(&[0, 0]), Ok(Parsed::Incomplete { needed: 2 }));
        let have = encoded(&Message::Have { piece: 9 });
        assert_eq!(
            parse_message(&have[..6]),
            Ok(Parsed::Incomplete { needed: 3 })
        );
    }

    #[test]
    fn limits_are_enforced_from_the_prefix() {
        let len = MAX_MESSAGE_LEN + 1;
        assert_eq!(
            parse_message(&len.to_be_bytes()),
            Err(WireError::TooLong { len })
        );
        // The largest allowed prefix is merely incomplete.
        assert!(matches!(
            parse_message(&MAX_MESSAGE_LEN.to_be_bytes()),
            Ok(Parsed::Incomplete { .. })
        ));
        for length in [0, MAX_REQUEST_LEN + 1] {
            let request = encoded(&Message::Request(BlockRequest {
                piece: 0,
                offset: 0,
                length,
            }));
            assert_eq!(
                parse_message(&request),
                Err(WireError::RequestLength { length })
            );
        }
    }

    #[test]
    fn wrong_lengths_are_refused() {
        assert_eq!(
            parse_message(&[0, 0, 0, 2, 1, 0]),
            Err(WireError::BadLength { id: 1, len: 1 })
        );
        assert_eq!(
            parse_message(&[0, 0, 0, 4, 4, 0, 0, 0]),
            Err(WireError::BadLength { id: 4, len: 3 })
        );
        assert_eq!(
            parse_message(&[0, 0, 0, 5, 6, 0, 0, 0, 0]),
            Err(WireError::BadLength { id: 6, len: 4 })
        );
        assert_eq!(
            parse_message(&[0, 0, 0, 3, 7, 0, 0]),
            Err(WireError::BadLength { id: 7, len: 2 })
        );
    }

    #[test]
    fn extended_and_unknown_messages_are_skipped_whole() {
        let mut bytes = vec![0, 0, 0, 4, 20, b'd', b'e', 0];
        bytes.extend_from_slice(&encoded(&Message::Interested));
        assert_eq!(
            parse_message(&bytes),
            Ok(Parsed::Message {
                message: Message::Ignored { id: 20, len: 3 },
                consumed: 8
            })
        );
        assert_eq!(parse_whole(&bytes[8..]), Ok(Message::Interested));
        assert_eq!(
            parse_whole(&[0, 0, 0, 1, 13]),
            Ok(Message::Ignored { id: 13, len: 0 })
        );
    }

    #[test]
    fn full_bitfield_zeroes_spare_bits() {
        assert_eq!(full_bitfield(0), Vec::<u8>::new());
        assert_eq!(full_bitfield(1), [0x80]);
        assert_eq!(full_bitfield(8), [0xff]);
        assert_eq!(full_bitfield(11), [0xff, 0xe0]);
        assert_eq!(full_bitfield(16), [0xff, 0xff]);
    }

    fn any_request() -> impl Strategy<Value = BlockRequest> {
        (any::<u32>(), any::<u32>(), 1..=MAX_REQUEST_LEN).prop_map(|(piece, offset, length)| {
            BlockRequest {
                piece,
                offset,
                length,
            }
        })
    }

    fn any_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            any::<u32>().prop_map(|piece| Message::Have { piece }),
            proptest::collection::vec(any::<u8>(), 0..64)
                .prop_map(|bits| Message::Bitfield(bits.into())),
            any_request().prop_map(Message::Request),
            any_request().prop_map(Message::Cancel),
            (
                any::<u32>(),
                any::<u32>(),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(piece, offset, data)| Message::Piece {
                    piece,
                    offset,
                    data: data.into()
                }),
            (9u8..=255, 0u32..64).prop_map(|(id, len)| Message::Ignored { id, len }),
        ]
    }

    proptest! {
        #[test]
        fn messages_round_trip(message in any_message()) {
            let bytes = encoded(&message);
            prop_assert_eq!(parse_whole(&bytes), Ok(message));
            // Every strict prefix is incomplete, never an error or a wrong message.
            for cut in 0..bytes.len() {
                let parsed = parse_message(&bytes[..cut]);
                let incomplete = matches!(parsed, Ok(Parsed::Incomplete { needed }) if needed > 0);
                prop_assert!(incomplete, "prefix of {} bytes gave {:?}", cut, parsed);
            }
        }

        #[test]
        fn message_streams_split_back_into_their_messages(
            messages in proptest::collection::vec(any_message(), 0..8)
        ) {
            let mut bytes = Vec::new();
            for message in &messages {
                message.encode(&mut bytes);
            }
            let mut rest = &bytes[..];
            let mut parsed = Vec::new();
            while !rest.is_empty() {
                match parse_message(rest) {
                    Ok(Parsed::Message { message, consumed }) => {
                        parsed.push(message);
                        rest = &rest[consumed..];
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(parsed, messages);
        }

        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(Parsed::Message { consumed, .. }) = parse_message(&bytes) {
                prop_assert!(consumed <= bytes.len());
            }
            if let Ok(handshake) = <&[u8; HANDSHAKE_LEN]>::try_from(bytes.get(..HANDSHAKE_LEN).unwrap_or(&[])) {
                let _ = Handshake::parse(handshake);
            }
        }

        #[test]
        fn plausible_frames_never_panic(
            claimed in 0u32..48,
            id in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut bytes = claimed.to_be_bytes().to_vec();
            bytes.push(id);
            bytes.extend_from_slice(&payload);
            match parse_message(&bytes) {
                Ok(Parsed::Message { consumed, .. }) => {
                    prop_assert_eq!(consumed, 4 + claimed as usize);
                }
                Ok(Parsed::Incomplete { needed }) => {
                    prop_assert_eq!(needed, 4 + claimed as usize - bytes.len());
                }
                Err(_) => {}
            }
        }

        #[test]
        fn handshakes_round_trip(
            reserved in any::<[u8; 8]>(),
            info_hash in any::<[u8; 20]>(),
            peer_id in any::<[u8; 20]>(),
        ) {
            let handshake = Handshake { reserved, info_hash, peer_id };
            prop_assert_eq!(Handshake::parse(&handshake.encode()), Ok(handshake));
        }
    }
}
