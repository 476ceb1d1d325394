//! The anchors the bundled server is measured against: three WebSocket echo servers
//! (fastwebsockets on hyper, tokio-tungstenite, and a hand-written epoll floor), each run
//! as its own process (`figures --peer <arg> --port N`) so its CPU can be read from /proc.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// The anchors the bundled server is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    FastWebSockets,
    Tungstenite,
    Floor,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::FastWebSockets, Peer::Tungstenite, Peer::Floor];

    pub fn name(self) -> &'static str {
        match self {
            Peer::FastWebSockets => "fastwebsockets 0.10",
            Peer::Tungstenite => "tokio-tungstenite 0.30",
            Peer::Floor => "epoll floor",
        }
    }

    /// The token naming this peer on the command line.
    pub fn arg(self) -> &'static str {
        match self {
            Peer::FastWebSockets => "fastwebsockets",
            Peer::Tungstenite => "tungstenite",
            Peer::Floor => "floor",
        }
    }

    pub fn from_arg(s: &str) -> Option<Peer> {
        Self::ALL.into_iter().find(|peer| peer.arg() == s)
    }
}

/// Serves `peer` on 127.0.0.1:`port` until the process is killed.
pub fn serve(peer: Peer, port: u16) -> io::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    match peer {
        Peer::FastWebSockets => serve_tokio(addr, fast::connection),
        Peer::Tungstenite => serve_tokio(addr, tung::connection),
        Peer::Floor => floor::serve(addr),
    }
}

/// A listener made as the bundled server makes its own (SO_REUSEADDR, backlog 4096), so
/// the anchors queue connections alike; `share` adds SO_REUSEPORT for one listener per thread.
fn listener(addr: SocketAddr, share: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if share {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// The `#[tokio::main]` shape (a default multi-thread runtime): accept, set TCP_NODELAY,
/// spawn a task per connection.
fn serve_tokio<F, Fut>(addr: SocketAddr, connection: F) -> io::Result<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = {
        let _context = runtime.enter();
        tokio::net::TcpListener::from_std(listener(addr, false)?)?
    };
    runtime.block_on(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream));
                }
                // Out of descriptors: back off instead of spinning, as the bundled server does.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
}

mod fast {
    //! fastwebsockets 0.10 on hyper 1, in the shape of the crate's `examples/echo_server.rs`
    //! (auto-close and auto-pong on, as `after_handshake` sets them).

    use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    pub async fn connection(stream: tokio::net::TcpStream) {
        let conn = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(server_upgrade))
            .with_upgrades();
        // Unlike the example, quiet: resets when the generator stops are expected.
        let _ = conn.await;
    }

    async fn server_upgrade(
        mut req: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::spawn(async move {
            let _ = tokio::task::unconstrained(handle_client(fut)).await;
        });
        Ok(response)
    }

    async fn handle_client(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
        let mut ws = FragmentCollector::new(fut.await?);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Close => break,
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

mod tung {
    //! tokio-tungstenite 0.30: the idiomatic echo loop (read a message, send data back),
    //! with an 8 KiB read buffer.

    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Error, protocol::WebSocketConfig};

    pub async fn connection(stream: tokio::net::TcpStream) {
        let _ = echo(stream).await;
    }

    async fn echo(stream: tokio::net::TcpStream) -> Result<(), Error> {
        let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
        let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
        // Pongs and the close reply are queued by tungstenite and flushed on the next read.
        while let Some(message) = ws.next().await {
            let message = message?;
            if message.is_text() || message.is_binary() {
                ws.send(message).await?;
            }
        }
        Ok(())
    }
}

mod floor {
    //! The floor: a minimal epoll echo, one thread per core, each with its own SO_REUSEPORT
    //! listener and epoll instance (level-triggered). Each readable event is one read and
    //! at most one send: whole frames are unmasked in place, rewritten as server frames
    //! compacted at the buffer's start, and sent together. Reads go to a per-thread scratch
    //! buffer; a connection holds a heap buffer only while bytes are pending (an incomplete
    //! frame, or a reply the socket did not take). No UTF-8 check on text: that is the
    //! floor's saving, not an oversight.

    use std::io::{self, ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use rustix::buffer::spare_capacity;
    use rustix::event::epoll::{self, EventData, EventFlags};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    /// Per-thread read buffer: 16 in-flight 4 KiB messages fit in one read.
    const SCRATCH: usize = 64 * 1024;
    /// The load generator's largest `--size`.
    const MAX_PAYLOAD: u64 = 64 << 20;
    const MAX_REQUEST: usize = 8 * 1024;
    const LISTENER: u64 = u64::MAX;

    pub fn serve(addr: SocketAddr) -> io::Result<()> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Bind every listener first: a connection must not land before its thread runs.
        let listeners = (0..threads)
            .map(|_| super::listener(addr, true))
            .collect::<io::Result<Vec<_>>>()?;
        let workers: Vec<_> = listeners
            .into_iter()
            .map(|listener| std::thread::spawn(move || run(listener)))
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| io::Error::other("floor thread panicked"))??;
        }
        Ok(())
    }

    /// The connection is to be dropped (end of stream, error, malformed input, closed).
    struct Gone;

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Phase {
        Handshake,
        Open,
        /// The close reply is queued; drop once it is sent.
        Closing,
    }

    /// About 40 bytes when idle: `pending` holds no allocation then.
    struct Conn {
        stream: TcpStream,
        /// The first `unsent` bytes are reply not yet taken by the socket, the rest is
        /// input not yet parsed (an incomplete request or frame).
        pending: Vec<u8>,
        unsent: u32,
        phase: Phase,
        /// Inside a fragmented message: only continuations may follow.
        in_message: bool,
    }

    struct Worker {
        epoll: OwnedFd,
        conns: Vec<Option<Conn>>,
        free: Vec<usize>,
        /// Slots closed during the current batch of events, reusable after it: a later
        /// event of the same batch may still name them.
        freed: Vec<usize>,
        scratch: Vec<u8>,
    }

    fn run(listener: TcpListener) -> io::Result<()> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            &listener,
            EventData::new_u64(LISTENER),
            EventFlags::IN,
        )?;
        let mut worker = Worker {
            epoll,
            conns: Vec::new(),
            free: Vec::new(),
            freed: Vec::new(),
            scratch: vec![0; SCRATCH],
        };
        let mut events = Vec::with_capacity(1024);
        loop {
            events.clear();
            match epoll::wait(&worker.epoll, spare_capacity(&mut events), None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => return Err(error.into()),
            }
            for event in &events {
                match event.data.u64() {
                    LISTENER => worker.accept(&listener),
                    slot => worker.on_event(slot as usize, event.flags),
                }
            }
            worker.free.append(&mut worker.freed);
        }
    }

    impl Worker {
        fn accept(&mut self, listener: &TcpListener) {
            loop {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => return,
                    Err(error) if error.kind() == ErrorKind::ConnectionAborted => continue,
                    // Out of descriptors: back off (the listener stays ready, so it retries).
                    Err(_) => return std::thread::sleep(Duration::from_millis(10)),
                };
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let slot = self.free.pop().unwrap_or(self.conns.len());
                let data = EventData::new_u64(slot as u64);
                if epoll::add(&self.epoll, &stream, data, EventFlags::IN).is_err() {
                    self.free.push(slot);
                    continue;
                }
                let conn = Conn {
                    stream,
                    pending: Vec::new(),
                    unsent: 0,
                    phase: Phase::Handshake,
                    in_message: false,
                };
                if slot == self.conns.len() {
                    self.conns.push(Some(conn));
                } else {
                    self.conns[slot] = Some(conn);
                }
            }
        }

        fn on_event(&mut self, slot: usize, flags: EventFlags) {
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let outcome = if flags.contains(EventFlags::ERR) {
                Err(Gone)
            } else if conn.unsent > 0 {
                // Only EPOLLOUT is registered while a reply waits.
                conn.flush(slot, &self.epoll)
            } else {
                conn.on_readable(slot, &mut self.scratch, &self.epoll)
            };
            if outcome.is_err() {
                // Dropping the stream closes it, which also takes it out of the epoll set.
                self.conns[slot] = None;
                self.freed.push(slot);
            }
        }
    }

    impl Conn {
        /// One read, then one send answering every whole frame it completed.
        fn on_readable(
            &mut self,
            slot: usize,
            scratch: &mut [u8],
            epoll: &OwnedFd,
        ) -> Result<(), Gone> {
            let held = self.pending.len();
            let need = match self.phase {
                Phase::Open => frame_size(&self.pending),
                _ => 0,
            };
            if need <= SCRATCH {
                scratch[..held].copy_from_slice(&self.pending);
                let Some(n) = read_some(&self.stream, &mut scratch[held..])? else {
                    return Ok(());
                };
                self.pending = Vec::new();
                self.answer(slot, &mut scratch[..held + n], epoll)
            } else {
                // A frame larger than the scratch buffer: gather it in a buffer of its
                // size, reading no further than its end and answering once it is whole.
                let mut buffer = std::mem::take(&mut self.pending);
                buffer.reserve_exact(need - held);
                buffer.resize(need.min(held + SCRATCH), 0);
                let read = read_some(&self.stream, &mut buffer[held..]);
                buffer.truncate(held + read.as_ref().map_or(0, |n| n.unwrap_or(0)));
                read?;
                if buffer.len() == need {
                    self.answer(slot, &mut buffer, epoll)
                } else {
                    self.pending = buffer;
                    Ok(())
                }
            }
        }

        /// Parses `input` (pending bytes and the read after them), sends the reply once and
        /// keeps what is left: unsent reply, then the incomplete tail of the input.
        fn answer(&mut self, slot: usize, input: &mut [u8], epoll: &OwnedFd) -> Result<(), Gone> {
            let reply = match self.phase {
                Phase::Handshake => handshake(input, &mut self.in_message)?,
                _ => frames(input, &mut self.in_message)?,
            };
            if reply.upgraded {
                self.phase = Phase::Open;
            }
            let out = match &reply.owned {
                Some(owned) => &owned[..],
                None => &input[..reply.len],
            };
            let sent = send(&self.stream, out)?;
            let unsent = &out[sent..];
            // After a close nothing more is read, so the tail is dropped.
            let tail = if reply.close {
                &[][..]
            } else {
                &input[reply.used..]
            };
            if !unsent.is_empty() || !tail.is_empty() {
                let mut pending = Vec::with_capacity(unsent.len() + tail.len());
                pending.extend_from_slice(unsent);
                pending.extend_from_slice(tail);
                self.pending = pending;
            }
            self.unsent = u32::try_from(unsent.len()).map_err(|_| Gone)?;
            if reply.close {
                self.phase = Phase::Closing;
            }
            if self.unsent > 0 {
                // Stop reading until the socket takes the rest of the reply.
                let data = EventData::new_u64(slot as u64);
                epoll::modify(epoll, &self.stream, data, EventFlags::OUT).map_err(|_| Gone)
            } else if self.phase == Phase::Closing {
                Err(Gone)
            } else {
                Ok(())
            }
        }

        /// The socket has room again: send more of the waiting reply.
        fn flush(&mut self, slot: usize, epoll: &OwnedFd) -> Result<(), Gone> {
            let sent = send(&self.stream, &self.pending[..self.unsent as usize])?;
            self.pending.drain(..sent);
            self.unsent -= sent as u32;
            if self.unsent > 0 {
                return Ok(());
            }
            if self.phase == Phase::Closing {
                return Err(Gone);
            }
            if self.pending.is_empty() {
                self.pending = Vec::new();
            }
            let data = EventData::new_u64(slot as u64);
            epoll::modify(epoll, &self.stream, data, EventFlags::IN).map_err(|_| Gone)
        }
    }

    /// `Ok(None)`: nothing to read after all (level-triggered: it will be reported again).
    fn read_some(mut stream: &TcpStream, buffer: &mut [u8]) -> Result<Option<usize>, Gone> {
        match stream.read(buffer) {
            Ok(0) => Err(Gone),
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                Ok(None)
            }
            Err(_) => Err(Gone),
        }
    }

    /// One send; how much the socket took.
    fn send(mut stream: &TcpStream, bytes: &[u8]) -> Result<usize, Gone> {
        if bytes.is_empty() {
            return Ok(0);
        }
        match stream.write(bytes) {
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(0),
            Err(_) => Err(Gone),
        }
    }

    /// What one read produced: a reply (in place at the input's start, or `owned`), how
    /// much input it consumed, whether it completed the upgrade or answered a close.
    struct Reply {
        owned: Option<Vec<u8>>,
        len: usize,
        used: usize,
        upgraded: bool,
        close: bool,
    }

    /// The HTTP upgrade: 101 with the accept key, then any frames sent right behind it.
    fn handshake(input: &mut [u8], in_message: &mut bool) -> Result<Reply, Gone> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let used = match request.parse(input) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) if input.len() < MAX_REQUEST => {
                return Ok(Reply {
                    owned: None,
                    len: 0,
                    used: 0,
                    upgraded: false,
                    close: false,
                });
            }
            _ => return Err(Gone),
        };
        let key = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
            .ok_or(Gone)?;
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.value)
        )
        .into_bytes();
        let rest = frames(&mut input[used..], in_message)?;
        out.extend_from_slice(&input[used..used + rest.len]);
        Ok(Reply {
            len: out.len(),
            owned: Some(out),
            used: used + rest.used,
            upgraded: true,
            close: rest.close,
        })
    }

    /// Rewrites the whole client frames in `input` as server frames, in place: each is
    /// unmasked where it lies and moved down to the end of the reply so far (a server header
    /// is at least the 4 mask bytes shorter, so the reply never overtakes the input).
    fn frames(input: &mut [u8], in_message: &mut bool) -> Result<Reply, Gone> {
        let (mut used, mut len) = (0, 0);
        let mut close = false;
        while let Some(header) = Header::parse(&input[used..])? {
            let start = used + header.len;
            if input.len() - start < header.payload {
                break;
            }
            let end = start + header.payload;
            unmask(&mut input[start..end], header.mask);
            used = end;
            let b0 = match header.b0 & 0x0F {
                0 if !*in_message => return Err(Gone),
                1 | 2 if *in_message => return Err(Gone),
                0..=2 => {
                    *in_message = header.b0 & 0x80 == 0;
                    header.b0
                }
                // Ping: the pong carries its payload.
                0x9 => 0x8A,
                // Unsolicited pong: nothing to answer.
                0xA => continue,
                // Close: answer with its status code alone (a lone byte is no code).
                0x8 if header.payload == 1 => return Err(Gone),
                0x8 => {
                    close = true;
                    let code_end = start + header.payload.min(2);
                    len += put_frame(input, len, 0x88, start..code_end);
                    break;
                }
                _ => return Err(Gone),
            };
            len += put_frame(input, len, b0, start..end);
        }
        Ok(Reply {
            owned: None,
            len,
            used,
            upgraded: false,
            close,
        })
    }

    /// Writes an unmasked header at `at` and moves `payload` right behind it.
    fn put_frame(buffer: &mut [u8], at: usize, b0: u8, payload: std::ops::Range<usize>) -> usize {
        let size = payload.len();
        buffer[at] = b0;
        let header = if size < 126 {
            buffer[at + 1] = size as u8;
            2
        } else if let Ok(short) = u16::try_from(size) {
            buffer[at + 1] = 126;
            buffer[at + 2..at + 4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            buffer[at + 1] = 127;
            buffer[at + 2..at + 10].copy_from_slice(&(size as u64).to_be_bytes());
            10
        };
        buffer.copy_within(payload, at + header);
        header + size
    }

    /// A client frame header.
    struct Header {
        b0: u8,
        /// Header bytes, mask included.
        len: usize,
        payload: usize,
        mask: [u8; 4],
    }

    impl Header {
        /// `Ok(None)`: not all of the header is here yet.
        fn parse(bytes: &[u8]) -> Result<Option<Header>, Gone> {
            let [b0, b1, ..] = *bytes else {
                return Ok(None);
            };
            // Reserved bits (no extension was negotiated) or an unmasked client frame.
            if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
                return Err(Gone);
            }
            let (payload, at) = match b1 & 0x7F {
                126 => match bytes.get(2..4) {
                    Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
                    _ => return Ok(None),
                },
                127 => match bytes.get(2..10).map(<[u8; 8]>::try_from) {
                    Some(Ok(be)) => (u64::from_be_bytes(be), 10),
                    _ => return Ok(None),
                },
                short => (u64::from(short), 2),
            };
            let control = b0 & 0x08 != 0;
            if payload > MAX_PAYLOAD || (control && (b0 & 0x80 == 0 || payload > 125)) {
                return Err(Gone);
            }
            let Some(&[m0, m1, m2, m3]) = bytes.get(at..at + 4) else {
                return Ok(None);
            };
            Ok(Some(Header {
                b0,
                len: at + 4,
                payload: payload as usize,
                mask: [m0, m1, m2, m3],
            }))
        }
    }

    /// The size of the frame `pending` starts with, once its header is known (else 0).
    fn frame_size(pending: &[u8]) -> usize {
        match Header::parse(pending) {
            Ok(Some(header)) => header.len + header.payload,
            _ => 0,
        }
    }

    /// XORs the mask over the payload, eight bytes at a time.
    fn unmask(payload: &mut [u8], mask: [u8; 4]) {
        let [a, b, c, d] = mask;
        let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
        let mut chunks = payload.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
        }
        // The remainder starts at a multiple of 8, so the mask phase is 0 there.
        for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
            *byte ^= mask[i & 3];
        }
    }
}
