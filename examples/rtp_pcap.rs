//! Writes a pcap of one RTP stream (20 ms frames) for SIPp's `play_pcap_audio`, which replays
//! the UDP payloads with the capture's timing and its own addresses and ports: what
//! `scripts/load --codec opus` plays (SIPp's `rtp_stream` only sends G.711 and the like).
//!
//!   cargo run --release --example rtp_pcap -- --codec opus --wav fixtures/audio/speech-16k.wav \
//!       --seconds 30 --out /tmp/opus.pcap
//!   cargo run --release --example rtp_pcap -- --codec opus --silence --seconds 30 --out /tmp/quiet.pcap
//!
//! The WAV loops to fill the duration; `--silence` encodes digital silence instead;
//! `--max-playback-rate 16000` codes wideband Opus, as a phone does for a server whose
//! `[rtp] opus_rate` is 16000.

use std::io::{self, Write};
use std::path::PathBuf;

use chorus::media::codec::{CodecKind, CodecOptions};
use chorus::media::rtp::RtpHeader;
use clap::{Parser, ValueEnum};

const PTIME_MS: u32 = 20;
const SSRC: u32 = 0x4348_5253;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Codec {
    Pcmu,
    Opus,
}

impl Codec {
    fn kind(self) -> CodecKind {
        match self {
            Codec::Pcmu => CodecKind::Pcmu,
            Codec::Opus => CodecKind::Opus,
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Writes a pcap of 20 ms RTP frames for SIPp's play_pcap_audio")]
struct Args {
    #[arg(long, value_enum)]
    codec: Codec,
    /// Audio to send, looped (any rate, mono or not).
    #[arg(long, required_unless_present = "silence", conflicts_with = "silence")]
    wav: Option<PathBuf>,
    /// Send digital silence: a room where nobody talks.
    #[arg(long)]
    silence: bool,
    /// Length of the stream.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3600))]
    seconds: u32,
    /// RTP payload type (default: 0 for PCMU, 111 for Opus, as in fixtures/sipp).
    #[arg(long)]
    pt: Option<u8>,
    /// Opus: code no wider than a receiver playing at this rate needs (its SDP's
    /// `maxplaybackrate`).
    #[arg(long, default_value_t = 48000)]
    max_playback_rate: u32,
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let kind = args.codec.kind();
    let audio = match &args.wav {
        Some(path) => mixer::wav::Pcm::load(path, kind.pcm_rate())?
            .samples()
            .to_vec(),
        None => Vec::new(),
    };
    let pt = args.pt.unwrap_or(match args.codec {
        Codec::Pcmu => 0,
        Codec::Opus => 111,
    });
    let frames = args.seconds * 1000 / PTIME_MS;
    let options = CodecOptions {
        opus_max_playback_rate: Some(args.max_playback_rate),
        ..CodecOptions::default()
    };
    let packets = rtp_packets(kind, options, pt, &audio, frames)?;
    let mut out = io::BufWriter::new(std::fs::File::create(&args.out)?);
    write_pcap(&mut out, &packets)?;
    out.flush()?;
    Ok(())
}

/// `frames` RTP packets of `audio` (at the codec's PCM rate, looped; empty = silence).
fn rtp_packets(
    kind: CodecKind,
    options: CodecOptions,
    pt: u8,
    audio: &[i16],
    frames: u32,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut encoder = kind.encoder(options)?;
    let samples = kind.pcm_samples(PTIME_MS);
    let mut looped = audio.iter().copied().cycle();
    let mut pcm = vec![0i16; samples];
    (0..frames)
        .map(|i| {
            if !audio.is_empty() {
                pcm.iter_mut().for_each(|s| *s = looped.next().unwrap_or(0));
            }
            let mut packet = Vec::new();
            let ts = i.wrapping_mul(kind.rtp_ticks(PTIME_MS));
            RtpHeader::simple(pt, i as u16, ts, SSRC, i == 0).write(&mut packet);
            encoder.encode(&pcm, &mut packet);
            Ok(packet)
        })
        .collect()
}

/// A classic pcap (Ethernet, IPv4, UDP 127.0.0.1:6000 to 127.0.0.1:6002) with one packet
/// every 20 ms; SIPp keeps only the UDP payload and the spacing.
fn write_pcap(out: &mut impl Write, payloads: &[Vec<u8>]) -> io::Result<()> {
    // Magic, version 2.4, no zone or accuracy, snap length, link type 1 (Ethernet).
    out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    out.write_all(&[2, 0, 4, 0])?;
    out.write_all(&[0; 8])?;
    out.write_all(&65535u32.to_le_bytes())?;
    out.write_all(&1u32.to_le_bytes())?;
    for (i, payload) in payloads.iter().enumerate() {
        let frame = ethernet_udp(payload);
        let at_us = i as u64 * u64::from(PTIME_MS) * 1000;
        out.write_all(&((at_us / 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&((at_us % 1_000_000) as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(&frame)?;
    }
    Ok(())
}

fn ethernet_udp(payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&[0; 12]); // destination and source MAC
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&[127, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[127, 0, 0, 1]);
    let sum = ip
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    ip[10..12].copy_from_slice(&(!((sum & 0xffff) + (sum >> 16)) as u16).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&6000u16.to_be_bytes());
    f.extend_from_slice(&6002u16.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]); // no checksum (allowed over IPv4)
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use chorus::media::rtp::RtpPacket;

    /// Reads back the RTP payloads of a pcap written by `write_pcap`, checking the spacing.
    fn read_pcap(bytes: &[u8]) -> Vec<Vec<u8>> {
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 1);
        let (mut at, mut packets) = (24, Vec::new());
        while at < bytes.len() {
            let word = |o: usize| u32::from_le_bytes(bytes[at + o..at + o + 4].try_into().unwrap());
            let us = u64::from(word(0)) * 1_000_000 + u64::from(word(4));
            assert_eq!(us, packets.len() as u64 * 20_000);
            let len = word(8) as usize;
            let frame = &bytes[at + 16..at + 16 + len];
            assert_eq!(&frame[12..14], &[0x08, 0x00]);
            let udp_len = u16::from_be_bytes([frame[38], frame[39]]) as usize;
            packets.push(frame[42..34 + udp_len].to_vec());
            at += 16 + len;
        }
        packets
    }

    fn decoded(kind: CodecKind, packets: &[Vec<u8>], pt: u8) -> Vec<i16> {
        let mut decoder = kind.decoder(CodecOptions::default()).unwrap();
        let mut pcm = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let rtp = RtpPacket::parse(p).unwrap();
            assert_eq!(rtp.payload_type, pt);
            assert_eq!(rtp.seq, i as u16);
            assert_eq!(rtp.timestamp, i as u32 * kind.rtp_ticks(20));
            decoder.decode(rtp.payload, &mut pcm);
        }
        pcm
    }

    #[test]
    fn opus_pcap_plays_the_tone_at_50_packets_a_second() {
        let kind = CodecKind::Opus;
        let tone = mixer::wav::Pcm::load(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/audio/tone-697-16k.wav"
            ),
            kind.pcm_rate(),
        )
        .unwrap();
        let mut pcap = Vec::new();
        write_pcap(
            &mut pcap,
            &rtp_packets(kind, CodecOptions::default(), 111, tone.samples(), 50).unwrap(),
        )
        .unwrap();
        let packets = read_pcap(&pcap);
        assert_eq!(packets.len(), 50);
        let pcm = decoded(kind, &packets, 111);
        let tail = &pcm[pcm.len() / 2..];
        assert!(mixer::goertzel::level_db(tail, 48000, 697.0) > -20.0);
        assert!(mixer::goertzel::level_db(tail, 48000, 1209.0) < -50.0);
    }

    #[test]
    fn silence_pcap_is_silent_in_both_codecs() {
        for (kind, pt) in [(CodecKind::Pcmu, 0), (CodecKind::Opus, 111)] {
            let mut pcap = Vec::new();
            write_pcap(
                &mut pcap,
                &rtp_packets(kind, CodecOptions::default(), pt, &[], 10).unwrap(),
            )
            .unwrap();
            let pcm = decoded(kind, &read_pcap(&pcap), pt);
            assert_eq!(pcm.len(), kind.pcm_samples(200));
            assert!(pcm.iter().all(|s| s.abs() < 16), "{kind:?} is not silent");
        }
    }
}
