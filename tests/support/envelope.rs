//! Matching what a phone heard against a known file: RMS envelopes and their correlation,
//! so a prompt is recognised whatever its level or codec.

/// RMS of each 100 ms of `pcm`.
pub fn envelope(pcm: &[i16], rate: u32) -> Vec<f64> {
    pcm.chunks(rate as usize / 10)
        .map(|c| (c.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
        .collect()
}

/// Pearson correlation of two equally long series.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let var = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>();
    cov / (var(a, ma) * var(b, mb)).sqrt().max(1e-9)
}

/// Where `part` lines up best in `heard`, and how well.
pub fn best_match(heard: &[f64], part: &[f64]) -> (usize, f64) {
    (0..heard.len().saturating_sub(part.len()))
        .map(|at| (at, correlation(&heard[at..at + part.len()], part)))
        .fold((0, f64::MIN), |best, m| if m.1 > best.1 { m } else { best })
}

/// A shipped prompt (`config/prompts/{language}/{name}.wav`) at `rate`.
pub fn prompt(language: &str, name: &str, rate: u32) -> Vec<i16> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join(format!("config/prompts/{language}/{name}.wav"));
    mixer::wav::Pcm::load(path, rate)
        .unwrap()
        .samples()
        .to_vec()
}
