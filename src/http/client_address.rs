//! Who a request comes from, for everything counted per client address (the failed-key
//! budget, later the country lookup). The peer of the connection, unless that peer is a
//! trusted proxy (`http.trusted_proxies`): then the right-most `X-Forwarded-For` address
//! that is not itself a trusted proxy. Addresses further left were written by whoever
//! sent the request, so they are never believed; from any other peer the header is
//! ignored altogether.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::config::Cidr;
use crate::http::state::AppState;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address as resolved for this request (set by `middleware`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// Resolves the client address once per request, where every handler can read it.
pub async fn middleware(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    if let Some(peer) = peer {
        let trusted = &state.config.http.trusted_proxies;
        let client = client_of(peer, trusted, request.headers());
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

/// The client behind `peer`, given the proxies whose forwarding is believed.
pub fn client_of(peer: IpAddr, trusted: &[Cidr], headers: &HeaderMap) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|block| block.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    // Several headers count as one list, in order (RFC 9110 §5.3).
    let hops: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(address) = parse_hop(hop) else {
            // Not written by a proxy we trust: stop at the last address that was.
            return client;
        };
        client = address;
        if !is_trusted(address) {
            return address;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`203.0.113.9:4711`,
/// `[2001:db8::1]:4711`), as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(blocks: &[&str]) -> Vec<Cidr> {
        blocks.iter().map(|block| block.parse().unwrap()).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_header_is_ignored_from_a_peer_that_is_not_a_trusted_proxy() {
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(
            client_of(ip("198.51.100.1"), &proxies(&["10.0.0.0/8"]), &headers),
            ip("198.51.100.1")
        );
        assert_eq!(client_of(ip("10.0.0.1"), &[], &headers), ip("10.0.0.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client() {
        let headers = forwarded(&["1.1.1.1, 203.0.113.9, 10.0.0.7"]);
        assert_eq!(
            client_of(ip("10.0.0.1"), &proxies(&["10.0.0.0/8"]), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn several_headers_are_read_as_one_list_in_order() {
        let headers = forwarded(&["1.1.1.1", "203.0.113.9"]);
        assert_eq!(
            client_of(ip("10.0.0.1"), &proxies(&["10.0.0.0/8"]), &headers),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_without_the_header_is_its_own_client() {
        assert_eq!(
            client_of(ip("10.0.0.1"), &proxies(&["10.0.0.0/8"]), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_address_a_trusted_proxy_wrote() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let headers = forwarded(&["203.0.113.9, not-an-address, 10.0.0.7"]);
        assert_eq!(
            client_of(ip("10.0.0.1"), &trusted, &headers),
            ip("10.0.0.7")
        );
        let headers = forwarded(&["unknown"]);
        assert_eq!(
            client_of(ip("10.0.0.1"), &trusted, &headers),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let headers = forwarded(&["[2001:db8::1]:4711"]);
        assert_eq!(
            client_of(ip("10.0.0.1"), &trusted, &headers),
            ip("2001:db8::1")
        );
        let headers = forwarded(&["203.0.113.9:4711"]);
        assert_eq!(
            client_of(ip("::ffff:10.0.0.1"), &trusted, &headers),
            ip("203.0.113.9")
        );
        let headers = forwarded(&["::ffff:203.0.113.9"]);
        assert_eq!(
            client_of(ip("10.0.0.1"), &trusted, &headers),
            ip("203.0.113.9")
        );
    }
}
