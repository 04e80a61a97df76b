//! What a request knows about its connection.

use std::net::SocketAddr;

/// The connection a request came on.
pub struct ConnInfo {
    pub fd: i32,
    /// The address of the listening socket it came in on.
    pub listen: SocketAddr,
    /// The error log's `*N`.
    pub number: u64,
    /// Requests served on this connection so far, this one included.
    pub requests: u64,
    peer: std::cell::OnceCell<Option<SocketAddr>>,
    local: std::cell::OnceCell<Option<SocketAddr>>,
}

impl ConnInfo {
    pub fn new(fd: i32, listen: SocketAddr, number: u64) -> ConnInfo {
        ConnInfo { fd, listen, number, requests: 0, peer: Default::default(), local: Default::default() }
    }
    /// The client's address (getpeername on first use: multishot accept
    /// does not return it).
    pub fn peer(&self) -> Option<SocketAddr> {
        *self.peer.get_or_init(|| crate::rt::sockaddr::peer_addr(self.fd, false))
    }
    /// The server side's address of this connection.
    pub fn local(&self) -> Option<SocketAddr> {
        *self.local.get_or_init(|| {
            if self.listen.ip().is_unspecified() {
                crate::rt::sockaddr::peer_addr(self.fd, true)
            } else {
                Some(self.listen)
            }
        })
    }
    /// $remote_addr as text.
    pub fn remote_addr(&self) -> String {
        self.peer().map(|a| a.ip().to_string()).unwrap_or_default()
    }
    /// $binary_remote_addr: the client's address in network order, 4
    /// bytes for IPv4, 16 for IPv6 (IPv4-mapped addresses stay 16, as in
    /// nginx); empty when the peer is unknown.
    pub fn binary_remote_addr(&self) -> Vec<u8> {
        match self.peer().map(|a| a.ip()) {
            Some(std::net::IpAddr::V4(ip)) => ip.octets().to_vec(),
            Some(std::net::IpAddr::V6(ip)) => ip.octets().to_vec(),
            None => Vec::new(),
        }
    }
}

