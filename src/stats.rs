//! What sinks measure per packet: how many relays it passed and, when the source stamped it,
//! how long it took end to end (HDR histograms, one per relay count, so per-hop latency can be
//! read by path length). Nodes report them with their counters; the registry adds them up.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::Serialize;

use crate::limits::{LATENCY_NS_MAX, SINK_SAMPLES_MAX, TRACE_SLOTS_MAX};

/// Significant digits of the latency histograms (1% resolution keeps each one small).
const SIGNIFICANT_DIGITS: u8 = 2;
/// Bytes of the serialized form's fixed header (V2: cookie, length, offset, digits, low, high,
/// ratio).
const V2_HEADER_BYTES: usize = 40;
const V2_COOKIE: u32 = 0x1c84_9313;

/// Per-packet measurements at the sinks of one node (or, added up, of an overlay).
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Packets delivered, by number of relays passed.
    pub hops: Vec<u64>,
    /// End-to-end latency in nanoseconds, by number of relays passed (packets without a send
    /// time, as in the classic format, are not in these).
    pub latency_ns: Vec<Histogram<u64>>,
}

/// Upper bounds (nanoseconds) of [`HopLatencyBuckets`]'s buckets: 10 us to 1 s.
pub const HOP_LATENCY_BUCKETS_NS: [u64; 10] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// Latency per hop (a packet's end-to-end latency over the hops it took) of the packets one
/// sink took, in the fixed buckets of [`HOP_LATENCY_BUCKETS_NS`]: about a hundred bytes, where
/// the sink's own HDR histograms take tens of kilobytes, so a registry keeps one per node.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HopLatencyBuckets {
    /// Packets in each bucket (not cumulative): at most its bound and above the one before;
    /// the last, above every bound.
    pub buckets: [u64; HOP_LATENCY_BUCKETS_NS.len() + 1],
    pub count: u64,
    pub sum_ns: f64,
}

impl HopLatencyBuckets {
    /// Adds the packets of `stats` (one sink's), each at its latency over its hops, to the
    /// histograms' resolution (1%).
    pub fn add_stats(&mut self, stats: &RunStats) {
        for (relays, histogram) in stats.latency_ns.iter().enumerate() {
            if histogram.is_empty() {
                continue;
            }
            let hops = relays as u64 + 1;
            for value in histogram.iter_recorded() {
                let per_hop = histogram.median_equivalent(value.value_iterated_to()) / hops;
                let count = value.count_at_value();
                let bucket = HOP_LATENCY_BUCKETS_NS.partition_point(|&bound| bound < per_hop);
                self.buckets[bucket] = self.buckets[bucket].saturating_add(count);
                self.count = self.count.saturating_add(count);
                self.sum_ns += per_hop as f64 * count as f64;
            }
        }
    }

    pub fn add(&mut self, other: &HopLatencyBuckets) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine = mine.saturating_add(theirs);
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_ns += other.sum_ns;
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGNIFICANT_DIGITS)
        .expect("constant bounds are valid")
}

impl PartialEq for RunStats {
    fn eq(&self, other: &RunStats) -> bool {
        self.hops == other.hops && self.latency_ns == other.latency_ns
    }
}

impl Eq for RunStats {}

impl RunStats {
    /// A packet that passed `relays` relays arrived; `latency_ns` if it carried a send time.
    #[inline]
    pub fn record(&mut self, relays: usize, latency_ns: Option<u64>) {
        if relays >= self.hops.len() {
            self.grow(relays + 1);
        }
        self.hops[relays] += 1;
        if let Some(latency) = latency_ns {
            self.latency_ns[relays].saturating_record(latency.clamp(1, LATENCY_NS_MAX));
        }
    }

    #[cold]
    fn grow(&mut self, classes: usize) {
        self.hops.resize(classes, 0);
        while self.latency_ns.len() < classes {
            self.latency_ns.push(new_histogram());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hops.iter().all(|&count| count == 0)
    }

    /// Forgets everything (keeps the allocations).
    pub fn reset(&mut self) {
        self.hops.fill(0);
        for histogram in &mut self.latency_ns {
            histogram.reset();
        }
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &RunStats) {
        if other.hops.len() > self.hops.len() {
            self.grow(other.hops.len());
        }
        for (mine, theirs) in self.hops.iter_mut().zip(&other.hops) {
            *mine += theirs;
        }
        for (mine, theirs) in self.latency_ns.iter_mut().zip(&other.latency_ns) {
            mine.add(theirs).expect("same bounds");
        }
    }

    /// Takes the latencies of `earlier`, packets these statistics already hold, out of them
    /// (a warm-up left out of a run's figures); the hop counts stay whole. Latencies that are
    /// not here (a node that lied) are left as they are.
    pub fn remove_latency_of(&mut self, earlier: &RunStats) {
        for (mine, theirs) in self.latency_ns.iter_mut().zip(&earlier.latency_ns) {
            if let Err(error) = mine.subtract(theirs) {
                tracing::warn!(%error, "the warm-up's latencies are not part of the run's");
            }
        }
    }

    /// Every class's latency together.
    pub fn latency_all(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for histogram in &self.latency_ns {
            all.add(histogram).expect("same bounds");
        }
        all
    }

    /// Appends the serialized form: u8 classes, then per class u64 LE hop count and u32 LE
    /// length + an HDR V2 histogram.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.hops.len() as u8);
        let mut serializer = V2Serializer::new();
        for (count, histogram) in self.hops.iter().zip(&self.latency_ns) {
            out.extend_from_slice(&count.to_le_bytes());
            let length_at = out.len();
            out.extend_from_slice(&[0; 4]);
            let written = serializer
                .serialize(histogram, out)
                .expect("serializing into a Vec cannot fail");
            out[length_at..length_at + 4].copy_from_slice(&(written as u32).to_le_bytes());
        }
    }

    /// Reads what [`RunStats::encode`] wrote from the front of `bytes`; returns it and the
    /// bytes used. Bounds are checked before the histogram library allocates anything.
    pub fn decode(bytes: &[u8]) -> Result<(RunStats, usize), String> {
        let classes = usize::from(*bytes.first().ok_or("missing hop classes")?);
        if classes > TRACE_SLOTS_MAX + 1 {
            return Err(format!(
                "{classes} hop classes (at most {})",
                TRACE_SLOTS_MAX + 1
            ));
        }
        let mut offset = 1;
        let mut stats = RunStats::default();
        stats.grow(classes);
        let mut deserializer = Deserializer::new();
        for class in 0..classes {
            let fixed = bytes
                .get(offset..offset + 12)
                .ok_or("truncated hop class")?;
            stats.hops[class] = u64::from_le_bytes(fixed[..8].try_into().expect("8 bytes"));
            let length = u32::from_le_bytes(fixed[8..].try_into().expect("4 bytes")) as usize;
            offset += 12;
            let encoded = bytes
                .get(offset..offset + length)
                .ok_or("truncated latency histogram")?;
            check_v2_header(encoded)?;
            let mut reader = encoded;
            stats.latency_ns[class] = deserializer
                .deserialize(&mut reader)
                .map_err(|error| format!("bad latency histogram: {error:?}"))?;
            if !reader.is_empty() {
                return Err("stray bytes after a latency histogram".into());
            }
            offset += length;
        }
        Ok((stats, offset))
    }

    /// End-to-end latency percentiles over every class.
    pub fn latency_summary(&self) -> LatencySummary {
        LatencySummary::of(&self.latency_all(), 1)
    }

    /// Hop counts and latency percentiles, for reports.
    pub fn summary(&self) -> StatsSummary {
        let all = self.latency_all();
        StatsSummary {
            packets_by_relays: self.hops.clone(),
            latency_ns: LatencySummary::of(&all, 1),
            latency_quantiles_ns: quantiles(&all),
            latency_per_hop_ns: self
                .latency_ns
                .iter()
                .enumerate()
                .filter(|(_, histogram)| !histogram.is_empty())
                .map(|(relays, histogram)| HopLatency {
                    relays,
                    per_hop: LatencySummary::of(histogram, relays as u64 + 1),
                })
                .collect(),
        }
    }
}

/// What one sink records until it reports (a node keeps two: its run's and what arrived since
/// the last poll): each packet as one `u64` while there are at most [`SINK_SAMPLES_MAX`], the
/// dense [`RunStats`] (an HDR histogram of about 30 KiB per relay count) beyond. A node of a
/// large overlay takes few packets between polls, even in a whole run (about 1,000 of a
/// 1,000-packet run), and the dense form cost it 2 x 13 x 30 KiB at 10,000 nodes whatever it
/// took; a busy node of a small overlay holds the dense form, as before.
#[derive(Debug, Clone, Default)]
pub struct SinkStats {
    /// One per packet: the relays it passed in the low 8 bits, its latency in nanoseconds
    /// ([`LATENCY_NS_MAX`] at most) above them, 0 when it had no send time. Empty once
    /// `dense` holds the packets.
    samples: Vec<u64>,
    dense: Option<DenseStats>,
}

/// The dense form of a sink's record: per relay count, the packets counted by latency in the
/// HDR histograms' own buckets ([`latency_index`]), handed to `hdrhistogram` only when
/// reported ([`DenseStats::to_run_stats`]). Recording a packet is an index and an increment;
/// the histogram's own `saturating_record` also keeps its minimum, maximum and total and
/// checks its range on every value (47.6 instructions per delivery in a W2 node, issue 16),
/// which the report recomputes from the counts anyway.
#[derive(Debug, Clone, Default)]
struct DenseStats {
    /// Per relay count, [`COUNTERS`] counters (30 KiB, as the histogram's): one per latency
    /// bucket, then [`NO_LATENCY`]. The packets of a relay count are their sum, so that a
    /// packet is one increment.
    counts: Vec<Box<[u64]>>,
}

/// Sub-buckets per power of two in the histograms' layout: `hdrhistogram` uses the power of
/// two at or above 2 x 10^digits, with a lowest value of 1 (unit magnitude 0).
const SUB_BUCKETS: u64 = (2 * 10u64.pow(SIGNIFICANT_DIGITS as u32)).next_power_of_two();
const SUB_BUCKET_BITS: u32 = SUB_BUCKETS.trailing_zeros();
const HALF_BUCKET_BITS: u32 = SUB_BUCKET_BITS - 1;
/// Latency buckets per relay count: every latency up to [`LATENCY_NS_MAX`] has one.
const LATENCY_INDEXES: usize = latency_index(LATENCY_NS_MAX) + 1;
/// The counter of packets without a send time, after the latency buckets.
const NO_LATENCY: usize = LATENCY_INDEXES;
/// Counters per relay count in [`DenseStats`].
const COUNTERS: usize = LATENCY_INDEXES + 1;

/// The counter of a packet with `latency_ns` (or none) in [`DenseStats`].
#[inline(always)]
fn counter_of(latency_ns: Option<u64>) -> usize {
    match latency_ns {
        Some(latency) => latency_index(latency.clamp(1, LATENCY_NS_MAX)),
        None => NO_LATENCY,
    }
}

/// The counter of `latency` (1..=[`LATENCY_NS_MAX`]) in the histograms' layout: the
/// power-of-two bucket it falls in, then its sub-bucket (`hdrhistogram`'s `index_for`; the
/// test `latency_counters_are_the_histograms_buckets` holds the two together).
#[inline]
const fn latency_index(latency: u64) -> usize {
    let bucket = 64 - SUB_BUCKET_BITS - (latency | (SUB_BUCKETS - 1)).leading_zeros();
    (((bucket as u64 + 1) << HALF_BUCKET_BITS) + (latency >> bucket) - (SUB_BUCKETS >> 1)) as usize
}

/// A latency in the bucket of counter `index` (its lowest).
const fn latency_of_index(index: usize) -> u64 {
    let bucket = (index >> HALF_BUCKET_BITS) as u32;
    let sub_bucket = (index as u64 & ((1 << HALF_BUCKET_BITS) - 1)) + (SUB_BUCKETS >> 1);
    match bucket {
        // Bucket 0 holds 0..SUB_BUCKETS one by one, in the counters below and above half.
        0 => index as u64,
        _ => sub_bucket << (bucket - 1),
    }
}

impl DenseStats {
    /// As [`RunStats::record`].
    #[inline]
    fn record(&mut self, relays: usize, latency_ns: Option<u64>) {
        if relays >= self.counts.len() {
            self.grow(relays + 1);
        }
        self.counts[relays][counter_of(latency_ns)] += 1;
    }

    #[cold]
    fn grow(&mut self, classes: usize) {
        self.counts
            .resize_with(classes, || vec![0; COUNTERS].into_boxed_slice());
    }

    fn add(&mut self, other: &DenseStats) {
        if other.counts.len() > self.counts.len() {
            self.grow(other.counts.len());
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            for (mine, theirs) in mine.iter_mut().zip(theirs.iter()) {
                *mine += theirs;
            }
        }
    }

    /// The histograms: each counter recorded once, at a latency in its bucket.
    fn to_run_stats(&self) -> RunStats {
        let mut stats = RunStats::default();
        stats.grow(self.counts.len());
        let classes = stats.hops.iter_mut().zip(&mut stats.latency_ns);
        for ((hops, histogram), counts) in classes.zip(&self.counts) {
            *hops = counts.iter().sum();
            for (index, &count) in counts[..LATENCY_INDEXES].iter().enumerate() {
                if count != 0 {
                    histogram.saturating_record_n(latency_of_index(index), count);
                }
            }
        }
        stats
    }
}

const SAMPLE_RELAY_BITS: u32 = 8;
const _: () = assert!(TRACE_SLOTS_MAX < 1 << SAMPLE_RELAY_BITS);
const _: () = assert!(LATENCY_NS_MAX < 1 << (64 - SAMPLE_RELAY_BITS));

impl SinkStats {
    /// As [`RunStats::record`]. Inline for a busy sink's packets (the dense form, a relay
    /// count seen before: one increment); the rest out of line (issue 16: as a call, the
    /// whole took 45 instructions per delivery in a W2 node).
    #[inline(always)]
    pub fn record(&mut self, relays: usize, latency_ns: Option<u64>) {
        if let Some(dense) = &mut self.dense
            && let Some(counts) = dense.counts.get_mut(relays)
        {
            counts[counter_of(latency_ns)] += 1;
            return;
        }
        self.record_otherwise(relays, latency_ns);
    }

    /// [`SinkStats::record`] but for its inline case: a sample, the dense form made, or a
    /// relay count not seen before.
    #[inline(never)]
    fn record_otherwise(&mut self, relays: usize, latency_ns: Option<u64>) {
        if let Some(dense) = &mut self.dense {
            dense.record(relays, latency_ns);
        } else if self.samples.len() < SINK_SAMPLES_MAX {
            let latency = latency_ns.map_or(0, |latency| latency.clamp(1, LATENCY_NS_MAX));
            self.samples
                .push(latency << SAMPLE_RELAY_BITS | relays as u64);
        } else {
            self.densify().record(relays, latency_ns);
        }
    }

    /// The dense form, made now if the packets were still samples.
    #[cold]
    fn densify(&mut self) -> &mut DenseStats {
        let dense = self.dense.get_or_insert_with(|| {
            let mut dense = DenseStats::default();
            for &sample in &self.samples {
                let (relays, latency) = unpack(sample);
                dense.record(relays, latency);
            }
            dense
        });
        self.samples = Vec::new();
        dense
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &SinkStats) {
        if self.dense.is_none()
            && other.dense.is_none()
            && self.samples.len() + other.samples.len() <= SINK_SAMPLES_MAX
        {
            self.samples.extend_from_slice(&other.samples);
            return;
        }
        let dense = self.densify();
        match &other.dense {
            Some(theirs) => dense.add(theirs),
            None => {
                for &sample in &other.samples {
                    let (relays, latency) = unpack(sample);
                    dense.record(relays, latency);
                }
            }
        }
    }

    /// The packets as [`RunStats`] (what a report carries).
    pub fn to_run_stats(&self) -> RunStats {
        match &self.dense {
            Some(dense) => dense.to_run_stats(),
            None => {
                let mut stats = RunStats::default();
                for &sample in &self.samples {
                    let (relays, latency) = unpack(sample);
                    stats.record(relays, latency);
                }
                stats
            }
        }
    }
}

fn unpack(sample: u64) -> (usize, Option<u64>) {
    let relays = (sample & ((1 << SAMPLE_RELAY_BITS) - 1)) as usize;
    let latency = sample >> SAMPLE_RELAY_BITS;
    (relays, (latency != 0).then_some(latency))
}

/// See [`StatsSummary::latency_quantiles_ns`].
fn quantiles(histogram: &Histogram<u64>) -> Vec<(f64, u64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let mut points = vec![(0.0, histogram.min())];
    points.extend((1..100).map(|percent| {
        let q = f64::from(percent) / 100.0;
        (q, histogram.value_at_quantile(q))
    }));
    points.extend([0.999, 0.9999].map(|q| (q, histogram.value_at_quantile(q))));
    points.push((1.0, histogram.max()));
    points
}

/// Refuses a serialized histogram whose header would make the library allocate more than ours
/// ever need (or read past the frame).
fn check_v2_header(encoded: &[u8]) -> Result<(), String> {
    let header = encoded
        .get(..V2_HEADER_BYTES)
        .ok_or("truncated latency histogram header")?;
    let word = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    if word(0) != V2_COOKIE {
        return Err("latency histogram is not an uncompressed HDR V2 histogram".into());
    }
    let payload = word(4) as usize;
    if payload > encoded.len() - V2_HEADER_BYTES {
        return Err("latency histogram longer than its frame".into());
    }
    if word(12) != u32::from(SIGNIFICANT_DIGITS) || long(16) != 1 || long(24) != LATENCY_NS_MAX {
        return Err("latency histogram with unexpected bounds".into());
    }
    Ok(())
}

/// Percentiles of a latency histogram, divided by `per` (1 for end to end, the number of
/// transmissions for per-hop figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>, per: u64) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        let at = |q: f64| histogram.value_at_quantile(q) / per;
        LatencySummary {
            count: histogram.len(),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: histogram.max() / per,
        }
    }
}

/// Per-hop latency of the packets that passed `relays` relays.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HopLatency {
    pub relays: usize,
    /// End-to-end latency divided by the transmissions (relays + 1).
    pub per_hop: LatencySummary,
}

/// What a report shows of [`RunStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatsSummary {
    /// Packets delivered, by relays passed (index = relays).
    pub packets_by_relays: Vec<u64>,
    /// End-to-end latency over all packets, nanoseconds.
    pub latency_ns: LatencySummary,
    /// The end-to-end latency's distribution: (quantile, nanoseconds) at 0 (the least),
    /// every 1% up to 99%, 99.9%, 99.99% and 1 (the most); empty without latencies. What
    /// `tools/plot.py latency` draws as a CDF.
    pub latency_quantiles_ns: Vec<(f64, u64)>,
    /// Per-hop latency by path length, nanoseconds.
    pub latency_per_hop_ns: Vec<HopLatency>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_add_encode_decode() {
        let mut a = RunStats::default();
        a.record(0, Some(10_000));
        a.record(2, Some(30_000));
        a.record(2, None);
        let mut b = RunStats::default();
        b.record(1, Some(20_000));
        b.add(&a);
        assert_eq!(b.hops, [1, 1, 2]);
        let mut bytes = vec![];
        b.encode(&mut bytes);
        let (decoded, used) = RunStats::decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(decoded, b);
        let summary = decoded.summary();
        assert_eq!(summary.latency_ns.count, 3);
        assert_eq!(summary.latency_per_hop_ns.len(), 3);
        let two = &summary.latency_per_hop_ns[2];
        assert_eq!(two.relays, 2);
        assert!((9_900..=10_100).contains(&two.per_hop.p50), "{two:?}");
        // The CDF: 103 points, quantiles and values rising, from the least to the most.
        let cdf = &summary.latency_quantiles_ns;
        assert_eq!(cdf.len(), 103);
        assert!((9_900..=10_100).contains(&cdf[0].1), "{cdf:?}");
        assert!((29_700..=30_300).contains(&cdf[102].1), "{cdf:?}");
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!(
            RunStats::default()
                .summary()
                .latency_quantiles_ns
                .is_empty()
        );
        assert!(RunStats::default().is_empty());
    }

    /// A sink's record holds packets as samples up to its bound, then as histograms, and
    /// reports the same statistics either way.
    #[test]
    fn sink_stats_report_what_run_stats_would() {
        let packet = |i: usize| {
            (
                i % 7,
                (!i.is_multiple_of(5)).then_some(1_000 + 997 * i as u64),
            )
        };
        let mut expected = RunStats::default();
        let mut sink = SinkStats::default();
        for i in 0..SINK_SAMPLES_MAX {
            let (relays, latency) = packet(i);
            expected.record(relays, latency);
            sink.record(relays, latency);
        }
        assert!(
            sink.dense.is_none(),
            "the bound's worth of packets stays samples"
        );
        assert_eq!(sink.to_run_stats(), expected);
        let (relays, latency) = packet(SINK_SAMPLES_MAX);
        expected.record(relays, latency);
        sink.record(relays, latency);
        assert!(sink.dense.is_some() && sink.samples.capacity() == 0);
        assert_eq!(sink.to_run_stats(), expected);

        // Adding: samples to samples within the bound, then past it, then dense to samples.
        let mut few = SinkStats::default();
        let mut few_expected = RunStats::default();
        for i in 0..SINK_SAMPLES_MAX / 2 {
            let (relays, latency) = packet(3 * i);
            few.record(relays, latency);
            few_expected.record(relays, latency);
        }
        let mut total = few.clone();
        let mut total_expected = few_expected.clone();
        total.add(&few);
        total_expected.add(&few_expected);
        assert!(total.dense.is_none());
        assert_eq!(total.to_run_stats(), total_expected);
        total.add(&few);
        total_expected.add(&few_expected);
        assert!(total.dense.is_some());
        assert_eq!(total.to_run_stats(), total_expected);
        let mut samples = few.clone();
        samples.add(&sink);
        few_expected.add(&expected);
        assert_eq!(samples.to_run_stats(), few_expected);
        assert_eq!(SinkStats::default().to_run_stats(), RunStats::default());
    }

    /// A sink's dense record counts each latency in the histogram's own bucket: the counter's
    /// latency is the lowest of the bucket `hdrhistogram` puts the latency in.
    #[test]
    fn latency_counters_are_the_histograms_buckets() {
        let histogram = new_histogram();
        let mut draw = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            draw ^= draw << 13;
            draw ^= draw >> 7;
            draw ^= draw << 17;
            draw % LATENCY_NS_MAX + 1
        };
        let edges = (0..64).flat_map(|bit| {
            let power = 1u64 << bit;
            [power - 1, power, power + 1]
        });
        let latencies = (1..=100_000)
            .chain(edges)
            .chain((0..100_000).map(|_| next()))
            .filter(|latency| (1..=LATENCY_NS_MAX).contains(latency))
            .chain([LATENCY_NS_MAX]);
        for latency in latencies {
            let index = latency_index(latency);
            assert!(index < LATENCY_INDEXES, "{latency}: counter {index}");
            assert_eq!(
                latency_of_index(index),
                histogram.lowest_equivalent(latency),
                "{latency}: counter {index}"
            );
        }
    }

    /// A warm-up's latencies come out of the run's, and only those.
    #[test]
    fn warmup_latency_removed() {
        let mut warmup = RunStats::default();
        warmup.record(1, Some(5_000_000));
        let mut run = warmup.clone();
        run.record(1, Some(20_000));
        run.record(1, Some(20_000));
        run.remove_latency_of(&warmup);
        assert_eq!(run.hops, [0, 3], "hop counts stay whole");
        let latency = run.latency_summary();
        assert_eq!(latency.count, 2);
        assert!(latency.max < 30_000, "{latency:?}");
    }

    #[test]
    fn hostile_histograms_are_refused_before_allocating() {
        let mut stats = RunStats::default();
        stats.record(0, Some(5));
        let mut bytes = vec![];
        stats.encode(&mut bytes);
        // The histogram starts after: classes (1) + count (8) + length (4).
        let mut huge = bytes.clone();
        huge[13 + 24..13 + 32].copy_from_slice(&u64::MAX.to_be_bytes()); // highest trackable
        assert!(RunStats::decode(&huge).is_err());
        let mut long = bytes.clone();
        long[13 + 4..13 + 8].copy_from_slice(&u32::MAX.to_be_bytes()); // payload length
        assert!(RunStats::decode(&long).is_err());
        assert!(RunStats::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(RunStats::decode(&[200]).is_err());
    }
}
