//! MAC addresses as people write them. Pure.

/// `02:00:00:00:00:0a`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// `02:00:00:00:00:0a` (or with dashes) as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let h = parts.next()?;
        if h.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(h, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_and_read() {
        assert_eq!(format_mac(&[2, 0, 0, 0, 0, 0xab]), "02:00:00:00:00:ab");
        assert_eq!(parse_mac("02:00:00:00:00:ab"), Some([2, 0, 0, 0, 0, 0xab]));
        assert_eq!(parse_mac("02-00-00-00-00-AB"), Some([2, 0, 0, 0, 0, 0xab]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:ab:01"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:ab"), None);
    }
}
