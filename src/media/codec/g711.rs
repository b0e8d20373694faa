//! G.711 u-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T G.711 reference
//! (STL `g711.c`): the compressors work on the 14-bit (u-law) / 13-bit (A-law) magnitude and
//! use the one's complement for negative samples, so tables indexed by the sample's top bits
//! give the same result as the reference loop.

use super::{Decoder, Encoder};
use crate::media::codec::conceal::Concealer;

/// Reference u-law compressor for one 16-bit sample.
const fn ulaw_compress(x: i32) -> u8 {
    let mut absno = if x < 0 {
        ((!x) >> 2) + 33
    } else {
        (x >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high = 0x0008 - segno;
    let low = 0x000F - ((absno >> segno) & 0x000F);
    let mut out = (high << 4) | low;
    if x >= 0 {
        out |= 0x0080;
    }
    out as u8
}

/// Reference u-law expander.
const fn ulaw_expand(code: u8) -> i16 {
    let sign: i32 = if code < 0x80 { -1 } else { 1 };
    let mantissa = !(code as i32);
    let exponent = (mantissa >> 4) & 0x07;
    let step = 4 << (exponent + 1);
    let mag = (0x80 << exponent) + step * (mantissa & 0x0F) + step / 2 - 4 * 33;
    (sign * mag) as i16
}

/// Reference A-law compressor.
const fn alaw_compress(x: i32) -> u8 {
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x0080;
    }
    (ix ^ 0x0055) as u8
}

/// Reference A-law expander.
const fn alaw_expand(code: u8) -> i16 {
    let ix = (code as i32 ^ 0x55) & 0x7F;
    let iexp = ix >> 4;
    let mut mant = ix & 0x0F;
    if iexp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 0x08;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

/// u-law compression depends only on `x >> 2` (one's complement commutes with the shift).
static ULAW_ENC: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        t[i] = ulaw_compress(((i as i32) << 18) >> 16);
        i += 1;
    }
    t
};

/// A-law compression depends only on `x >> 4`.
static ALAW_ENC: [u8; 4096] = {
    let mut t = [0u8; 4096];
    let mut i = 0;
    while i < 4096 {
        t[i] = alaw_compress(((i as i32) << 20) >> 16);
        i += 1;
    }
    t
};

static ULAW_DEC: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand(i as u8);
        i += 1;
    }
    t
};

static ALAW_DEC: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand(i as u8);
        i += 1;
    }
    t
};

/// Encodes one sample to u-law.
#[inline]
pub fn ulaw_encode(x: i16) -> u8 {
    ULAW_ENC[(x as u16 >> 2) as usize]
}

/// Encodes one sample to A-law.
#[inline]
pub fn alaw_encode(x: i16) -> u8 {
    ALAW_ENC[(x as u16 >> 4) as usize]
}

/// Decodes one u-law byte.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DEC[code as usize]
}

/// Decodes one A-law byte.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DEC[code as usize]
}

/// Which companding law a G.711 encoder or decoder uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Law {
    Ulaw,
    Alaw,
}

/// G.711 encoder (stateless apart from the law).
pub struct G711Encoder(pub Law);

impl Encoder for G711Encoder {
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let f = match self.0 {
            Law::Ulaw => ulaw_encode,
            Law::Alaw => alaw_encode,
        };
        out.extend(pcm.iter().map(|&x| f(x)));
    }
}

/// G.711 decoder with G.711 Appendix I concealment.
pub struct G711Decoder {
    law: Law,
    concealer: Concealer,
}

impl G711Decoder {
    pub fn new(law: Law) -> Self {
        G711Decoder {
            law,
            concealer: Concealer::new(8000),
        }
    }
}

impl G711Decoder {
    fn expand(&self, code: u8) -> i16 {
        match self.law {
            Law::Ulaw => ULAW_DEC[code as usize],
            Law::Alaw => ALAW_DEC[code as usize],
        }
    }
}

impl Decoder for G711Decoder {
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let mut pcm: Vec<i16> = payload.iter().map(|&c| self.expand(c)).collect();
        self.concealer.good(&mut pcm, out);
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.concealer.lost(samples, out);
    }

    fn recover(&mut self, next: &[u8], ahead: usize, samples: usize, out: &mut Vec<i16>) {
        let next: Vec<i16> = next.iter().map(|&c| self.expand(c)).collect();
        self.concealer.bridge(samples, ahead, &next, out);
    }

    fn delay(&self) -> usize {
        self.concealer.delay()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_match_itu_tables() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0xF0), 120);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
    }

    #[test]
    fn tables_equal_reference_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(x), ulaw_compress(x as i32), "ulaw {x}");
            assert_eq!(alaw_encode(x), alaw_compress(x as i32), "alaw {x}");
        }
    }

    #[test]
    fn codes_round_trip() {
        for c in 0..=255u8 {
            // 0x7F is u-law "negative zero"; it decodes to 0, which encodes as 0xFF.
            if c != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(c)), c);
            }
            assert_eq!(alaw_encode(alaw_decode(c)), c);
        }
    }

    #[test]
    fn decoded_error_stays_within_segment_step() {
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let eu = (ulaw_decode(ulaw_encode(x)) as i32 - x as i32).abs();
            let ea = (alaw_decode(alaw_encode(x)) as i32 - x as i32).abs();
            let bound = (x as i32).abs() / 16 + 140;
            assert!(eu <= bound && ea <= bound, "x={x} eu={eu} ea={ea}");
        }
    }

    #[test]
    fn concealment_fades_to_silence() {
        let mut d = G711Decoder::new(Law::Ulaw);
        let mut out = Vec::new();
        d.decode(&[0x80; 160], &mut out);
        out.clear();
        d.conceal(160, &mut out);
        assert!(out.iter().any(|&s| s != 0));
        for _ in 0..10 {
            out.clear();
            d.conceal(160, &mut out);
        }
        assert!(out.iter().all(|&s| s == 0));
    }
}
