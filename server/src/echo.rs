//! The hot path of a session: whole, simple client frames (unfragmented text or binary,
//! ping, pong) answered straight from the read buffer into the output, each header parsed
//! once, without tungstenite's protocol engine. Anything else (fragments, closes, invalid
//! frames, invalid UTF-8) stops the hot path at that frame; the engine takes it from there,
//! so the close codes and the conformance stay the engine's.

use crate::protocol::ECHO_PREFIX;

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASKED: u8 = 0x80;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const PING: u8 = 0x9;
const PONG: u8 = 0xa;
/// The largest payload of a control frame (RFC 6455, 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A client frame the hot path answers: its opcode, where its payload starts and how long
/// it is, and the mask.
struct Simple {
    opcode: u8,
    payload_at: usize,
    length: usize,
    mask: [u8; 4],
}

/// What the hot path did with a run of bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Answered {
    /// Bytes of whole frames answered, from the start.
    pub(crate) consumed: usize,
    /// Data messages echoed.
    pub(crate) messages: u32,
}

/// Answers the simple frames at the start of `data` into `output`, up to the first frame
/// that is unfinished or needs the protocol engine.
pub(crate) fn answer_simple(
    data: &[u8],
    max_message_size: usize,
    output: &mut Vec<u8>,
) -> Answered {
    let mut answered = Answered::default();
    while let Some(frame) = simple_frame(&data[answered.consumed..], max_message_size) {
        let start = answered.consumed + frame.payload_at;
        let payload = &data[start..start + frame.length];
        let before = output.len();
        match frame.opcode {
            TEXT => {
                write_header(output, TEXT, ECHO_PREFIX.len() + payload.len());
                output.extend_from_slice(ECHO_PREFIX.as_bytes());
                let text_at = output.len();
                unmask_into(output, payload, frame.mask);
                if std::str::from_utf8(&output[text_at..]).is_err() {
                    // The engine closes with 1007 on this frame.
                    output.truncate(before);
                    break;
                }
                answered.messages += 1;
            }
            BINARY => {
                write_header(output, BINARY, payload.len());
                unmask_into(output, payload, frame.mask);
                answered.messages += 1;
            }
            PING => {
                write_header(output, PONG, payload.len());
                unmask_into(output, payload, frame.mask);
            }
            _ => {} // a pong: heard, nothing to answer
        }
        answered.consumed = start + frame.length;
    }
    answered
}

/// The frame at the start of `data` if it is whole and simple: FIN set, no RSV bits,
/// masked, text/binary within the size limit or ping/pong within 125 bytes.
fn simple_frame(data: &[u8], max_message_size: usize) -> Option<Simple> {
    let (&first, &second) = (data.first()?, data.get(1)?);
    let opcode = first & 0x0f;
    if first & (FIN | RSV) != FIN || second & MASKED == 0 {
        return None;
    }
    let (length, mask_at) = read_frame_length(data)?;
    let limit = match opcode {
        TEXT | BINARY => max_message_size as u64,
        // tungstenite holds control frames to the size limit too (found by fuzzing).
        PING | PONG => MAX_CONTROL_PAYLOAD.min(max_message_size as u64),
        _ => return None,
    };
    let payload_at = mask_at + 4;
    let length = usize::try_from(length)
        .ok()
        .filter(|l| *l as u64 <= limit)?;
    // Whole: the mask and the payload are there (a header alone is not, even for an
    // empty payload: found by fuzzing).
    let mask: [u8; 4] = data.get(mask_at..payload_at)?.try_into().ok()?;
    if data.len() - payload_at < length {
        return None;
    }
    Some(Simple {
        opcode,
        payload_at,
        length,
        mask,
    })
}

/// The payload length the frame header at the start of `data` declares (7, 16 or 64 bits,
/// RFC 6455, 5.2) and where its length field ends; `None` until those bytes are there.
pub fn read_frame_length(data: &[u8]) -> Option<(u64, usize)> {
    Some(match data.get(1)? & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(data.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(data.get(2..10)?.try_into().ok()?), 10),
        short => (u64::from(short), 2),
    })
}

/// Appends a server frame header (FIN, unmasked) for `length` payload bytes.
pub(crate) fn write_header(output: &mut Vec<u8>, opcode: u8, length: usize) {
    write_frame_header(output, opcode, length, None);
}

/// Appends a frame header with FIN set: the opcode, `length` in the shortest of the three
/// encodings, and the masking key when there is one (a client's frames have one).
pub fn write_frame_header(output: &mut Vec<u8>, opcode: u8, length: usize, mask: Option<[u8; 4]>) {
    let masked = if mask.is_some() { MASKED } else { 0 };
    output.push(FIN | opcode);
    match length {
        0..=125 => output.push(masked | length as u8),
        126..=0xffff => {
            output.push(masked | 126);
            output.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            output.push(masked | 127);
            output.extend_from_slice(&(length as u64).to_be_bytes());
        }
    }
    if let Some(mask) = mask {
        output.extend_from_slice(&mask);
    }
}

/// Appends a whole server text message (the greeting, the introspection document).
pub(crate) fn write_text(output: &mut Vec<u8>, text: &str) {
    write_header(output, TEXT, text.len());
    output.extend_from_slice(text.as_bytes());
}

/// Appends a server ping.
pub(crate) fn write_ping(output: &mut Vec<u8>, payload: &[u8]) {
    write_header(output, PING, payload.len());
    output.extend_from_slice(payload);
}

/// Appends `payload` unmasked: copied, then unmasked in place.
fn unmask_into(output: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    let start = output.len();
    output.extend_from_slice(payload);
    apply_mask(&mut output[start..], mask);
}

/// Masks or unmasks `bytes` in place (RFC 6455, 5.3: the same XOR both ways), a 64-bit word
/// at a time, in a loop the compiler vectorises, then the tail.
pub fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut words = bytes.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes((&*word).try_into().expect("eight bytes")) ^ wide;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame whose first byte (FIN, RSV, opcode) is `first`.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = Vec::new();
        write_frame_header(&mut out, 0, payload.len(), Some(mask));
        out[0] = first; // the tests also need frames without FIN or with RSV bits
        unmask_into(&mut out, payload, mask);
        out
    }

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out, opcode, payload.len());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn echoes_every_length_encoding_in_one_output() {
        let long = vec![b'a'; 70_000];
        let medium = vec![7u8; 300];
        let mut input = client_frame(FIN | TEXT, b"hi");
        input.extend(client_frame(FIN | BINARY, &medium));
        input.extend(client_frame(FIN | TEXT, &long));
        input.extend(client_frame(FIN | PING, b"p"));
        input.extend(client_frame(FIN | PONG, b"q"));
        let mut output = Vec::new();
        let answered = answer_simple(&input, 1 << 20, &mut output);
        assert_eq!(
            answered,
            Answered {
                consumed: input.len(),
                messages: 3
            }
        );
        let mut expected = server_frame(TEXT, b"Echo: hi");
        expected.extend(server_frame(BINARY, &medium));
        expected.extend(server_frame(TEXT, &[b"Echo: ".as_slice(), &long].concat()));
        expected.extend(server_frame(PONG, b"p"));
        assert_eq!(output, expected);
    }

    #[test]
    fn stops_at_what_the_engine_must_see() {
        let ok = client_frame(FIN | TEXT, b"ok");
        let stoppers = [
            client_frame(TEXT, b"fragment"),         // no FIN
            client_frame(FIN | 0x40 | TEXT, b"rsv"), // RSV1
            client_frame(FIN | 0x8, &[0x03, 0xe8]),  // close
            client_frame(FIN | 0x3, b"reserved"),    // reserved opcode
            client_frame(FIN | TEXT, &[0xff, 0xfe]), // invalid UTF-8
            client_frame(FIN | PING, &[0; 126]),     // control frame too long
            client_frame(FIN | BINARY, &[0; 1025]),  // over the size limit
            vec![FIN | TEXT, 2, b'h', b'i'],         // unmasked
        ];
        for stopper in stoppers {
            let mut input = ok.clone();
            input.extend(&stopper);
            input.extend(&ok);
            let mut output = Vec::new();
            let answered = answer_simple(&input, 1024, &mut output);
            assert_eq!(answered.consumed, ok.len(), "{stopper:?}");
            assert_eq!(output, server_frame(TEXT, b"Echo: ok"), "{stopper:?}");
        }
        // Unfinished at the end of what was read: a payload, a mask (even of an empty one:
        // found by fuzzing), a length.
        let unfinished = [
            client_frame(FIN | TEXT, b"cut")[..7].to_vec(),
            client_frame(FIN | TEXT, b"")[..3].to_vec(),
            client_frame(FIN | BINARY, &[0; 300])[..3].to_vec(),
        ];
        let mut output = Vec::new();
        let pong_over_a_tiny_limit = client_frame(FIN | PONG, b"0123456789");
        assert_eq!(
            answer_simple(&pong_over_a_tiny_limit, 1, &mut output).consumed,
            0
        );
        for cut in unfinished {
            let input = [ok.as_slice(), &cut].concat();
            let answered = answer_simple(&input, 1024, &mut Vec::new());
            assert_eq!(answered.consumed, ok.len(), "{cut:?}");
        }
    }

    #[test]
    fn a_length_near_u64_max_is_not_simple() {
        let mut frame = vec![FIN | BINARY, MASKED | 127];
        frame.extend([0xff; 8]);
        frame.extend([1, 2, 3, 4]);
        assert_eq!(
            answer_simple(&frame, usize::MAX, &mut Vec::new()).consumed,
            0
        );
    }
}
