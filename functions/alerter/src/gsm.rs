//! SMS encoding arithmetic: does a text fit one segment?
//!
//! Written here rather than taken from a crate: the only question asked is "how many
//! septets (or UTF-16 units) is this", which is a table lookup; the SMS crates on crates.io
//! are PDU encoders for modems, far more than this needs.

use pricewire_pipeline::limits::{SMS_GSM7_SEGMENT_SEPTETS, SMS_UCS2_SEGMENT_UNITS};

/// GSM 03.38 basic character set (one septet each; ESC excluded).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table (ESC + character: two septets each).
const EXTENSION: &str = "\u{000C}^{}\\[~]|€";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// Septets the text takes in GSM-7, or `None` if any character is outside GSM-7.
pub fn gsm7_septets(text: &str) -> Option<usize> {
    text.chars().try_fold(0usize, |total, c| {
        if BASIC.contains(c) {
            Some(total + 1)
        } else if EXTENSION.contains(c) {
            Some(total + 2)
        } else {
            None
        }
    })
}

/// The encoding SNS will use and the units the text takes in it.
pub fn measure(text: &str) -> (Encoding, usize) {
    match gsm7_septets(text) {
        Some(septets) => (Encoding::Gsm7, septets),
        None => (Encoding::Ucs2, text.encode_utf16().count()),
    }
}

/// Whether the text is sent as a single SMS segment.
pub fn fits_one_segment(text: &str) -> bool {
    match measure(text) {
        (Encoding::Gsm7, n) => n <= SMS_GSM7_SEGMENT_SEPTETS,
        (Encoding::Ucs2, n) => n <= SMS_UCS2_SEGMENT_UNITS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_septets_units_and_extension_characters() {
        assert_eq!(measure("LED-KZN 4830 RUB"), (Encoding::Gsm7, 16));
        assert_eq!(measure("price €5 [x]"), (Encoding::Gsm7, 15));
        assert_eq!(measure("Аэрофлот"), (Encoding::Ucs2, 8));
        assert_eq!(measure("LED→KZN"), (Encoding::Ucs2, 7));
        assert!(fits_one_segment(&"a".repeat(160)));
        assert!(!fits_one_segment(&"a".repeat(161)));
        assert!(!fits_one_segment(&"€".repeat(81)));
        assert!(fits_one_segment(&"ы".repeat(70)));
        assert!(!fits_one_segment(&format!("{}ы", "a".repeat(70))));
    }
}
