//! Summary statistics of a set of samples. Each function takes the samples in any order and
//! panics on an empty set: a figure made of no measurement is a bug of the benchmark.

/// The middle value; the mean of the two middle values for an even count.
pub fn median(samples: &[f64]) -> f64 {
    let sorted = sorted(samples);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// The nearest-rank percentile: the smallest sample that at least `percent` % of the samples
/// are less than or equal to. `percentile(s, 99.0)` of 1000 samples is the 990th smallest.
pub fn percentile(samples: &[f64], percent: f64) -> f64 {
    assert!(
        (0.0..=100.0).contains(&percent),
        "percentile {percent} is not in 0..=100"
    );
    let sorted = sorted(samples);
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.max(1) - 1]
}

pub fn mean(samples: &[f64]) -> f64 {
    assert!(!samples.is_empty(), "mean of no samples");
    samples.iter().sum::<f64>() / samples.len() as f64
}

/// The sample standard deviation (divided by n - 1: the samples estimate a larger population).
/// Zero for a single sample.
pub fn stdev(samples: &[f64]) -> f64 {
    let mean = mean(samples);
    if samples.len() == 1 {
        return 0.0;
    }
    let squares: f64 = samples.iter().map(|sample| (sample - mean).powi(2)).sum();
    (squares / (samples.len() - 1) as f64).sqrt()
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    assert!(!samples.is_empty(), "statistics of no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// Checks every function above against values worked out by hand. `cargo test` runs bench
/// targets without the libtest harness (`harness = false`), so these checks are called from
/// `main` instead of being `#[test]`s; a failed check panics and fails `cargo test`.
pub fn self_test() -> usize {
    let checks: [(&str, f64, f64); 11] = [
        ("median of an odd count", median(&[3.0, 1.0, 2.0]), 2.0),
        (
            "median of an even count",
            median(&[4.0, 1.0, 3.0, 2.0]),
            2.5,
        ),
        ("median of one sample", median(&[7.0]), 7.0),
        ("p50 of 1..=10", percentile(&ten(), 50.0), 5.0),
        ("p99 of 1..=10", percentile(&ten(), 99.0), 10.0),
        ("p0 is the smallest", percentile(&ten(), 0.0), 1.0),
        ("p100 is the largest", percentile(&ten(), 100.0), 10.0),
        ("p99 of 1..=1000", percentile(&thousand(), 99.0), 990.0),
        ("mean of 1..=10", mean(&ten()), 5.5),
        // Deviations from the mean 5: -3, -1, -1, -1, 0, 0, 2, 4; squares sum to 32; 32 / 7.
        (
            "sample stdev",
            stdev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]),
            (32.0f64 / 7.0).sqrt(),
        ),
        ("stdev of one sample", stdev(&[3.0]), 0.0),
    ];
    for (what, got, expected) in checks {
        assert!(
            (got - expected).abs() < 1e-9,
            "statistics self-test `{what}': got {got}, expected {expected}"
        );
    }
    checks.len()
}

fn ten() -> Vec<f64> {
    // Reversed: the functions must not rely on sorted input.
    (1..=10).rev().map(f64::from).collect()
}

fn thousand() -> Vec<f64> {
    (1..=1000).rev().map(f64::from).collect()
}
