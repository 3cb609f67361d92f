//! `webseed::bridge::wire` on arbitrary bytes: what the webseed bridge reads from an engine
//! (librqbit) connected to it, a 68-byte handshake and then length-prefixed BEP 3 messages.
//!
//! The input is the engine's byte stream. When its first 68 bytes are a handshake, the rest is
//! read as messages against a torrent layout made from the handshake's info hash (so the fuzzer
//! picks piece length and file sizes); otherwise the whole input is read as messages against a
//! fixed layout, so random bytes still reach the message decoder.
//!
//! Invariants:
//! - no panic; a parsed handshake encodes back to its 68 bytes, a refused one does not start
//!   with `19` and `BitTorrent protocol`;
//! - the stream splits into the same messages, and ends the same way, whether it arrives whole
//!   or in small chunks (as `connection.rs` reads it: read, parse, advance, repeat); a message
//!   is never recognised before its last byte has arrived;
//! - a strict prefix of a frame is `Incomplete`, with a shortfall that adds up to the frame's
//!   length (once the length prefix is in) and never asks past `MAX_MESSAGE_LEN` + 4 bytes;
//! - the decoder never allocates more than the bytes it was handed (one payload copy at most),
//!   checked by a counting allocator: memory is bounded by the declared limits, not by what a
//!   length prefix claims;
//! - every message re-encodes to its frame (an `Ignored` one to its header and a zeroed payload
//!   of the same length) and that encoding parses back to the same message;
//! - a `request` asks for `1..=MAX_REQUEST_LEN` bytes; when the connection's own range check
//!   (`piece_size`) passes, `TorrentLayout::segments` maps it onto files without gap, overlap
//!   or zero-length run, inside each file; when it fails, `segments` refuses it too;
//! - the bridge's own opening (handshake and full bitfield) parses back as sent.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use webseed::bridge::wire::{
    BlockRequest, HANDSHAKE_LEN, Handshake, MAX_MESSAGE_LEN, MAX_REQUEST_LEN, Message, PSTR,
    Parsed, WireError, full_bitfield, parse_message, piece_header,
};
use webseed::bridge::{LayoutFile, TorrentLayout};

/// Records the largest single allocation made while [`TRACKING`] is set.
struct Counting;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest frame the decoder may ever wait for: a length prefix and its payload.
const MAX_FRAME: usize = MAX_MESSAGE_LEN as usize + 4;

/// How many pieces the opening bitfield is checked for (128 KiB of bitfield at most).
const MAX_CHECKED_PIECES: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let (layout, stream) = match data.first_chunk::<HANDSHAKE_LEN>() {
        Some(theirs) => match Handshake::parse(theirs) {
            Ok(handshake) => {
                assert_eq!(
                    &handshake.encode(),
                    theirs,
                    "a handshake does not re-encode"
                );
                check_opening(&handshake);
                (layout_from(handshake.info_hash), &data[HANDSHAKE_LEN..])
            }
            Err(error) => {
                assert_eq!(error, WireError::Protocol);
                assert!(
                    theirs[0] != 19 || &theirs[1..20] != PSTR,
                    "a good handshake refused"
                );
                (fixed_layout(), data)
            }
        },
        None => (fixed_layout(), data),
    };
    layout.check().expect("fuzz layouts are servable");

    let whole = split_whole(stream);
    let chunked = split_chunked(stream);
    assert_eq!(whole, chunked, "the split depends on how the bytes arrive");

    let (frames, _end) = whole;
    let mut answered = false;
    for (message, frame) in &frames {
        check_prefixes(frame);
        check_message(message, frame);
        if let Message::Request(request) = message {
            answered |= check_request(&layout, request, !answered);
        }
    }
});

/// How a stream ended: waiting for more bytes, or on a protocol error.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Incomplete,
    Error(WireError),
}

/// The messages of `stream` and the frame each came from, parsed from the whole buffer.
fn split_whole(stream: &[u8]) -> (Vec<(Message, Vec<u8>)>, End) {
    let mut frames = Vec::new();
    let mut start = 0;
    loop {
        match tracked_parse(&stream[start..]) {
            Ok(Parsed::Message { message, consumed }) => {
                assert!((4..=stream.len() - start).contains(&consumed));
                frames.push((message, stream[start..start + consumed].to_vec()));
                start += consumed;
            }
            Ok(Parsed::Incomplete { needed }) => {
                check_incomplete(&stream[start..], needed);
                return (frames, End::Incomplete);
            }
            Err(error) => return (frames, End::Error(error)),
        }
    }
}

/// The same, with the bytes arriving in chunks of 1 to 40 bytes (sizes from a generator seeded
/// by the input) and the buffer parsed after each, as `connection.rs` does after every read.
fn split_chunked(stream: &[u8]) -> (Vec<(Message, Vec<u8>)>, End) {
    let mut frames = Vec::new();
    let mut state = stream
        .iter()
        .take(8)
        .fold(stream.len() as u64 | 1, |h, &b| {
            h.rotate_left(8) ^ u64::from(b)
        })
        | 1;
    let (mut start, mut end) = (0, 0);
    while end < stream.len() {
        // xorshift64: cheap, deterministic chunk sizes.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let before = end;
        end = (end + 1 + (state % 40) as usize).min(stream.len());
        loop {
            match tracked_parse(&stream[start..end]) {
                Ok(Parsed::Message { message, consumed }) => {
                    assert!(consumed <= end - start);
                    assert!(
                        start + consumed > before,
                        "a message was complete before its last byte arrived"
                    );
                    frames.push((message, stream[start..start + consumed].to_vec()));
                    start += consumed;
                }
                Ok(Parsed::Incomplete { needed }) => {
                    check_incomplete(&stream[start..end], needed);
                    break;
                }
                Err(error) => return (frames, End::Error(error)),
            }
        }
    }
    (frames, End::Incomplete)
}

/// Every strict prefix of a frame (some of them: the first bytes, the middle, all but the
/// last) is `Incomplete` with the exact shortfall.
fn check_prefixes(frame: &[u8]) {
    let len = frame.len();
    let cuts = (0..len.min(6)).chain([len / 2, len - 1]);
    for cut in cuts.filter(|&cut| cut < len) {
        match tracked_parse(&frame[..cut]) {
            Ok(Parsed::Incomplete { needed }) => {
                check_incomplete(&frame[..cut], needed);
                if cut >= 4 {
                    assert_eq!(cut + needed, len, "the shortfall of a {cut}-byte prefix");
                }
            }
            other => panic!("a {cut}-byte prefix of a {len}-byte frame gave {other:?}"),
        }
    }
}

/// [`parse_message`], checking it allocates no block larger than its input.
fn tracked_parse(buf: &[u8]) -> Result<Parsed, WireError> {
    LARGEST.store(0, Ordering::Relaxed);
    TRACKING.store(true, Ordering::Relaxed);
    let parsed = parse_message(buf);
    TRACKING.store(false, Ordering::Relaxed);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= buf.len() && largest < MAX_FRAME,
        "parsing {} bytes allocated {largest} at once",
        buf.len()
    );
    parsed
}

/// An `Incomplete` answer names the exact shortfall and never asks past the limit.
fn check_incomplete(buf: &[u8], needed: usize) {
    assert!(needed > 0, "incomplete yet nothing needed");
    let wanted = buf.len() + needed;
    assert!(wanted <= MAX_FRAME, "waits for {wanted} bytes");
    if let Some(prefix) = buf.first_chunk::<4>() {
        assert_eq!(wanted, 4 + u32::from_be_bytes(*prefix) as usize);
    } else {
        assert_eq!(wanted, 4);
    }
}

/// A message re-encodes to its frame and parses back from its encoding.
fn check_message(message: &Message, frame: &[u8]) {
    let mut encoded = Vec::new();
    message.encode(&mut encoded);
    match message {
        Message::Ignored { id, len } => {
            assert!(*id > 8, "a known id {id} was skipped");
            assert_eq!(*len as usize, frame.len() - 5);
            assert_eq!(encoded.len(), frame.len());
            assert_eq!(encoded[..5], frame[..5]);
            assert!(encoded[5..].iter().all(|&b| b == 0));
        }
        _ => assert_eq!(
            encoded, frame,
            "{message:?} does not re-encode to its frame"
        ),
    }
    match message {
        Message::Request(request) => {
            assert!((1..=MAX_REQUEST_LEN).contains(&request.length));
        }
        Message::Piece { data, .. } => assert_eq!(data.len(), frame.len() - 13),
        Message::Bitfield(bits) => assert_eq!(bits.len(), frame.len() - 5),
        _ => {}
    }
    assert_eq!(
        parse_message(&encoded),
        Ok(Parsed::Message {
            message: message.clone(),
            consumed: encoded.len()
        })
    );
}

/// What `connection.rs` does with a `request`: its range check, then the fetcher's mapping of
/// the piece onto files (and, for the first one in range, the `piece` answer's framing).
///
/// Returns whether the request was in range.
fn check_request(layout: &TorrentLayout, request: &BlockRequest, answer: bool) -> bool {
    let BlockRequest {
        piece,
        offset,
        length,
    } = *request;
    let size = layout.piece_size(piece).unwrap_or(0);
    let end = u64::from(offset) + u64::from(length);
    let segments = layout.segments(piece, offset.into(), length.into());
    if end > size {
        assert!(
            segments.is_err(),
            "segments accepts what the connection refuses"
        );
        return false;
    }
    let segments = segments.expect("segments refuses what the connection accepts");
    let mut starts = Vec::with_capacity(layout.files.len());
    let mut next = 0u64;
    for file in &layout.files {
        starts.push(next);
        next += file.length;
    }
    let first = u64::from(piece) * layout.piece_length + u64::from(offset);
    let mut position = first;
    let mut last_file = None;
    for segment in &segments {
        assert!(segment.length > 0, "a zero-length segment");
        assert!(last_file < Some(segment.file), "segments out of file order");
        last_file = Some(segment.file);
        let file = &layout.files[segment.file];
        assert!(
            segment.offset + segment.length <= file.length,
            "a segment past its file"
        );
        assert_eq!(
            starts[segment.file] + segment.offset,
            position,
            "a gap or an overlap"
        );
        position += segment.length;
    }
    assert_eq!(
        position,
        first + u64::from(length),
        "segments do not cover the request"
    );

    if answer {
        // The block is cut from the whole piece, so it fits; its frame parses back.
        assert!(end <= size);
        let block = vec![0x5a; length as usize];
        let mut frame = piece_header(piece, offset, length).to_vec();
        frame.extend_from_slice(&block);
        assert_eq!(
            parse_message(&frame),
            Ok(Parsed::Message {
                message: Message::Piece {
                    piece,
                    offset,
                    data: block.into()
                },
                consumed: frame.len()
            })
        );
    }
    true
}

/// The bridge's answer to a good handshake parses back as sent.
fn check_opening(theirs: &Handshake) {
    let layout = layout_from(theirs.info_hash);
    let ours = Handshake {
        reserved: [0; 8],
        info_hash: layout.info_hash,
        peer_id: *b"-XW0000-fuzzfuzzfuzz",
    };
    assert_eq!(Handshake::parse(&ours.encode()), Ok(ours));
    let pieces = layout.piece_count();
    if pieces == 0 || pieces > MAX_CHECKED_PIECES {
        return;
    }
    let bits = full_bitfield(pieces);
    assert_eq!(bits.len(), pieces.div_ceil(8) as usize);
    assert_eq!(bits.iter().map(|b| b.count_ones()).sum::<u32>(), pieces);
    let mut opening = Vec::new();
    Message::Bitfield(bits.clone().into()).encode(&mut opening);
    assert_eq!(
        parse_message(&opening),
        Ok(Parsed::Message {
            message: Message::Bitfield(bits.into()),
            consumed: opening.len()
        })
    );
}

/// A layout chosen by the 20 bytes of an info hash: piece length `1..=4 MiB` from the first
/// four, then four files of up to 16 MiB (zero-length ones included) from the rest.
fn layout_from(info_hash: [u8; 20]) -> TorrentLayout {
    let word = |i: usize| u32::from_be_bytes(info_hash[i..i + 4].try_into().expect("4 bytes"));
    TorrentLayout {
        info_hash,
        name: "0123456789abcdef0123456789abcdef01234567".into(),
        piece_length: 1 + u64::from(word(0) % (4 << 20)),
        files: (0..4)
            .map(|i| LayoutFile {
                path: vec!["dir".into(), format!("f{i}")],
                length: u64::from(word(4 + 4 * i) & 0x00ff_ffff),
                // One file named as a checkout holds a name that is not UTF-8.
                raw_path: (i == 2).then(|| vec![b"dir".to_vec(), b"f\xe9".to_vec()]),
            })
            .collect(),
    }
}

/// The layout used when the input starts with no handshake: 16 KiB pieces over files of
/// 40000, 0, 16384 and 1 bytes (four pieces, the last one short).
fn fixed_layout() -> TorrentLayout {
    let mut info_hash = [0; 20];
    info_hash[..4].copy_from_slice(&0x3fffu32.to_be_bytes());
    info_hash[4..8].copy_from_slice(&40000u32.to_be_bytes());
    info_hash[12..16].copy_from_slice(&16384u32.to_be_bytes());
    info_hash[16..20].copy_from_slice(&1u32.to_be_bytes());
    layout_from(info_hash)
}
