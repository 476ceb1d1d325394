//! The load generator's WebSocket framing once a connection is open: masked client frames
//! written straight into one output buffer, the server's frames cut out of one input
//! buffer. The probe's stages (and tungstenite) open the connection; a million messages a
//! second then go through these few lines, with no allocation per message.

use wscheck_server::{apply_mask, read_frame_length, write_frame_header};

const FIN: u8 = 0x80;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;
/// Room for a read at first, and at most: it doubles while reads fill it (pipelined large
/// messages), so an idle connection keeps little and a busy one reads a batch at once.
const READ_ROOM: (usize, usize) = (4 * 1024, 256 * 1024);

/// A server frame (a whole message, when the server fragmented it).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard<'a> {
    Text(&'a [u8]),
    Binary,
    Ping(&'a [u8]),
    Pong,
    Close(Option<u16>),
}

/// What cannot be read as the server's frames.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Garbled(pub &'static str);

/// One connection's buffers and masking keys.
pub(super) struct Framing {
    input: Vec<u8>,
    /// Where the next frame starts in `input`.
    at: usize,
    /// Room made for the next read.
    read_room: usize,
    /// A fragmented message's payload so far, and its opcode.
    fragments: Option<(u8, Vec<u8>)>,
    /// Where the last fragmented message was put together, lent out as a `Heard::Text`.
    assembled: Vec<u8>,
    pub(super) output: Vec<u8>,
    /// xorshift state for masking keys: unpredictable enough for a proxy (RFC 6455, 10.3).
    key: u64,
}

/// An empty framing (to hold a connection's place while its buffers are borrowed out).
impl Default for Framing {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Framing {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            input: Vec::new(),
            at: 0,
            read_room: READ_ROOM.0,
            fragments: None,
            assembled: Vec::new(),
            output: Vec::new(),
            key: seed | 1,
        }
    }

    fn next_key(&mut self) -> [u8; 4] {
        self.key ^= self.key << 13;
        self.key ^= self.key >> 7;
        self.key ^= self.key << 17;
        (self.key as u32).to_ne_bytes()
    }

    /// Appends a masked text frame: `wscheck-load <id> <seq> ` then `x` up to `size` bytes
    /// (what `exchange` checks the echo against).
    pub(super) fn push_payload(&mut self, id: u32, seq: u64, size: usize) {
        let mask = self.next_key();
        let out = &mut self.output;
        write_frame_header(out, TEXT, size, Some(mask));
        let start = out.len();
        out.extend_from_slice(b"wscheck-load ");
        push_decimal(out, u64::from(id));
        out.push(b' ');
        push_decimal(out, seq);
        out.push(b' ');
        out.truncate(start + size);
        let header = out.len() - start;
        apply_mask(&mut out[start..], mask);
        // The fill: `x`s (a memset), masked in one vectorised pass with the key turned to
        // where the fill starts.
        let turned: [u8; 4] = std::array::from_fn(|i| mask[(header + i) % 4]);
        out.resize(start + size, b'x');
        apply_mask(&mut out[start + header..], turned);
    }

    /// Appends a masked pong (the answer to a server's ping).
    pub(super) fn push_pong(&mut self, payload: &[u8]) {
        let mask = self.next_key();
        write_frame_header(&mut self.output, PONG, payload.len(), Some(mask));
        let start = self.output.len();
        self.output.extend_from_slice(payload);
        apply_mask(&mut self.output[start..], mask);
    }

    /// The buffer to read into: unread bytes moved to the front, room behind them.
    pub(super) fn read_buffer(&mut self) -> &mut Vec<u8> {
        if self.input.len() == self.input.capacity() && self.read_room < READ_ROOM.1 {
            self.read_room *= 2; // the last read filled all the room there was
        }
        if self.at == self.input.len() {
            self.input.clear();
            self.at = 0;
        } else if self.at > self.input.capacity() / 2 {
            // An unfinished frame moves to the front only when half the buffer is behind it.
            self.input.drain(..self.at);
            self.at = 0;
        }
        self.input.reserve(self.read_room);
        &mut self.input
    }

    /// Whether the bytes read end inside a frame: its rest is on its way.
    pub(super) fn mid_frame(&self) -> bool {
        self.at < self.input.len()
    }

    /// The next whole server frame (or message) read, if there is one.
    pub(super) fn next(&mut self) -> Result<Option<Heard<'_>>, Garbled> {
        loop {
            let Some((first, payload_at, length)) = server_header(&self.input[self.at..])? else {
                return Ok(None);
            };
            let start = self.at + payload_at;
            self.at = start + length;
            let payload = start..start + length;
            let opcode = first & 0x0f;
            let fin = first & FIN != 0;
            match opcode {
                TEXT | BINARY if fin && self.fragments.is_none() => {
                    return Ok(Some(if opcode == TEXT {
                        Heard::Text(&self.input[payload])
                    } else {
                        Heard::Binary
                    }));
                }
                TEXT | BINARY if self.fragments.is_none() => {
                    self.fragments = Some((opcode, self.input[payload].to_vec()));
                }
                CONTINUATION => {
                    let Some((kind, mut so_far)) = self.fragments.take() else {
                        return Err(Garbled("a continuation frame without a message"));
                    };
                    so_far.extend_from_slice(&self.input[payload]);
                    if !fin {
                        self.fragments = Some((kind, so_far));
                        continue;
                    }
                    self.assembled = so_far;
                    return Ok(Some(if kind == TEXT {
                        Heard::Text(&self.assembled)
                    } else {
                        Heard::Binary
                    }));
                }
                PING => return Ok(Some(Heard::Ping(&self.input[payload]))),
                PONG => return Ok(Some(Heard::Pong)),
                CLOSE => {
                    let code = self.input[payload]
                        .get(..2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]));
                    return Ok(Some(Heard::Close(code)));
                }
                _ => return Err(Garbled("a frame the protocol does not allow here")),
            }
        }
    }
}

/// The server frame header at the start of `data`: first byte, payload offset and length,
/// once the whole frame is there.
fn server_header(data: &[u8]) -> Result<Option<(u8, usize, usize)>, Garbled> {
    let (Some(&first), Some(&second)) = (data.first(), data.get(1)) else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err(Garbled("a masked frame from the server"));
    }
    let Some((length, payload_at)) = read_frame_length(data) else {
        return Ok(None);
    };
    let length = usize::try_from(length).map_err(|_| Garbled("a frame too large"))?;
    Ok((data.len() - payload_at.min(data.len()) >= length).then_some((first, payload_at, length)))
}

/// Appends `n` in decimal (no formatting machinery: this runs once per message).
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The client frames in `bytes`, unmasked: (first byte, payload).
    pub(in crate::load) fn client_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            assert_eq!(bytes[1] & 0x80, 0x80, "masked");
            let (len, at) = read_frame_length(bytes).expect("a whole header");
            let (len, payload_at) = (len as usize, at + 4);
            let mask: [u8; 4] = bytes[at..payload_at].try_into().unwrap();
            let mut payload = bytes[payload_at..payload_at + len].to_vec();
            apply_mask(&mut payload, mask);
            out.push((bytes[0], payload));
            bytes = &bytes[payload_at + len..];
        }
        out
    }

    #[test]
    fn payloads_are_masked_text_of_the_exact_size_with_fresh_keys() {
        let mut framing = Framing::new(42);
        for size in [32, 200, 70_000] {
            framing.push_payload(7, 12, size);
        }
        framing.push_pong(b"p");
        let frames = client_frames(&framing.output);
        for (i, size) in [32, 200, 70_000].into_iter().enumerate() {
            assert_eq!(frames[i].0, FIN | TEXT);
            assert_eq!(frames[i].1.len(), size);
            assert!(frames[i].1.starts_with(b"wscheck-load 7 12 x"));
            assert!(frames[i].1[18..].iter().all(|b| *b == b'x'));
        }
        assert_eq!(frames[3], (FIN | PONG, b"p".to_vec()));
        let keys: std::collections::HashSet<_> = (0..100).map(|_| framing.next_key()).collect();
        assert_eq!(keys.len(), 100);
    }

    #[test]
    fn server_frames_are_cut_across_reads_and_fragments_joined() {
        let mut wire = vec![
            0x81, 2, b'h', b'i', 0x01, 1, b'a', 0x89, 1, b'p', 0x80, 1, b'b',
        ];
        wire.extend([0x82, 126, 0x01, 0x00]);
        wire.extend([0u8; 256]);
        wire.extend([0x88, 2, 0x03, 0xe8]);
        let mut framing = Framing::new(1);
        let mut heard = Vec::new();
        for byte in wire {
            framing.read_buffer().push(byte);
            while let Some(frame) = framing.next().unwrap() {
                heard.push(format!("{frame:?}"));
            }
        }
        assert_eq!(
            heard,
            [
                "Text([104, 105])",
                "Ping([112])",
                "Text([97, 98])",
                "Binary",
                "Close(Some(1000))"
            ]
        );
        let mut framing = Framing::new(1);
        framing.read_buffer().extend([0x81, 0x82, 0, 0, 0, 0, 1, 2]);
        assert!(framing.next().is_err(), "a masked server frame");
    }
}
