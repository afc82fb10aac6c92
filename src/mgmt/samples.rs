//! Sample history behind the API's `*_details` objects: what RabbitMQ's
//! management UI charts read with `lengths_age`/`lengths_incr` (queue
//! lengths) and `msg_rates_age`/`msg_rates_incr` (message counters), in
//! seconds.
//!
//! Owns: one value per series (the counters of `mgmt::counters`, keyed
//! "kind|vhost|name|counter") per sampler tick (every 5 s), newest last.
//! Node-wide series ("all|...") keep [`NODE_DEPTH`] samples (10 minutes,
//! RabbitMQ's `global` retention), every other series [`OBJECT_DEPTH`]
//! (1 minute, the UI's default range), so 10,000 queues cost about 7 MB
//! rather than 70. Runs on shard 0 only, off the data path; allocates per
//! series, never per message.
//!
//! Answers as RabbitMQ 3.10 does (recorded from a private node): samples
//! newest first at multiples of `incr` seconds (`floor(age / incr) + 1` of
//! them) with `timestamp` in ms; `avg` the mean of the samples, `avg_rate`
//! (newest - oldest) / the time between them, in units per second. A time
//! before the object existed samples 0, as in RabbitMQ; a time before the
//! retained history is left out rather than invented.

use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};

/// Samples kept for node-wide series ("all|..."): 10 minutes at 5 s.
pub const NODE_DEPTH: usize = 121;
/// Samples kept for every other series: 1 minute at 5 s.
pub const OBJECT_DEPTH: usize = 13;

/// A requested range: `age` and `incr` in seconds (both > 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// How far back, seconds.
    pub age: u64,
    /// Spacing of the samples, seconds.
    pub incr: u64,
}

/// The ranges a request asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ranges {
    /// `lengths_age` / `lengths_incr`: queue lengths.
    pub lengths: Option<Range>,
    /// `msg_rates_age` / `msg_rates_incr`: message counters.
    pub msg_rates: Option<Range>,
}

/// Read `{prefix}_age` and `{prefix}_incr` from the query `q`. As RabbitMQ
/// 3.10: one without the other, or a value that is not a number, asks for
/// nothing; `incr` 0 is 400 `Invalid range parameters: age A, incr 0`.
pub fn ranges(q: impl Fn(&str) -> Option<String>) -> Result<Ranges, String> {
    let one = |prefix: &str| -> Result<Option<Range>, String> {
        let age = q(&format!("{prefix}_age")).and_then(|v| v.parse::<u64>().ok());
        let incr = q(&format!("{prefix}_incr")).and_then(|v| v.parse::<u64>().ok());
        match (age, incr) {
            (Some(age), Some(0)) => Err(format!("Invalid range parameters: age {age}, incr 0")),
            // At most a day back (RabbitMQ keeps no more by default).
            (Some(age), Some(incr)) => Ok(Some(Range {
                age: age.min(86_400),
                incr,
            })),
            _ => Ok(None),
        }
    };
    Ok(Ranges {
        lengths: one("lengths")?,
        msg_rates: one("msg_rates")?,
    })
}

/// The history (see the module documentation).
#[derive(Default)]
pub struct History {
    /// Tick times, ms since the epoch, newest last (at most NODE_DEPTH).
    times: VecDeque<u64>,
    /// Series values, aligned with the newest entries of `times`.
    series: HashMap<String, VecDeque<u64>>,
}

impl History {
    /// Record one tick at `now_ms` with the current value of every series;
    /// series that are gone (deleted objects) are dropped.
    pub fn record(&mut self, now_ms: u64, values: &HashMap<String, u64>) {
        self.times.push_back(now_ms);
        if self.times.len() > NODE_DEPTH {
            self.times.pop_front();
        }
        self.series.retain(|k, _| values.contains_key(k));
        for (k, v) in values {
            let depth = if k.starts_with("all|") {
                NODE_DEPTH
            } else {
                OBJECT_DEPTH
            };
            // The key is cloned only for a new series, not every tick.
            let s = match self.series.get_mut(k) {
                Some(s) => s,
                None => self.series.entry(k.clone()).or_default(),
            };
            s.push_back(*v);
            while s.len() > depth {
                s.pop_front();
            }
        }
    }

    /// The value of `key` at or before `t_ms`: Some(0) before the series
    /// began (the object did not exist), None before the retained history.
    fn at(&self, key: &str, t_ms: u64) -> Option<u64> {
        let s = self.series.get(key)?;
        // Index (from the newest) of the newest tick at or before t_ms.
        let back = self.times.iter().rev().position(|&t| t <= t_ms)?;
        if back < s.len() {
            return Some(s[s.len() - 1 - back]);
        }
        let depth = if key.starts_with("all|") {
            NODE_DEPTH
        } else {
            OBJECT_DEPTH
        };
        // Within the series' retention but before its first sample: it
        // did not exist yet.
        (back < depth.min(self.times.len())).then_some(0)
    }

    /// RabbitMQ's `{rate, samples, avg, avg_rate}` for `key` over `range`
    /// (`rate`: the current rate, per second). Without history yet, only
    /// the rate.
    pub fn details(&self, key: &str, rate: f64, range: Range) -> Value {
        let Some(&newest) = self.times.back() else {
            return json!({ "rate": rate });
        };
        let step = range.incr * 1000;
        let first = newest / step * step;
        let count = range.age / range.incr + 1;
        let samples: Vec<(u64, u64)> = (0..count)
            .map_while(|k| first.checked_sub(k * step))
            .map_while(|t| self.at(key, t).map(|v| (t, v)))
            .collect();
        let n = samples.len();
        let avg = if n == 0 {
            0.0
        } else {
            samples.iter().map(|(_, v)| *v as f64).sum::<f64>() / n as f64
        };
        let avg_rate = match (samples.first(), samples.last()) {
            (Some((t1, v1)), Some((t0, v0))) if t1 > t0 => {
                (*v1 as f64 - *v0 as f64) / ((t1 - t0) as f64 / 1000.0)
            }
            _ => 0.0,
        };
        let list: Vec<Value> = samples
            .iter()
            .map(|(t, v)| json!({"sample": v, "timestamp": t}))
            .collect();
        json!({"rate": rate, "samples": list, "avg": avg, "avg_rate": avg_rate})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(h: &mut History, t: u64, pairs: &[(&str, u64)]) {
        let m = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        h.record(t, &m);
    }

    #[test]
    fn details_sample_newest_first_at_multiples_of_incr() {
        let mut h = History::default();
        for i in 0..20u64 {
            tick(&mut h, 1_000_000 + i * 5000, &[("all|||publish", i * 10)]);
        }
        let d = h.details("all|||publish", 2.0, Range { age: 30, incr: 10 });
        let s = d["samples"].as_array().unwrap();
        assert_eq!(s.len(), 4);
        // Aligned down to a multiple of incr: the tick at 1,095,000 is
        // after the newest sample time 1,090,000.
        assert_eq!(s[0], json!({"sample": 180, "timestamp": 1_090_000}));
        assert_eq!(s[1], json!({"sample": 160, "timestamp": 1_080_000}));
        assert_eq!(d["avg_rate"], json!(2.0));
        assert_eq!(d["avg"], json!(150.0));
        assert_eq!(d["rate"], json!(2.0));
    }

    #[test]
    fn a_new_object_samples_zero_before_it_existed_and_old_times_are_left_out() {
        let mut h = History::default();
        for i in 0..10u64 {
            let mut pairs = vec![("all|||messages", i)];
            if i >= 8 {
                pairs.push(("queue|/|q|messages", 7));
            }
            tick(&mut h, i * 5000, &pairs);
        }
        let d = h.details("queue|/|q|messages", 0.0, Range { age: 20, incr: 5 });
        let got: Vec<u64> = d["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sample"].as_u64().unwrap())
            .collect();
        assert_eq!(got, vec![7, 7, 0, 0, 0]);
        // Beyond the object retention (13 ticks) nothing is invented.
        for i in 10..30u64 {
            tick(&mut h, i * 5000, &[("queue|/|q|messages", 7)]);
        }
        let d = h.details("queue|/|q|messages", 0.0, Range { age: 600, incr: 5 });
        assert_eq!(d["samples"].as_array().unwrap().len(), OBJECT_DEPTH);
        // A deleted object's series goes.
        tick(&mut h, 31 * 5000, &[]);
        assert!(h.series.is_empty());
    }

    #[test]
    fn ranges_are_read_as_rabbitmq_reads_them() {
        let q = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(a, _)| *a == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(ranges(q(&[("lengths_age", "60")])), Ok(Ranges::default()));
        assert_eq!(
            ranges(q(&[("lengths_age", "abc"), ("lengths_incr", "5")])),
            Ok(Ranges::default())
        );
        assert_eq!(
            ranges(q(&[("lengths_age", "60"), ("lengths_incr", "0")])),
            Err("Invalid range parameters: age 60, incr 0".into())
        );
        assert_eq!(
            ranges(q(&[("msg_rates_age", "60"), ("msg_rates_incr", "5")]))
                .unwrap()
                .msg_rates,
            Some(Range { age: 60, incr: 5 })
        );
    }
}
