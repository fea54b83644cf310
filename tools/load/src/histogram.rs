//! A log-linear latency histogram: exact below 64 µs, then 64 buckets per power of two (within
//! 1.6 %), mergeable across processes as `(bucket, count)` pairs.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two (2^6).
const SUB: u64 = 64;
const SUB_BITS: u32 = 6;

/// Counts of values (microseconds) in log-linear buckets, and the exact maximum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Non-empty buckets as `(index, count)`, for the wire; see [`Histogram::compact`].
    buckets: Vec<(u32, u64)>,
    /// The largest value recorded.
    pub max: u64,
    #[serde(skip)]
    counts: Vec<u64>,
}

fn index(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = (value >> shift) - SUB;
    ((u64::from(shift) + 1) * SUB + sub) as usize
}

/// The smallest value of bucket `i`.
fn lower(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    (SUB + i % SUB) << shift
}

impl Histogram {
    /// Record one value.
    pub fn record(&mut self, value: u64) {
        let i = index(value);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.max = self.max.max(value);
    }

    /// Add every value of `other` (compacted or not).
    pub fn merge(&mut self, other: &Histogram) {
        for (i, &count) in other.counts.iter().enumerate() {
            self.add(i, count);
        }
        for &(i, count) in &other.buckets {
            self.add(i as usize, count);
        }
        self.max = self.max.max(other.max);
    }

    fn add(&mut self, i: usize, count: u64) {
        if count == 0 {
            return;
        }
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += count;
    }

    /// This histogram with its buckets in the serialized form.
    pub fn compact(&self) -> Histogram {
        Histogram {
            buckets: self
                .counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| (i as u32, c))
                .collect(),
            max: self.max,
            counts: Vec::new(),
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.buckets.iter().map(|(_, c)| c).sum::<u64>()
    }

    /// The value at quantile `q` (0..=1): the upper end of its bucket, at most the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (lower(i + 1) - 1).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value falls in the bucket whose bounds contain it, within 1/64 of its size.
    #[test]
    fn buckets_contain_their_values() {
        for v in (0..5_000).chain([65_535, 65_536, 1 << 30, u64::from(u32::MAX)]) {
            let i = index(v);
            assert!(lower(i) <= v && v < lower(i + 1), "{v} in bucket {i}");
            assert!((lower(i + 1) - lower(i)) as f64 <= (v as f64 / 64.0).max(1.0));
        }
    }

    /// Quantiles of merged histograms are those of all the values together.
    #[test]
    fn merged_quantiles() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for v in 1..=50 {
            a.record(v);
        }
        for v in 51..=100 {
            b.record(v);
        }
        let mut all = Histogram::default();
        all.merge(&a.compact());
        all.merge(&b);
        assert_eq!(all.count(), 100);
        assert_eq!(all.quantile(0.5), 50);
        assert_eq!(all.quantile(1.0), 100);
        assert_eq!(all.max, 100);
    }
}
