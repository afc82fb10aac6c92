//! Dead letters and delayed releases leaving this shard's queues: routed
//! through this shard's table copy and handed to their targets' shards
//! through the outbox, with the same backpressure as publishes.
//!
//! At-least-once for stored messages: a message that dies in a durable
//! queue (or is released by a durable delayed-message exchange) keeps its
//! journal entry live until every shard it was routed to has taken it,
//! which each confirms as it confirms a publisher (after its group commit
//! when it stored the message). The confirm names a [`ConfirmRef`] of
//! kind dead letter, handled here ([`QueueHome::dead_letter_settled`]);
//! only then is the source's entry acked. A crash in between brings the
//! message back to its source queue (where it dies again), so a dead
//! letter may be duplicated, never lost. A dead letter a target refuses
//! (`reject-publish`, disk full) also stays live, and returns to its queue
//! at the next start. Unroutable dead letters are dropped, as RabbitMQ
//! drops them. Transient messages stay at-most-once, as in RabbitMQ.
//! Must never: route or enqueue in the middle of another queue's
//! operation (everything goes through the outbox, to this shard too).

use super::QueueHome;
use crate::bus::{ConfirmRef, QueueList, ShardMsg};
use crate::ids::{QueueId, ShardId};
use crate::message::MsgRef;
use crate::queue::{DeadLetter, DeadLetterTarget, Queue};
use crate::store::journal::Recovered;
use crate::store::Store;
use std::collections::HashMap;
use std::rc::Rc;

/// A dead letter (or a delayed message due) with where it comes from.
pub(super) struct PendingDeadLetter {
    from: Rc<Source>,
    letter: DeadLetter,
}

/// The queue (or delay store) a batch of dead letters comes from: shared
/// by the batch, so a letter costs no string copies.
struct Source {
    vhost: String,
    /// The queue's name (the exchange's, for a delay store).
    name: String,
    id: QueueId,
    /// Where its dead letters go; None for a delay store, whose messages
    /// are routed by their own exchange.
    target: Option<DeadLetterTarget>,
}

/// Dead letters waiting for the end of the batch, and a spare buffer:
/// the two swap, so that neither is reallocated per batch (a fresh
/// allocation per batch was a page fault per batch at high rates).
#[derive(Default)]
pub(super) struct Pending {
    letters: Vec<PendingDeadLetter>,
    spare: Vec<PendingDeadLetter>,
}

/// Stored copies of dead letters waiting for their targets' confirms.
#[derive(Default)]
pub(super) struct Held {
    next: u64,
    letters: HashMap<u64, HeldLetter>,
}

struct HeldLetter {
    source: QueueId,
    stored: Recovered,
    /// Target shards that have not confirmed yet.
    outstanding: usize,
    /// Some target refused it.
    refused: bool,
}

impl QueueHome {
    /// Perform the journal effects `q` decided, and collect its dead
    /// letters for [`QueueHome::send_dead_letters`].
    pub(super) fn effects(&self, store: &mut Store, q: &mut Queue) {
        super::apply_store_ops(store, q);
        // Nothing to copy on the delivery path unless something died.
        if !q.has_dead_letters() {
            return;
        }
        let target = q.dead_letter_target().cloned();
        if target.is_none() && !q.is_delay_store() {
            // Its dead-letter exchange went meanwhile (a policy change).
            let id = q.id();
            for letter in q.take_dead_letters() {
                if let Some(r) = letter.stored {
                    store.ack(id, r.pos);
                }
            }
            return;
        }
        let from = Rc::new(Source {
            vhost: q.def.vhost.clone(),
            name: q.def.name.clone(),
            id: q.id(),
            target,
        });
        let mut dead = self.dead.borrow_mut();
        for letter in q.take_dead_letters() {
            dead.letters.push(PendingDeadLetter {
                from: from.clone(),
                letter,
            });
        }
    }

    /// Re-publish the dead letters collected so far through this shard's
    /// routing table to their dead-letter exchanges (see the module
    /// documentation). Called at the end of every batch. A missing
    /// dead-letter exchange drops the message, as in RabbitMQ.
    pub fn send_dead_letters(&self) {
        if self.dead.borrow().letters.is_empty() {
            return;
        }
        let mut pending = {
            let mut d = self.dead.borrow_mut();
            let spare = std::mem::take(&mut d.spare);
            std::mem::replace(&mut d.letters, spare)
        };
        let now_secs = super::now_ms() / 1000;
        let mut dests = Vec::new();
        for p in pending.drain(..) {
            dests.clear();
            let from = &p.from;
            let msg = match &from.target {
                Some(target) => {
                    let out = crate::queue::dead_letter::dead_letter(
                        &p.letter.msg,
                        p.letter.reason,
                        &from.name,
                        target,
                        now_secs,
                    );
                    let table = self.link.table();
                    table.route(
                        &from.vhost,
                        &target.exchange,
                        out.msg.routing_key.as_str(),
                        Some(&out.headers),
                        &out.msg.props,
                        &mut dests,
                    );
                    // (A delayed-message exchange's store is no queue of
                    // the table: a dead letter may always wait there.)
                    dests.retain(|(qid, _)| {
                        table
                            .queue_by_id(*qid)
                            .is_none_or(|q| out.may_enter(&q.name))
                    });
                    out.msg
                }
                // Released by a delayed-message exchange's store: routed
                // by that exchange (with the routing key and any `CC`/`BCC`
                // keys, `x-delay` negated so it is not delayed again), as
                // the plugin does: once, an unroutable one dropped (there
                // is no publisher left to return it to).
                None => {
                    let (msg, headers) = crate::queue::delayed_release(&p.letter.msg);
                    {
                        let mut keys: smallvec::SmallVec<[&str; 1]> =
                            smallvec::smallvec![msg.routing_key.as_str()];
                        crate::channel::sender_routes::extra_keys(Some(&headers), &mut keys);
                        self.link.table().route_keys(
                            &from.vhost,
                            &from.name,
                            &keys,
                            Some(&headers),
                            &msg.props,
                            &mut dests,
                        );
                    }
                    msg
                }
            };
            self.hand_over(from.id, p.letter.stored, &mut dests, &msg);
        }
        self.dead.borrow_mut().spare = pending;
    }

    /// Send `msg` to each destination's home shard (one outbox message per
    /// shard); a stored source copy (`stored`, of queue `source`) is held
    /// until every one of them confirms, or acked now if there is none.
    fn hand_over(
        &self,
        source: QueueId,
        stored: Option<Recovered>,
        dests: &mut [(QueueId, ShardId)],
        msg: &MsgRef,
    ) {
        dests.sort_unstable_by_key(|d| d.1);
        // A paged copy is transient (gone at the next start anyway): it is
        // released now and the letter handed over at most once, as a
        // transient message kept in memory would be.
        let stored = match stored {
            Some(r) if r.pos.seg.is_paged() => {
                self.store.borrow_mut().ack(source, r.pos);
                None
            }
            s => s,
        };
        let confirm = match stored {
            None => None,
            Some(r) => {
                let mut shards = dests.iter().map(|d| d.1).collect::<Vec<_>>();
                shards.dedup();
                if shards.is_empty() {
                    self.store.borrow_mut().ack(source, r.pos);
                    return;
                }
                let mut held = self.held.borrow_mut();
                held.next += 1;
                let id = held.next;
                held.letters.insert(
                    id,
                    HeldLetter {
                        source,
                        stored: r,
                        outstanding: shards.len(),
                        refused: false,
                    },
                );
                Some(ConfirmRef::dead_letter(self.link.id, id))
            }
        };
        let mut i = 0;
        while i < dests.len() {
            let shard = dests[i].1;
            let mut queues = QueueList::new();
            while i < dests.len() && dests[i].1 == shard {
                queues.push(dests[i].0);
                i += 1;
            }
            self.link.outbox.push(
                shard,
                ShardMsg::Publish {
                    queues,
                    msg: msg.clone(),
                    confirm,
                },
            );
        }
    }

    /// A target shard took the held dead letter `id` (`ok`), or refused
    /// it. Once every target has answered, the source's stored copy is
    /// acked; if one refused, it is parked instead: it stays live in the
    /// journal (compactions keep it, [`QueueHome::held_dead_letters`]) and
    /// returns to its queue at the next start (never lost, as RabbitMQ's
    /// at-least-once dead-lettering), or goes when its queue is deleted.
    pub fn dead_letter_settled(&self, id: u64, ok: bool) {
        let mut held = self.held.borrow_mut();
        let Some(h) = held.letters.get_mut(&id) else {
            return;
        };
        if h.outstanding == 0 {
            return; // parked
        }
        h.outstanding -= 1;
        h.refused |= !ok;
        if h.outstanding > 0 {
            return;
        }
        if h.refused {
            tracing::warn!(queue = ?h.source, "a dead letter was refused by its target; it stays in its queue's journal until the next start");
            return;
        }
        if let Some(h) = held.letters.remove(&id) {
            drop(held);
            self.store.borrow_mut().ack(h.source, h.stored.pos);
        }
    }

    /// Queue `q` was deleted (its journal entries with it): release the
    /// stored copies of its held dead letters now; confirms that arrive
    /// later find nothing, so each copy is released once.
    pub(super) fn release_held(&self, st: &mut Store, q: QueueId) {
        self.held.borrow_mut().letters.retain(|_, h| {
            if h.source == q {
                st.ack(q, h.stored.pos);
            }
            h.source != q
        });
    }

    /// The stored copies of queue `q`'s dead letters still held (they are
    /// live in the journal, so a compaction keeps them).
    pub fn held_dead_letters(&self, q: QueueId) -> Vec<Recovered> {
        self.held
            .borrow()
            .letters
            .values()
            .filter(|h| h.source == q)
            .map(|h| h.stored)
            .collect()
    }
}
