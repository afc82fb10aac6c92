//! AMQP method handlers for channels 1..=channel-max, one per method, in
//! one file per AMQP class (`channel_class`, `exchange_class`,
//! `queue_class`, `basic_class`, `tx_class`) plus `content` for content
//! frames; this file holds the shared helpers and the dispatch
//! ([`handle_method`]).
//!
//! Each returns `AmqpResult<()>`; the connection turns an error into
//! channel.close or connection.close. Handlers that need another shard
//! (declarations, consume, get) await a mailbox request with no borrow held.

use super::publish::{publish_complete, route_and_send, Header, PendingPublish, Progress};
use super::{settle_grouped, Channel, ChannelConsumer, Conn, TxOp, Unacked};
use super::{ConsumerRoute, Cx};
use crate::bus::{Request, Response};
use crate::defs::users::Access;
use crate::error::{AmqpError, AmqpResult};
use crate::ids::{ConsumerId, QueueId, ShardId};
use crate::meta::authority::{locked, no_queue};
use crate::meta::{MetaOp, MetaReply};
use crate::queue::{ConsumerSpec, Settle};
use amq_protocol::protocol::{basic, channel, confirm, exchange, queue, tx, AMQPClass};
use bytes::Bytes;
use std::rc::Rc;

mod basic_class;
mod channel_class;
mod content;
mod exchange_class;
mod queue_class;
mod tx_class;

pub use basic_class::settle_fast;
use basic_class::*;
use channel_class::*;
pub use content::{content_body, content_header, publish_fast, ready_for_method};
use exchange_class::*;
use queue_class::*;
use tx_class::*;

fn reply(conn: &Conn, ch: u16, class: AMQPClass) {
    conn.send_method(ch, class);
}

fn with_channel<R>(conn: &Conn, id: u16, f: impl FnOnce(&mut Channel, &str) -> R) -> Option<R> {
    let mut st = conn.state.borrow_mut();
    let vhost = st.vhost.clone();
    st.channels.get_mut(&id).map(|c| f(c, &vhost))
}

fn vhost(conn: &Conn) -> String {
    conn.state.borrow().vhost.clone()
}

async fn meta(cx: &Cx, op: MetaOp) -> AmqpResult<MetaReply> {
    match cx.call(cx.authority(), Request::Meta(op)).await {
        Response::Meta(r) => r,
        other => Err(AmqpError::internal_error(format!(
            "unexpected reply {other:?}"
        ))),
    }
}

/// Check a permission; 403 with RabbitMQ's text when refused.
fn check(cx: &Cx, conn: &Conn, access: Access, kind: &str, name: &str) -> AmqpResult<()> {
    let st = conn.state.borrow();
    crate::meta::access::resource(&cx.table(), &st.user, &st.vhost, access, kind, name)
}

/// The topic-permission check through the one gate (`meta::access::topic`)
/// for this connection's user and vhost.
fn check_topic(cx: &Cx, conn: &Conn, access: Access, exchange: &str, key: &str) -> AmqpResult<()> {
    let st = conn.state.borrow();
    crate::meta::access::topic(&cx.table(), &st.user, &st.vhost, access, exchange, key)
}

/// Resolve "" to the channel's last declared queue, as RabbitMQ does.
fn queue_name(conn: &Conn, ch: u16, name: &str) -> AmqpResult<String> {
    if !name.is_empty() {
        return Ok(name.to_string());
    }
    with_channel(conn, ch, |c, _| c.last_queue.clone())
        .flatten()
        .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
}

/// Look a queue up in this shard's table and check exclusive ownership.
fn lookup_queue(cx: &Cx, conn: &Conn, vhost: &str, name: &str) -> AmqpResult<(QueueId, ShardId)> {
    let t = cx.table();
    let q = t.queue(vhost, name).ok_or_else(|| no_queue(name, vhost))?;
    if q.exclusive_owner.is_some_and(|o| o != conn.id) {
        return Err(locked(name, vhost));
    }
    Ok((q.id, q.home))
}

/// Dispatch one method on a non-zero channel.
pub async fn handle_method(conn: &Rc<Conn>, cx: &Cx, ch: u16, method: AMQPClass) -> AmqpResult<()> {
    // Channel lifecycle first.
    let (exists, closing, in_content) = {
        let st = conn.state.borrow();
        match st.channels.get(&ch) {
            Some(c) => (
                true,
                c.closing,
                c.publish.as_ref().map(|p| p.header.is_some()),
            ),
            None => (false, false, None),
        }
    };
    // A method where content is expected is a connection error (505).
    if !closing {
        match in_content {
            Some(false) => {
                return Err(AmqpError::unexpected_frame(
                    "expected content header for class 60, got non content header frame instead",
                ))
            }
            Some(true) => {
                return Err(AmqpError::unexpected_frame(
                    "expected content body, got non content body frame instead",
                ))
            }
            None => {}
        }
    }
    if let AMQPClass::Channel(m) = &method {
        match m {
            channel::AMQPMethod::Open(_) => return channel_open(conn, cx, ch, exists).await,
            channel::AMQPMethod::Close(_) if exists => return channel_close(conn, cx, ch),
            channel::AMQPMethod::CloseOk(_) if exists && closing => {
                conn.state.borrow_mut().channels.remove(&ch);
                return Ok(());
            }
            // Crossing closes: we sent channel.close, the client sent its
            // own, we answered close-ok and forgot the channel; its close-ok
            // to our close arrives now and is ignored (as RabbitMQ does).
            channel::AMQPMethod::CloseOk(_) if !exists => return Ok(()),
            _ => {}
        }
    }
    if !exists {
        return Err(AmqpError::channel_error("expected 'channel.open'"));
    }
    if closing {
        return Ok(()); // dropped until close-ok, as the spec asks
    }
    match method {
        AMQPClass::Channel(m) => match m {
            // RabbitMQ does not implement a client pausing deliveries.
            channel::AMQPMethod::Flow(f) if !f.active => {
                Err(AmqpError::not_implemented("active=false"))
            }
            channel::AMQPMethod::Flow(f) => channel_flow(conn, ch, f.active),
            channel::AMQPMethod::FlowOk(_) => Ok(()),
            _ => Err(AmqpError::command_invalid("unexpected channel method")),
        },
        AMQPClass::Exchange(m) => match m {
            exchange::AMQPMethod::Declare(d) => exchange_declare(conn, cx, ch, d).await,
            exchange::AMQPMethod::Delete(d) => exchange_delete(conn, cx, ch, d).await,
            exchange::AMQPMethod::Bind(b) => {
                let dest = b.destination.to_string();
                let args = BindArgs {
                    dest,
                    dest_is_queue: false,
                    unbind: false,
                    nowait: b.nowait,
                };
                bind(
                    conn,
                    cx,
                    ch,
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                    args,
                )
                .await
            }
            exchange::AMQPMethod::Unbind(b) => {
                let dest = b.destination.to_string();
                let args = BindArgs {
                    dest,
                    dest_is_queue: false,
                    unbind: true,
                    nowait: b.nowait,
                };
                bind(
                    conn,
                    cx,
                    ch,
                    b.source.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                    args,
                )
                .await
            }
            _ => Err(AmqpError::command_invalid("unexpected exchange method")),
        },
        AMQPClass::Queue(m) => match m {
            queue::AMQPMethod::Declare(d) => queue_declare(conn, cx, ch, d).await,
            queue::AMQPMethod::Bind(b) => {
                let dest = queue_name(conn, ch, b.queue.as_str())?;
                // RabbitMQ's shortcut: an empty queue name *and* an empty
                // routing key bind the last declared queue with its name
                // as the key.
                let key = if b.queue.as_str().is_empty() && b.routing_key.as_str().is_empty() {
                    dest.clone()
                } else {
                    b.routing_key.to_string()
                };
                let args = BindArgs {
                    dest,
                    dest_is_queue: true,
                    unbind: false,
                    nowait: b.nowait,
                };
                bind(conn, cx, ch, b.exchange.as_str(), &key, b.arguments, args).await
            }
            queue::AMQPMethod::Unbind(b) => {
                let dest = queue_name(conn, ch, b.queue.as_str())?;
                let args = BindArgs {
                    dest,
                    dest_is_queue: true,
                    unbind: true,
                    nowait: false,
                };
                bind(
                    conn,
                    cx,
                    ch,
                    b.exchange.as_str(),
                    b.routing_key.as_str(),
                    b.arguments,
                    args,
                )
                .await
            }
            queue::AMQPMethod::Purge(p) => queue_purge(conn, cx, ch, p).await,
            queue::AMQPMethod::Delete(d) => queue_delete(conn, cx, ch, d).await,
            _ => Err(AmqpError::command_invalid("unexpected queue method")),
        },
        AMQPClass::Basic(m) => match m {
            basic::AMQPMethod::Qos(q) => {
                // (prefetch-size != 0 was refused by the codec: 540.)
                // RabbitMQ: global=false sets the limit for each consumer
                // created afterwards; global=true one limit for the channel.
                with_channel(conn, ch, |c, _| {
                    if q.global {
                        c.global_prefetch = q.prefetch_count;
                    } else {
                        c.prefetch = q.prefetch_count;
                    }
                });
                conn.release_held(ch);
                conn.resume_paused(cx, ch);
                reply(
                    conn,
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
                Ok(())
            }
            basic::AMQPMethod::Publish(p) => basic_publish(conn, cx, ch, p),
            basic::AMQPMethod::Consume(c) => basic_consume(conn, cx, ch, c).await,
            basic::AMQPMethod::Cancel(c) => basic_cancel(conn, cx, ch, c).await,
            basic::AMQPMethod::Get(g) => basic_get(conn, cx, ch, g).await,
            basic::AMQPMethod::Ack(a) => {
                basic_settle(conn, cx, ch, a.delivery_tag, a.multiple, Settle::Ack)
            }
            basic::AMQPMethod::Nack(n) => {
                let how = if n.requeue {
                    Settle::Requeue
                } else {
                    Settle::Discard
                };
                basic_settle(conn, cx, ch, n.delivery_tag, n.multiple, how)
            }
            basic::AMQPMethod::Reject(r) => {
                let how = if r.requeue {
                    Settle::Requeue
                } else {
                    Settle::Discard
                };
                basic_settle(conn, cx, ch, r.delivery_tag, false, how)
            }
            basic::AMQPMethod::Recover(basic::Recover { requeue: false })
            | basic::AMQPMethod::RecoverAsync(basic::RecoverAsync { requeue: false }) => {
                Err(AmqpError::not_implemented("requeue=false"))
            }
            basic::AMQPMethod::Recover(_) | basic::AMQPMethod::RecoverAsync(_) => {
                // RabbitMQ requeues all unacked deliveries of the channel.
                // Those still held back by channel.flow are among them (tagged,
                // never written): they are dropped here, not written later,
                // and their queues get their credit back.
                let (unacked, held) = with_channel(conn, ch, |c, _| {
                    let (held, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut c.held)
                        .into_iter()
                        .partition(|h| h.acked_mode);
                    c.held = keep.into();
                    (std::mem::take(&mut c.unacked), held)
                })
                .unwrap_or_default();
                for h in held {
                    h.return_credit(cx);
                }
                settle_grouped(cx, unacked.into_values(), Settle::Requeue);
                conn.resume_paused(cx, ch);
                if matches!(m, basic::AMQPMethod::Recover(_)) {
                    reply(
                        conn,
                        ch,
                        AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
                    );
                }
                Ok(())
            }
            _ => Err(AmqpError::command_invalid("unexpected basic method")),
        },
        AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
            let in_tx = with_channel(conn, ch, |c, _| {
                if c.tx.is_some() {
                    return true;
                }
                c.confirm = true;
                false
            })
            .unwrap_or(false);
            if in_tx {
                return Err(AmqpError::precondition_failed(
                    "cannot switch from tx to confirm mode",
                ));
            }
            if !s.nowait {
                reply(
                    conn,
                    ch,
                    AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                );
            }
            Ok(())
        }
        AMQPClass::Tx(m) => tx_method(conn, cx, ch, m),
        _ => Err(AmqpError::command_invalid(
            "method not allowed on a channel",
        )),
    }
}
