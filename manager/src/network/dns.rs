//! Embedded DNS server for user-defined networks (Docker's 127.0.0.11 equivalent, served on each
//! network's gateway): answers container names for the querying client's networks, forwards the rest.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

/// Answers for names berthd knows: given the client's address and the queried name (lowercase, no trailing dot), the container addresses, or None to forward upstream.
pub type Lookup = Arc<dyn Fn(Ipv4Addr, &str) -> Option<Vec<Ipv4Addr>> + Send + Sync>;
/// Reverse lookups: client address, queried address → a name (no trailing dot), or None to forward.
pub type Reverse = Arc<dyn Fn(Ipv4Addr, Ipv4Addr) -> Option<String> + Send + Sync>;

const TTL: u32 = 600; // Docker's
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Caps on concurrent forwarded UDP queries / TCP connections (Docker drops beyond 1024).
const MAX_INFLIGHT: usize = 1024;
const MAX_TCP_CONNS: usize = 256;
/// UDP payload size we advertise in EDNS replies.
const EDNS_PAYLOAD: u16 = 1232;

/// A running server; dropping it (or calling stop) stops serving and frees the port.
pub struct DnsServer {
    local: SocketAddr,
    tasks: [JoinHandle<()>; 2],
}

impl DnsServer {
    pub async fn start(
        listen: SocketAddr,
        lookup: Lookup,
        reverse: Reverse,
        upstreams: Vec<SocketAddr>,
    ) -> io::Result<DnsServer> {
        let (udp, tcp) = bind_pair(listen).await?;
        let local = udp.local_addr()?;
        // Forwarding to ourselves would loop.
        let upstreams = upstreams.into_iter().filter(|u| *u != local).collect();
        let ctx = Arc::new(Ctx {
            lookup,
            reverse,
            upstreams,
        });
        let tasks = [
            tokio::spawn(serve_udp(Arc::new(udp), ctx.clone())),
            tokio::spawn(serve_tcp(tcp, ctx)),
        ];
        Ok(DnsServer { local, tasks })
    }

    /// The bound UDP address (TCP listens on the same one).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stop(self) {}
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // Aborting the loops drops their JoinSets, which aborts in-flight queries and
        // connections, so every socket clone goes away.
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The host's resolvers from /etc/resolv.conf (port 53), as upstreams.
pub fn host_upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|s| parse_resolv_conf(&s))
        .unwrap_or_default()
}

fn parse_resolv_conf(conf: &str) -> Vec<SocketAddr> {
    conf.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // Scoped IPv6 (fe80::1%eth0) doesn't parse and is skipped.
            words.next()?.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Binds UDP and TCP on the same address; with port 0 the TCP side must take the port the
/// kernel picked for UDP, so retry if that one is taken for TCP.
async fn bind_pair(listen: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut tries = if listen.port() == 0 { 10 } else { 1 };
    loop {
        let udp = UdpSocket::bind(listen).await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if tries > 1 && e.kind() == io::ErrorKind::AddrInUse => tries -= 1,
            Err(e) => return Err(e),
        }
    }
}

struct Ctx {
    lookup: Lookup,
    reverse: Reverse,
    upstreams: Vec<SocketAddr>,
}

enum Outcome {
    Reply(Vec<u8>),
    /// Not ours: relay the raw query upstream (the parsed query is kept for a SERVFAIL).
    Forward(Message),
}

impl Ctx {
    /// None = drop the packet (malformed, a response, no question).
    fn respond(&self, packet: &[u8], client: IpAddr, tcp: bool) -> Option<Outcome> {
        let req = Message::from_vec(packet).ok()?;
        if req.message_type() != MessageType::Query {
            return None;
        }
        let q = req.query()?; // several questions: the first one counts
        let client = match client {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        let local = client
            .filter(|_| req.op_code() == OpCode::Query && q.query_class() == DNSClass::IN)
            .and_then(|c| self.local_answers(c, q.name(), q.query_type()));
        match local {
            Some(answers) => encode(reply(&req, ResponseCode::NoError, answers), limit(&req, tcp)).map(Outcome::Reply),
            None => Some(Outcome::Forward(req)),
        }
    }

    /// Some(records) when the name is ours (possibly no records, e.g. AAAA), None to forward.
    fn local_answers(&self, client: Ipv4Addr, name: &Name, qtype: RecordType) -> Option<Vec<Record>> {
        match qtype {
            RecordType::A | RecordType::AAAA => {
                let key = name.to_lowercase().to_ascii();
                let key = key.trim_end_matches('.');
                if key.is_empty() {
                    return None;
                }
                let ips = (self.lookup)(client, key)?;
                if qtype == RecordType::AAAA {
                    return Some(Vec::new()); // containers are IPv4-only: NOERROR, no data
                }
                Some(
                    ips.into_iter()
                        .map(|ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip))))
                        .collect(),
                )
            }
            RecordType::PTR => {
                let net = name.parse_arpa_name().ok()?;
                let IpAddr::V4(addr) = net.addr() else { return None };
                if net.prefix_len() != 32 {
                    return None;
                }
                let mut target = Name::from_ascii((self.reverse)(client, addr)?).ok()?;
                target.set_fqdn(true);
                Some(vec![Record::from_rdata(name.clone(), TTL, RData::PTR(PTR(target)))])
            }
            _ => None,
        }
    }

    /// The upstream answer, else SERVFAIL.
    async fn forward_or_fail(&self, packet: &[u8], req: &Message, tcp: bool) -> Option<Vec<u8>> {
        match forward(packet, &self.upstreams, tcp).await {
            Some(resp) => Some(resp),
            None => encode(reply(req, ResponseCode::ServFail, Vec::new()), limit(req, tcp)),
        }
    }
}

fn reply(req: &Message, rcode: ResponseCode, answers: Vec<Record>) -> Message {
    let mut m = Message::new();
    m.set_header(Header::response_from_request(req.header()));
    m.set_authoritative(rcode == ResponseCode::NoError)
        .set_recursion_available(true)
        .set_response_code(rcode)
        .add_queries(req.query().cloned())
        .add_answers(answers);
    if req.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        m.set_edns(edns);
    }
    m
}

fn limit(req: &Message, tcp: bool) -> usize {
    if tcp {
        u16::MAX as usize
    } else {
        req.max_payload().min(EDNS_PAYLOAD).into()
    }
}

/// Too big for the transport: send TC with no answers so the client retries over TCP.
fn encode(m: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = m.to_vec().ok()?;
    if bytes.len() <= limit {
        Some(bytes)
    } else {
        m.truncate().to_vec().ok()
    }
}

/// Relays the raw query under a fresh random ID (against spoofed answers), trying upstreams in
/// order; the first valid answer comes back with the client's ID.
async fn forward(packet: &[u8], upstreams: &[SocketAddr], tcp: bool) -> Option<Vec<u8>> {
    let client_id = Header::read(&mut BinDecoder::new(packet)).ok()?.id();
    let mut id = [0u8; 2];
    getrandom::getrandom(&mut id).ok()?;
    let id = u16::from_be_bytes(id);
    let mut query = packet.to_vec();
    set_id(&mut query, id);
    for &up in upstreams {
        let attempt = async {
            if tcp {
                forward_tcp(&query, up, id).await
            } else {
                forward_udp(&query, up, id).await
            }
        };
        match timeout(FORWARD_TIMEOUT, attempt).await {
            Ok(Ok(mut resp)) => {
                set_id(&mut resp, client_id);
                return Some(resp);
            }
            Ok(Err(e)) => tracing::debug!("dns: upstream {up}: {e}"),
            Err(_) => tracing::debug!("dns: upstream {up}: timed out"),
        }
    }
    None
}

/// The ID is the first two bytes of every DNS message.
fn set_id(msg: &mut [u8], id: u16) {
    if let Some(b) = msg.get_mut(..2) {
        b.copy_from_slice(&id.to_be_bytes());
    }
}

fn is_answer_to(resp: &[u8], id: u16) -> bool {
    Header::read(&mut BinDecoder::new(resp)).is_ok_and(|h| h.id() == id && h.message_type() == MessageType::Response)
}

async fn forward_udp(query: &[u8], up: SocketAddr, id: u16) -> io::Result<Vec<u8>> {
    let any: SocketAddr = if up.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(any).await?;
    sock.connect(up).await?; // connected: only the upstream's datagrams are received
    sock.send(query).await?;
    let mut buf = vec![0u8; u16::MAX as usize];
    loop {
        let n = sock.recv(&mut buf).await?;
        if is_answer_to(&buf[..n], id) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn forward_tcp(query: &[u8], up: SocketAddr, id: u16) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(up).await?;
    write_frame(&mut s, query).await?;
    let resp = read_frame(&mut s).await?;
    if is_answer_to(&resp, id) {
        Ok(resp)
    } else {
        Err(io::Error::other("mismatched answer"))
    }
}

async fn read_frame(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; s.read_u16().await?.into()];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame(s: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out).await
}

async fn serve_udp(sock: Arc<UdpSocket>, ctx: Arc<Ctx>) {
    let mut inflight = JoinSet::new();
    let mut buf = vec![0u8; u16::MAX as usize];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, peer)) = r else { continue };
                match ctx.respond(&buf[..n], peer.ip(), false) {
                    Some(Outcome::Reply(resp)) => {
                        let _ = sock.send_to(&resp, peer).await;
                    }
                    Some(Outcome::Forward(req)) if inflight.len() < MAX_INFLIGHT => {
                        let (sock, ctx, packet) = (sock.clone(), ctx.clone(), buf[..n].to_vec());
                        inflight.spawn(async move {
                            if let Some(resp) = ctx.forward_or_fail(&packet, &req, false).await {
                                let _ = sock.send_to(&resp, peer).await;
                            }
                        });
                    }
                    _ => {}
                }
            }
            Some(_) = inflight.join_next() => {}
        }
    }
}

async fn serve_tcp(listener: TcpListener, ctx: Arc<Ctx>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((s, peer)) if conns.len() < MAX_TCP_CONNS => {
                    conns.spawn(serve_conn(s, peer.ip(), ctx.clone()));
                }
                Ok(_) => {} // over the cap: close it
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await, // e.g. EMFILE
            },
            Some(_) = conns.join_next() => {}
        }
    }
}

async fn serve_conn(mut s: TcpStream, peer: IpAddr, ctx: Arc<Ctx>) {
    while let Ok(Ok(packet)) = timeout(TCP_IDLE, read_frame(&mut s)).await {
        let resp = match ctx.respond(&packet, peer, true) {
            Some(Outcome::Reply(resp)) => resp,
            Some(Outcome::Forward(req)) => match ctx.forward_or_fail(&packet, &req, true).await {
                Some(resp) => resp,
                None => return,
            },
            None => return, // malformed: close
        };
        if write_frame(&mut s, &resp).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use std::str::FromStr;

    const WEB: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

    async fn server(upstreams: Vec<SocketAddr>) -> DnsServer {
        let lookup: Lookup = Arc::new(|client, name| (client == LO && name == "web").then(|| vec![WEB]));
        let reverse: Reverse = Arc::new(|client, ip| (client == LO && ip == WEB).then(|| "web".to_string()));
        DnsServer::start((LO, 0).into(), lookup, reverse, upstreams)
            .await
            .unwrap()
    }

    fn query(id: u16, names: &[&str], rtype: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(id).set_recursion_desired(true);
        for n in names {
            m.add_query(Query::query(Name::from_str(n).unwrap(), rtype));
        }
        m
    }

    async fn ask_raw(server: SocketAddr, packet: &[u8]) -> Option<Message> {
        let sock = UdpSocket::bind((LO, 0)).await.unwrap();
        sock.send_to(packet, server).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = timeout(Duration::from_millis(500), sock.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(Message::from_vec(&buf[..n]).unwrap())
    }

    async fn ask(server: SocketAddr, q: &Message) -> Message {
        ask_raw(server, &q.to_vec().unwrap()).await.expect("no answer")
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers()
            .iter()
            .filter_map(|r| match r.data() {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn known_name_a() {
        let s = server(vec![]).await;
        // Mixed case, two questions: the first one is answered.
        let r = ask(s.local_addr(), &query(7, &["Web.", "other."], RecordType::A)).await;
        assert_eq!(r.id(), 7);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.authoritative() && r.recursion_available());
        assert_eq!(r.queries().len(), 1);
        assert_eq!(a_records(&r), vec![WEB]);
        assert_eq!(r.answers()[0].ttl(), 600);
        assert_eq!(r.answers()[0].name(), &Name::from_str("Web.").unwrap());
    }

    #[tokio::test]
    async fn known_name_aaaa_is_empty() {
        let s = server(vec![]).await;
        let r = ask(s.local_addr(), &query(8, &["web."], RecordType::AAAA)).await;
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.answers().is_empty());
    }

    #[tokio::test]
    async fn known_ptr() {
        let s = server(vec![]).await;
        let r = ask(s.local_addr(), &query(9, &["2.0.0.10.in-addr.arpa."], RecordType::PTR)).await;
        match r.answers().first().map(|a| a.data()) {
            Some(RData::PTR(p)) => assert_eq!(p.0, Name::from_str("web.").unwrap()),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_forwarded() {
        let up = UdpSocket::bind((LO, 0)).await.unwrap();
        let up_addr = up.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let (n, from) = up.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut resp = reply(&q, ResponseCode::NoError, Vec::new());
            let name = q.query().unwrap().name().clone();
            resp.add_answer(Record::from_rdata(name, 30, RData::A(A(Ipv4Addr::new(1, 2, 3, 4)))));
            up.send_to(&resp.to_vec().unwrap(), from).await.unwrap();
        });
        let s = server(vec![up_addr]).await;
        let r = ask(s.local_addr(), &query(4242, &["example.com."], RecordType::A)).await;
        assert_eq!(r.id(), 4242);
        assert_eq!(a_records(&r), vec![Ipv4Addr::new(1, 2, 3, 4)]);
    }

    #[tokio::test]
    async fn no_or_dead_upstreams_servfail() {
        let dead = UdpSocket::bind((LO, 0)).await.unwrap().local_addr().unwrap(); // closed on drop
        for ups in [vec![], vec![dead]] {
            let s = server(ups).await;
            let r = ask(s.local_addr(), &query(5, &["example.com."], RecordType::A)).await;
            assert_eq!(r.id(), 5);
            assert_eq!(r.response_code(), ResponseCode::ServFail);
        }
    }

    #[tokio::test]
    async fn garbage_is_dropped() {
        let s = server(vec![]).await;
        let addr = s.local_addr();
        for junk in [&b""[..], b"\x00", b"\x12\x34garbage-garbage-garbage", &[0xff; 300]] {
            assert!(ask_raw(addr, junk).await.is_none());
        }
        // A response sent to us is ignored too.
        let mut resp = query(1, &["web."], RecordType::A);
        resp.set_message_type(MessageType::Response);
        assert!(ask_raw(addr, &resp.to_vec().unwrap()).await.is_none());
        let r = ask(addr, &query(6, &["web."], RecordType::A)).await;
        assert_eq!(a_records(&r), vec![WEB]);
    }

    #[tokio::test]
    async fn tcp_framing() {
        let s = server(vec![]).await;
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        for id in [10, 11] {
            write_frame(&mut c, &query(id, &["web."], RecordType::A).to_vec().unwrap())
                .await
                .unwrap();
            let r = Message::from_vec(&read_frame(&mut c).await.unwrap()).unwrap();
            assert_eq!(r.id(), id);
            assert_eq!(a_records(&r), vec![WEB]);
        }
    }

    #[tokio::test]
    async fn tcp_forwarded_over_tcp() {
        let up = TcpListener::bind((LO, 0)).await.unwrap();
        let up_addr = up.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut c, _) = up.accept().await.unwrap();
            let q = Message::from_vec(&read_frame(&mut c).await.unwrap()).unwrap();
            write_frame(&mut c, &reply(&q, ResponseCode::NXDomain, Vec::new()).to_vec().unwrap())
                .await
                .unwrap();
        });
        let s = server(vec![up_addr]).await;
        let mut c = TcpStream::connect(s.local_addr()).await.unwrap();
        write_frame(&mut c, &query(12, &["nope.example."], RecordType::A).to_vec().unwrap())
            .await
            .unwrap();
        let r = Message::from_vec(&read_frame(&mut c).await.unwrap()).unwrap();
        assert_eq!((r.id(), r.response_code()), (12, ResponseCode::NXDomain));
    }

    #[tokio::test]
    async fn stop_frees_port() {
        let s = server(vec![]).await;
        let addr = s.local_addr();
        s.stop();
        for _ in 0..100 {
            if UdpSocket::bind(addr).await.is_ok() && TcpListener::bind(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("port still bound");
    }

    #[test]
    fn resolv_conf() {
        let conf = "# c\nnameserver 1.1.1.1\n;nameserver 9.9.9.9\nnameserver fe80::1%eth0\nsearch x\nnameserver ::1\n";
        assert_eq!(
            parse_resolv_conf(conf),
            vec!["1.1.1.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
