//! SIP INFO DTMF: `application/dtmf-relay` bodies (`Signal=5` / `Duration=160`) and
//! `application/dtmf` bodies (just the digit).

use crate::sip::Body;

/// The digit an INFO body carries, if it is a DTMF body with a valid digit.
pub fn digit(body: &Body) -> Option<char> {
    let text = std::str::from_utf8(&body.bytes).ok()?;
    let value = match body.content_type.to_ascii_lowercase().as_str() {
        "application/dtmf-relay" => text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then_some(v)
        })?,
        "application/dtmf" => text,
        _ => return None,
    };
    let value = value.trim();
    match value {
        "10" => Some('*'),
        "11" => Some('#'),
        _ => {
            let mut chars = value.chars();
            let c = chars.next()?.to_ascii_uppercase();
            (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(ct: &str, text: &str) -> Body {
        Body {
            content_type: ct.into(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_dtmf_relay_and_dtmf_bodies() {
        let relay = "application/dtmf-relay";
        assert_eq!(
            digit(&body(relay, "Signal=5\r\nDuration=160\r\n")),
            Some('5')
        );
        assert_eq!(digit(&body(relay, "signal= #\r\nDuration=100")), Some('#'));
        assert_eq!(digit(&body(relay, "Signal=11\r\n")), Some('#'));
        assert_eq!(digit(&body(relay, "Signal=d")), Some('D'));
        assert_eq!(digit(&body("application/dtmf", "*")), Some('*'));
        assert_eq!(digit(&body(relay, "Signal=55")), None);
        assert_eq!(digit(&body(relay, "Duration=160")), None);
        assert_eq!(digit(&body("text/plain", "5")), None);
        assert_eq!(digit(&body(relay, "Signal=\u{ff}")), None);
    }
}
