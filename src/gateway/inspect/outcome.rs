//! Why a body was not inspected: one closed set for statuses, metric labels and audit reasons.

use crate::policy::Direction;

/// Why a body was not inspected, or why the gateway stepped in without a rule's `block`: one
/// closed set, so that the client's status, the metric label and the audit reason cannot drift
/// apart when a message is reworded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uninspectable {
    /// The body is longer than the route's `max_buffer`.
    Oversize,
    /// Decoding would exceed `max_decompressed`.
    DecompressedSize,
    /// Decoding would exceed `max_ratio`.
    DecompressionRatio,
    /// The body does not decode.
    Undecodable,
    /// A `Content-Encoding` the gateway cannot decode.
    UnsupportedCoding,
    /// A compressed request body.
    EncodedRequest,
    /// A protocol upgrade (WebSocket …) on an inspected route.
    Upgrade,
    /// A content type that is not text (on a route that blocks them).
    Binary,
    /// A document longer than the route's `max_document`.
    DocumentSize,
    /// An archive past its limits (entries, nesting, inflated size, ratio, overlaps).
    ArchiveLimit,
    /// An encrypted archive entry.
    Encrypted,
    /// A document that does not parse.
    CorruptDocument,
    /// A document whose values cannot be masked in place (legacy `.xls`), refused per
    /// `on_unmaskable`.
    Unmaskable,
    /// A `block` finding after the response head was sent: the stream was aborted.
    BlockedMidStream,
    /// A quota of the department is exhausted.
    Quota,
    /// 64 KiB without a break: a value across the forced cut may have been missed.
    ForcedCut,
}

impl Uninspectable {
    /// Every reason (for the series created at zero when a config is loaded). A new variant
    /// goes here too.
    pub const ALL: [Uninspectable; 16] = [
        Uninspectable::Oversize,
        Uninspectable::DecompressedSize,
        Uninspectable::DecompressionRatio,
        Uninspectable::Undecodable,
        Uninspectable::UnsupportedCoding,
        Uninspectable::EncodedRequest,
        Uninspectable::Upgrade,
        Uninspectable::Binary,
        Uninspectable::DocumentSize,
        Uninspectable::ArchiveLimit,
        Uninspectable::Encrypted,
        Uninspectable::CorruptDocument,
        Uninspectable::Unmaskable,
        Uninspectable::BlockedMidStream,
        Uninspectable::Quota,
        Uninspectable::ForcedCut,
    ];

    /// What the client and the audit event are told.
    pub fn message(self) -> &'static str {
        match self {
            Uninspectable::Oversize => "body exceeds max_buffer",
            Uninspectable::DecompressedSize => "decompressed body exceeds max_decompressed",
            Uninspectable::DecompressionRatio => "compression ratio exceeds max_ratio",
            Uninspectable::Undecodable => "undecodable body",
            Uninspectable::UnsupportedCoding => "undecodable content-encoding",
            Uninspectable::EncodedRequest => "encoded request body",
            Uninspectable::Upgrade => "protocol upgrade not inspectable",
            Uninspectable::Binary => "content type not inspectable",
            Uninspectable::DocumentSize => "document exceeds max_document",
            Uninspectable::ArchiveLimit => "archive exceeds its limits",
            Uninspectable::Encrypted => "encrypted archive entry",
            Uninspectable::CorruptDocument => "damaged document",
            Uninspectable::Unmaskable => "document values cannot be masked in place",
            Uninspectable::BlockedMidStream => "block finding after headers were sent",
            Uninspectable::Quota => "quota exceeded",
            Uninspectable::ForcedCut => "forced cut",
        }
    }

    /// The `reason` label of `dlpgate_uninspected_total` and `dlpgate_blocked_total` (a closed set).
    pub fn label(self) -> &'static str {
        match self {
            Uninspectable::Oversize | Uninspectable::DocumentSize => "oversize",
            Uninspectable::DecompressedSize | Uninspectable::DecompressionRatio | Uninspectable::ArchiveLimit => {
                "decompression_limit"
            }
            Uninspectable::Undecodable
            | Uninspectable::UnsupportedCoding
            | Uninspectable::EncodedRequest
            | Uninspectable::CorruptDocument => "undecodable",
            Uninspectable::Encrypted => "encrypted",
            Uninspectable::Unmaskable => "unmaskable",
            Uninspectable::Binary => "binary_content_type",
            Uninspectable::BlockedMidStream => "blocked_mid_stream",
            Uninspectable::Upgrade => "protocol_upgrade",
            Uninspectable::Quota => "quota",
            Uninspectable::ForcedCut => "forced_cut",
        }
    }

    /// The status a refused message gets: a response the gateway cannot vouch for is the
    /// upstream's failure (502); a request is refused for what it is.
    pub fn status(self, dir: Direction) -> u16 {
        match (self, dir) {
            (Uninspectable::Unmaskable, _) => 403,
            // a type the route blocks, either way
            (Uninspectable::Binary, _) => 415,
            (_, Direction::Response) => 502,
            (Uninspectable::Upgrade, _) => 403,
            (
                Uninspectable::Oversize
                | Uninspectable::DocumentSize
                | Uninspectable::DecompressedSize
                | Uninspectable::DecompressionRatio,
                _,
            ) => 413,
            _ => 415,
        }
    }

    pub(crate) fn of_document(e: &crate::documents::DocError) -> Uninspectable {
        use crate::documents::DocError;
        match e {
            DocError::Limit(_) => Uninspectable::ArchiveLimit,
            DocError::Encrypted => Uninspectable::Encrypted,
            DocError::Corrupt(_) => Uninspectable::CorruptDocument,
            DocError::Unreadable(_) => Uninspectable::Binary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_labels_come_from_the_reason() {
        use Direction::{Request, Response};
        assert_eq!(Uninspectable::Oversize.status(Request), 413);
        assert_eq!(Uninspectable::DocumentSize.status(Request), 413);
        assert_eq!(Uninspectable::Upgrade.status(Request), 403);
        assert_eq!(Uninspectable::EncodedRequest.status(Request), 415);
        assert_eq!(Uninspectable::DecompressionRatio.status(Request), 413, "a compressed upload past its limits");
        assert_eq!(Uninspectable::Encrypted.status(Request), 415);
        // a response the gateway cannot vouch for is the upstream's failure
        assert_eq!(Uninspectable::Undecodable.status(Response), 502);
        assert_eq!(Uninspectable::ArchiveLimit.status(Response), 502);
        // values that cannot be masked are refused like a block, either way
        assert_eq!(Uninspectable::Unmaskable.status(Request), 403);
        assert_eq!(Uninspectable::Unmaskable.status(Response), 403);
        assert_eq!(Uninspectable::DecompressionRatio.label(), "decompression_limit");
        assert_eq!(Uninspectable::ArchiveLimit.label(), "decompression_limit");
        assert_eq!(Uninspectable::UnsupportedCoding.label(), "undecodable");
        assert_eq!(Uninspectable::Upgrade.label(), "protocol_upgrade");
        assert_eq!(Uninspectable::Oversize.message(), "body exceeds max_buffer");
    }
}
