//! Speech quality end to end: espeak-ng speech (fixtures/audio/speech-*.wav) from a sender
//! whose packets cross an impaired network (tests/support/impair.rs) into a conference on a
//! real server, recorded by a listener and scored with ITU-T P.862 (PESQ, the `pesq`
//! package) against what was sent, from 1.5 s to 10.5 s so the entry tone does not count
//! (tests/peers/pesq_score.py). PESQ is deterministic for given audio, so the thresholds
//! check behaviour, not timing.
//!
//! `quality_table` (ignored) is what `scripts/quality` runs: every codec and condition
//! against each server of `QUALITY_SERVERS` (`name=sip-address,...`), plus PJSUA2 phones,
//! printed as a Markdown table beside the ideal-codec ceiling.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chorus::media::codec::{CodecKind, CodecOptions};
use mixer::resample::Resampler;
use support::impair::{self, CONDITIONS, Condition};
use support::{DialOpts, Phone};

const PTIME: Duration = Duration::from_millis(20);
const SEED: u64 = 0x0005_EED0_FC40;

/// What a score run found (see tests/peers/pesq_score.py).
#[derive(Debug, Clone, serde::Deserialize)]
struct Score {
    mos: f64,
    slips: u32,
    #[allow(dead_code)]
    slip_at: Vec<f64>,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The rate PESQ scores a codec at: narrowband G.711, wideband the others.
fn score_rate(codec: CodecKind) -> u32 {
    match codec {
        CodecKind::Pcmu | CodecKind::Pcma => 8000,
        _ => 16000,
    }
}

fn reference(codec: CodecKind) -> PathBuf {
    root().join(format!(
        "fixtures/audio/speech-{}k.wav",
        score_rate(codec) / 1000
    ))
}

fn load(path: &Path, rate: u32) -> Vec<i16> {
    mixer::wav::Pcm::load(path, rate)
        .expect("speech fixture (scripts/make-fixtures)")
        .samples()
        .to_vec()
}

fn write_wav(path: &Path, rate: u32, pcm: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    pcm.iter().for_each(|&s| w.write_sample(s).unwrap());
    w.finalize().unwrap();
}

/// `pcm` at the codec's rate brought to the scoring rate.
fn to_score_rate(codec: CodecKind, pcm: &[i16]) -> Vec<i16> {
    let (from, to) = (codec.pcm_rate(), score_rate(codec));
    if from == to {
        return pcm.to_vec();
    }
    let frame = from as usize / 50;
    let mut rs = Resampler::new(from, to, frame);
    let mut out = Vec::new();
    for chunk in pcm.chunks(frame) {
        let mut f = chunk.to_vec();
        f.resize(frame, 0);
        rs.process(&f, &mut out);
    }
    out
}

fn score(codec: CodecKind, heard: &Path) -> Score {
    score_from(codec, heard, 1.5)
}

/// PESQ of `heard` from `from` seconds of the speech on.
fn score_from(codec: CodecKind, heard: &Path, from: f64) -> Score {
    let mut run = Command::new("python3");
    run.arg(root().join("tests/peers/pesq_score.py"))
        .arg(reference(codec))
        .arg(heard)
        .args(["--from", &from.to_string()]);
    support::last_json(
        &mut run,
        "pesq_score.py (scripts/install-deps --test installs pesq)",
    )
}

fn out_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chorus-quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The speech as the sender sends it: 20 ms frames at the codec's PCM rate.
fn speech(codec: CodecKind) -> Vec<i16> {
    load(&reference(codec), codec.pcm_rate())
}

/// The ceiling: the speech through one encode and decode of the codec, scored.
fn ceiling(codec: CodecKind) -> Score {
    passes(codec, 1, 1.5)
}

/// The speech through `n` encodes and decodes of the codec in a row (a phone's and a
/// transcoding server's), scored from `from` seconds on.
fn passes(codec: CodecKind, n: usize, from: f64) -> Score {
    let mut pcm = speech(codec);
    for _ in 0..n {
        pcm = coded(codec, CodecOptions::default(), &pcm);
    }
    let path = out_dir().join(format!("passes-{n}-{codec:?}.wav"));
    write_wav(&path, score_rate(codec), &to_score_rate(codec, &pcm));
    score_from(codec, &path, from)
}

/// `pcm` (at the rate `options` give the codec) through an encode with `options` and a
/// decode at the codec's own rate.
fn coded(codec: CodecKind, options: CodecOptions, pcm: &[i16]) -> Vec<i16> {
    let frame = options.pcm_rate(codec) as usize / 50;
    let mut enc = codec.encoder(options).unwrap();
    let mut dec = codec.decoder(CodecOptions::default()).unwrap();
    let mut out = Vec::new();
    for chunk in pcm.chunks(frame) {
        let mut f = chunk.to_vec();
        f.resize(frame, 0);
        let mut payload = Vec::new();
        enc.encode(&f, &mut payload);
        dec.decode(&payload, &mut out);
    }
    out
}

/// The ceiling of an Opus leg at `[rtp] opus_rate = 16000`: the speech coded once from
/// 16 kHz, as that leg codes it.
fn opus_from_16_khz() -> Score {
    let options = CodecOptions {
        opus_rate: 16000,
        ..CodecOptions::default()
    };
    let pcm = load(&reference(CodecKind::Opus), 16000);
    let path = out_dir().join("opus-from-16k.wav");
    let heard = coded(CodecKind::Opus, options, &pcm);
    write_wav(&path, 16000, &to_score_rate(CodecKind::Opus, &heard));
    score(CodecKind::Opus, &path)
}

/// The RTP packets of the speech, 20 ms each, on a fresh SSRC.
fn packets(codec: CodecKind, pt: u8) -> Vec<Vec<u8>> {
    let mut enc = codec.encoder(CodecOptions::default()).unwrap();
    let n = codec.pcm_samples(20);
    let ticks = codec.rtp_ticks(20);
    speech(codec)
        .chunks(n)
        .enumerate()
        .map(|(k, frame)| {
            let mut f = frame.to_vec();
            f.resize(n, 0);
            let mut payload = Vec::new();
            enc.encode(&f, &mut payload);
            let mut out = Vec::new();
            support::rtp::Packet {
                marker: k == 0,
                pt,
                seq: 1000u16.wrapping_add(k as u16),
                ts: 90_000u32.wrapping_add(ticks * k as u32),
                ssrc: 0x5BEEC4,
                payload: &payload,
            }
            .write(&mut out);
            out
        })
        .collect()
}

/// Sends `packets` on `schedule` from a thread of its own, at absolute deadlines.
fn send(
    socket: Arc<tokio::net::UdpSocket>,
    to: SocketAddr,
    packets: Vec<Vec<u8>>,
    schedule: Vec<(Duration, usize)>,
    start: Instant,
) {
    for (at, k) in schedule {
        let due = start + at;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let _ = socket.try_send_to(&packets[k], to);
    }
}

/// One talker (this process, impaired by `condition`) and one listener in conference
/// `number`; returns the scored recording of the listener.
async fn speech_call(
    server: SocketAddr,
    number: &str,
    codec: CodecKind,
    condition: &Condition,
) -> Score {
    score(codec, &heard_speech(server, number, codec, condition).await)
}

/// [`speech_call`]'s recording of the listener, as a WAV at the scoring rate.
async fn heard_speech(
    server: SocketAddr,
    number: &str,
    codec: CodecKind,
    condition: &Condition,
) -> PathBuf {
    let opts = DialOpts {
        codecs: vec![codec],
        ..DialOpts::default()
    };
    let mut listener = Phone::dial(server, number, opts.clone()).await.unwrap();
    let mut talker = Phone::dial(server, number, opts).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    talker.stop_media();
    let session = talker.session().expect("negotiated");
    let packets = packets(codec, session.pt);
    let schedule = impair::schedule(condition, packets.len(), PTIME, SEED);
    let length = PTIME * packets.len() as u32;
    let socket = talker.rtp_socket();
    let start = Instant::now();
    tokio::task::spawn_blocking(move || send(socket, session.remote, packets, schedule, start))
        .await
        .unwrap();
    tokio::time::sleep_until((start + length + Duration::from_secs(1)).into()).await;
    let (_, heard) = listener.heard().between(start, Instant::now());
    let _ = talker.hangup().await;
    let _ = listener.hangup().await;
    let path = out_dir().join(format!("heard-{number}-{codec:?}.wav"));
    write_wav(&path, score_rate(codec), &to_score_rate(codec, &heard));
    path
}

/// Two PJSUA2 phones, PCMU: a talker plays the speech, a listener records it.
fn pjsua_call(server: SocketAddr, number: &str) -> Score {
    let path = out_dir().join(format!("pjsua-{number}.wav"));
    let run = Command::new("python3")
        .arg(root().join("tests/peers/pjsua_speech.py"))
        .args(["--server", &server.to_string(), "--number", number])
        .arg("--speech")
        .arg(reference(CodecKind::Pcmu))
        .arg("--out")
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "pjsua_speech.py failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    score(CodecKind::Pcmu, &path)
}

async fn start_server() -> chorus::server::Running {
    chorus::server::start(support::server_config())
        .await
        .expect("server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g711_speech_scores_clean_and_with_loss() {
    let srv = start_server().await;
    let loss = CONDITIONS[4];
    let (clean, lossy) = tokio::join!(
        speech_call(srv.sip, "7400", CodecKind::Pcmu, &Condition::CLEAN),
        speech_call(srv.sip, "7401", CodecKind::Pcmu, &loss),
    );
    srv.stop().await;
    assert!(clean.mos >= 3.95, "clean: {clean:?}");
    assert_eq!(clean.slips, 0, "no delay change during speech: {clean:?}");
    // 3.73 on a quiet machine, 3.53 with both cores busy building (the sender's and the
    // server's clocks slip too); the jitter buffer it replaced scored 3.13 (README, Speech quality).
    assert!(lossy.mos >= 3.5, "{}: {lossy:?}", loss.name);
}

/// A transcoding server re-encodes what it mixes, so a G.722 listener hears the talker
/// through two G.722 passes: the room should cost little beyond that second pass. Scored
/// from 2 s, where the jitter buffer has settled its first delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_speech_in_a_room_scores_as_two_codec_passes() {
    let srv = start_server().await;
    let heard = heard_speech(srv.sip, "7402", CodecKind::G722, &Condition::CLEAN).await;
    srv.stop().await;
    let room = score_from(CodecKind::G722, &heard, 2.0);
    let two = passes(CodecKind::G722, 2, 2.0);
    eprintln!("G.722 in a room {room:?}, two passes {two:?}");
    // 3.61-3.64 against 3.62 alone; 3.54 with the other quality calls beside it in CI.
    assert!(
        room.mos >= two.mos - 0.15,
        "room {room:?}, two passes {two:?}"
    );
    assert_eq!(room.slips, 0, "{room:?}");
}

#[test]
fn impairments_replay_and_match_their_condition() {
    let c = CONDITIONS[5];
    let s = impair::schedule(&c, 10_000, PTIME, 7);
    let lost = 10_000 - s.len();
    assert!((250..350).contains(&lost), "{lost}");
    let mut sent: Vec<usize> = s.iter().map(|&(_, k)| k).collect();
    sent.sort();
    let gaps = sent.windows(2).filter(|w| w[1] - w[0] > 1).count();
    assert!(
        gaps * 3 >= lost - 15 && gaps * 3 <= lost + 15,
        "{gaps} {lost}"
    );
    assert!(s.iter().all(|&(at, k)| {
        let nominal = PTIME * k as u32;
        at >= nominal && at <= nominal + Duration::from_millis(60)
    }));
    assert_eq!(impair::schedule(&c, 10_000, PTIME, 7), s, "replayable");
}

/// The servers to measure: `QUALITY_SERVERS=main=127.0.0.1:5070,now=127.0.0.1:5080`.
fn servers() -> Vec<(String, SocketAddr)> {
    let spec = std::env::var("QUALITY_SERVERS").expect("QUALITY_SERVERS (see scripts/quality)");
    spec.split(',')
        .map(|s| {
            let (name, addr) = s.split_once('=').expect("name=address");
            (name.to_string(), addr.parse().expect("a SIP address"))
        })
        .collect()
}

/// Rows of the table: (codec, condition); `QUALITY_ONLY` keeps rows whose label contains it.
fn rows() -> Vec<(CodecKind, Condition)> {
    let mut rows: Vec<_> = CONDITIONS.iter().map(|c| (CodecKind::Pcmu, *c)).collect();
    for codec in [CodecKind::G722, CodecKind::Opus] {
        rows.extend([0, 4, 5, 6].map(|i| (codec, CONDITIONS[i])));
    }
    let only = std::env::var("QUALITY_ONLY").unwrap_or_default();
    rows.retain(|(codec, c)| format!("{codec:?} {}", c.name).contains(&only));
    rows
}

fn cell(s: &Score) -> String {
    match s.slips {
        0 => format!("{:.2}", s.mos),
        n => format!("{:.2} ({n} slips)", s.mos),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/quality against running servers"]
async fn quality_table() {
    let servers = servers();
    let names: Vec<_> = servers.iter().map(|(n, _)| n.as_str()).collect();
    println!("| codec | network | {} | ceiling |", names.join(" | "));
    println!("|---|---|{}---|", "---|".repeat(names.len()));
    let mut number = 7500;
    for (codec, condition) in rows() {
        let mut cells = Vec::new();
        for (_, addr) in &servers {
            number += 1;
            cells.push(cell(
                &speech_call(*addr, &number.to_string(), codec, &condition).await,
            ));
        }
        let c = ceiling(codec).mos;
        let mos = if score_rate(codec) == 8000 {
            "NB"
        } else {
            "WB"
        };
        println!(
            "| {codec:?} (MOS-{mos}) | {} | {} | {c:.2} |",
            condition.name,
            cells.join(" | ")
        );
    }
    for codec in [CodecKind::G722, CodecKind::Opus] {
        let two = passes(codec, 2, 1.5).mos;
        let blank = " |".repeat(names.len());
        println!("| {codec:?} (MOS-WB) | two passes of the codec, no network |{blank} {two:.2} |");
    }
    let from_16k = opus_from_16_khz().mos;
    let blank = " |".repeat(names.len());
    println!(
        "| Opus (MOS-WB) | one pass coded from 16 kHz (`opus_rate`), no network |{blank} {from_16k:.2} |"
    );
    let calls: usize = std::env::var("QUALITY_PJSUA_CALLS").map_or(3, |v| v.parse().unwrap());
    if calls == 0
        || !"Pcmu two PJSUA2 phones".contains(&std::env::var("QUALITY_ONLY").unwrap_or_default())
    {
        return;
    }
    for i in 1..=calls {
        let mut cells = Vec::new();
        for (_, addr) in &servers {
            number += 1;
            let addr = *addr;
            let n = number.to_string();
            let s = tokio::task::spawn_blocking(move || pjsua_call(addr, &n))
                .await
                .unwrap();
            cells.push(cell(&s));
        }
        let c = ceiling(CodecKind::Pcmu).mos;
        println!(
            "| Pcmu (MOS-NB) | two PJSUA2 phones, call {i} | {} | {c:.2} |",
            cells.join(" | ")
        );
    }
}
