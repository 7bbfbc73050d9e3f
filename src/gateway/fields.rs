//! Header fields a proxy strips (hop-by-hop fields, a client's identity claims, what no longer
//! describes a rewritten body): removed in one pass over the fields a head holds.
//!
//! Most names a proxy strips are absent from any one message, and Pingora removes a name from two
//! hashed maps (the fields and their original case), so naming each one for removal cost a few
//! hundred instructions apiece; a head holds a handful of fields, each compared once here.

use http::{HeaderMap, HeaderName};
use pingora::http::{RequestHeader, ResponseHeader};

/// A request or response head.
pub trait Head {
    fn fields(&self) -> &HeaderMap;
    fn remove(&mut self, name: &HeaderName);
}

impl Head for RequestHeader {
    fn fields(&self) -> &HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
}

impl Head for ResponseHeader {
    fn fields(&self) -> &HeaderMap {
        &self.headers
    }
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
}

/// Remove every field of `head` whose name is `doomed`.
pub fn remove_where(head: &mut impl Head, doomed: impl Fn(&HeaderName) -> bool) {
    // (nothing is allocated unless some field goes)
    let gone: Vec<HeaderName> = head.fields().keys().filter(|n| doomed(n)).cloned().collect();
    for name in &gone {
        head.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_doomed_fields_go_with_every_value_and_case() {
        let mut req = RequestHeader::build("GET", b"/", None).expect("head");
        req.append_header("Keep-Alive", "5").expect("field");
        req.append_header("X-Kept", "1").expect("field");
        req.append_header("keep-alive", "6").expect("field");
        req.append_header("TE", "trailers").expect("field");
        remove_where(&mut req, |n| n == "keep-alive" || n == http::header::TE || n == "x-absent");
        assert_eq!(req.headers.len(), 1);
        assert_eq!(req.headers.get("x-kept").and_then(|v| v.to_str().ok()), Some("1"));
        // the case map went with them: the wire form holds the one field left
        let mut wire = Vec::new();
        req.header_to_h1_wire(&mut wire);
        assert_eq!(String::from_utf8_lossy(&wire), "X-Kept: 1\r\n");
    }
}
