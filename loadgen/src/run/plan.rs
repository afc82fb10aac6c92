//! What a run declares and expects: the routing plan, and the queues,
//! exchanges and bindings it sets up before publishing.

use super::*;

/// How messages are routed, so the run knows which queues expect what.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Publisher p sends to queue `target[p]` (None: unknown, not checked).
    Direct {
        all: bool,
    },
    Fanout,
    Topic {
        n: usize,
    },
}

pub struct Setup {
    pub exchange: String,
    pub kind: String,
    pub declare_exchange: bool,
    pub queues: Vec<String>,
    pub plan: Plan,
}

pub fn queue_name(pattern: &str, i: usize) -> String {
    if pattern.contains("%d") {
        pattern.replace("%d", &i.to_string())
    } else {
        format!("{pattern}-{i}")
    }
}

impl Setup {
    pub fn from_opts(o: &Opts) -> Result<Setup, String> {
        let k = o.queues.max(1);
        let queues: Vec<String> = (0..k).map(|i| queue_name(&o.queue_pattern, i)).collect();
        let kind = if o.fanout {
            "fanout".to_string()
        } else if o.topic_bindings > 0 {
            "topic".to_string()
        } else {
            o.kind.clone().unwrap_or_else(|| "direct".into())
        };
        let exchange = match (&o.exchange, kind.as_str()) {
            (Some(e), _) => e.clone(),
            (None, "fanout") => "loadgen.fanout".into(),
            (None, "topic") => "loadgen.topic".into(),
            (None, _) => String::new(),
        };
        let plan = match kind.as_str() {
            "fanout" => Plan::Fanout,
            "topic" => Plan::Topic {
                n: o.topic_bindings,
            },
            "direct" => Plan::Direct {
                all: o.key.is_some() && !exchange.is_empty(),
            },
            other => {
                return Err(format!(
                    "unsupported exchange type {other} (direct, fanout, topic)"
                ))
            }
        };
        let declare_exchange = !exchange.is_empty() && !exchange.starts_with("amq.");
        Ok(Setup {
            exchange,
            kind,
            declare_exchange,
            queues,
            plan,
        })
    }

    /// The routing key publisher `p` uses for its `i`-th key variant.
    pub(super) fn keys(&self, o: &Opts, p: usize) -> Vec<String> {
        match &self.plan {
            Plan::Topic { n } if *n > 0 => (0..*n).map(|b| format!("lg.{b}.x")).collect(),
            Plan::Topic { .. } => vec!["lg.0.x".into()],
            Plan::Fanout => vec![o.key.clone().unwrap_or_default()],
            Plan::Direct { .. } => vec![o
                .key
                .clone()
                .unwrap_or_else(|| self.queues[p % self.queues.len()].clone())],
        }
    }

    /// Queues expected to receive publisher `p`'s message `seq`.
    #[inline]
    pub(super) fn targets(&self, o: &Opts, p: usize, seq: u64, mut f: impl FnMut(usize)) {
        let k = self.queues.len();
        match &self.plan {
            Plan::Fanout => (0..k).for_each(f),
            Plan::Topic { n } if *n > 0 => f(((p as u64 + seq) % *n as u64) as usize % k),
            Plan::Topic { .. } => (0..k).for_each(f),
            Plan::Direct { all: true } => (0..k).for_each(f),
            Plan::Direct { all: false } => match &o.key {
                Some(key) => {
                    if let Some(i) = self.queues.iter().position(|q| q == key) {
                        f(i)
                    }
                }
                None => f(p % k),
            },
        }
    }

    pub(super) fn declare(&self, o: &Opts, c: &mut Conn) -> io::Result<()> {
        if self.declare_exchange {
            c.exchange_declare(&self.exchange, &self.kind, o.persistent)?;
        }
        let k = self.queues.len();
        for q in &self.queues {
            // Start from empty queues so leftovers never look like duplicates.
            c.queue_delete_if_exists(q)?;
            let mut args = amq_protocol::types::FieldTable::default();
            if let Some(ttl) = o.message_ttl {
                args.insert(
                    "x-message-ttl".into(),
                    amq_protocol::types::AMQPValue::LongUInt(ttl),
                );
            }
            if let Some(p) = o.max_priority {
                args.insert(
                    "x-max-priority".into(),
                    amq_protocol::types::AMQPValue::ShortShortUInt(p),
                );
            }
            if let Some(l) = &o.queue_locator {
                args.insert(
                    "x-queue-master-locator".into(),
                    amq_protocol::types::AMQPValue::LongString(l.as_str().into()),
                );
            }
            c.queue_declare_with(q, o.persistent, false, args)?;
        }
        if self.exchange.is_empty() {
            return Ok(());
        }
        match &self.plan {
            Plan::Fanout => {
                for q in &self.queues {
                    c.queue_bind(q, &self.exchange, "")?;
                }
            }
            Plan::Topic { n } if *n > 0 => {
                // Pipelined: a thousand round trips would dominate set-up.
                for b in 0..*n {
                    client::put_method(
                        &mut c.out,
                        1,
                        AMQPClass::Queue(amq_protocol::protocol::queue::AMQPMethod::Bind(
                            amq_protocol::protocol::queue::Bind {
                                queue: self.queues[b % k].as_str().into(),
                                exchange: self.exchange.as_str().into(),
                                routing_key: format!("lg.{b}.*").into(),
                                nowait: false,
                                arguments: Default::default(),
                            },
                        )),
                    );
                }
                c.flush()?;
                for _ in 0..*n {
                    c.expect_method(1)?;
                }
            }
            Plan::Topic { .. } => {
                for q in &self.queues {
                    c.queue_bind(q, &self.exchange, "lg.#")?;
                }
            }
            Plan::Direct { .. } => {
                for q in &self.queues {
                    c.queue_bind(q, &self.exchange, o.key.as_deref().unwrap_or(q))?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn cleanup(&self, c: &mut Conn) -> io::Result<()> {
        for q in &self.queues {
            c.queue_delete(q)?;
        }
        if self.declare_exchange {
            c.exchange_delete(&self.exchange)?;
        }
        Ok(())
    }
}
