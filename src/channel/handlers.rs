//! AMQP method handlers for channels 1..=channel-max, one per method.
//!
//! Each returns `AmqpResult<()>`; the connection turns an error into
//! channel.close or connection.close. Handlers that need another shard
//! (declarations, consume, get) await a mailbox request with no borrow held.

use super::publish::{publish_complete, route_and_send, Header, PendingPublish, Progress};
use super::table::ConnTable;
use super::{settle_grouped, Channel, ChannelConsumer, Conn, TxOp, Unacked};
use super::{ConsumerRoute, Cx};
use crate::bus::{Request, Response, ShardMsg};
use crate::defs::users::Access;
use crate::error::{AmqpError, AmqpResult};
use crate::ids::{ConsumerId, QueueId, ShardId};
use crate::meta::authority::{locked, no_queue};
use crate::meta::{MetaOp, MetaReply};
use crate::queue::{ConsumerSpec, Settle};
use amq_protocol::protocol::{basic, channel, confirm, exchange, queue, tx, AMQPClass};
use bytes::Bytes;
use std::rc::Rc;

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

#[allow(clippy::too_many_arguments)]
pub fn content_header(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    class_id: u16,
    body_size: u64,
    props_raw: Bytes,
    view: crate::codec::fast::PropsView,
    headers: Option<amq_protocol::types::FieldTable>,
) -> AmqpResult<()> {
    let max = cx.link.config.max_message_size;
    let mut st = conn.state.borrow_mut();
    let vhost = st.vhost.clone();
    let user_mismatch = view
        .user_id
        .as_ref()
        .filter(|uid| **uid != st.user)
        .map(|uid| (uid.clone(), st.user.clone()));
    let Some(c) = st.channels.get_mut(&ch) else {
        return Err(AmqpError::channel_error("expected 'channel.open'"));
    };
    if c.closing {
        return Ok(());
    }
    let Some(p) = c.publish.as_mut() else {
        return Err(AmqpError::unexpected_frame(
            "expected method frame, got non method frame instead",
        ));
    };
    if class_id != 60 || p.header.is_some() {
        return Err(AmqpError::unexpected_frame(
            "expected content body, got content header",
        ));
    }
    if let Some((uid, user)) = user_mismatch {
        return Err(AmqpError::precondition_failed(format!(
            "user_id property set to '{uid}' but authenticated user was '{user}'"
        )));
    }
    let header = Header {
        body_size,
        props_raw,
        delivery_mode: view.delivery_mode,
        headers,
    };
    let progress = p.on_header(header, max)?;
    finish(cx, conn, &vhost, c, progress);
    Ok(())
}

/// Checks every method on a channel needs first. Ok(false): the channel is
/// closing and the frame is dropped, as the spec asks.
pub fn ready_for_method(conn: &Conn, ch: u16) -> AmqpResult<bool> {
    let st = conn.state.borrow();
    let Some(c) = st.channels.get(&ch) else {
        return Err(AmqpError::channel_error("expected 'channel.open'"));
    };
    if c.closing {
        return Ok(false);
    }
    match c.publish.as_ref().map(|p| p.header.is_some()) {
        Some(false) => Err(AmqpError::unexpected_frame(
            "expected content header for class 60, got non content header frame instead",
        )),
        Some(true) => Err(AmqpError::unexpected_frame(
            "expected content body, got non content body frame instead",
        )),
        None => Ok(true),
    }
}

/// basic.publish from the fast path.
pub fn publish_fast(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    p: crate::codec::fast::Publish,
) -> AmqpResult<()> {
    if !ready_for_method(conn, ch)? {
        return Ok(());
    }
    basic_publish(
        conn,
        cx,
        ch,
        basic::Publish {
            exchange: p.exchange,
            routing_key: p.routing_key,
            mandatory: p.mandatory,
            immediate: p.immediate,
        },
    )
}

/// basic.ack / nack / reject from the fast path.
pub fn settle_fast(conn: &Conn, cx: &Cx, ch: u16, s: crate::codec::fast::Settle) -> AmqpResult<()> {
    use crate::codec::fast::Settle as S;
    if !ready_for_method(conn, ch)? {
        return Ok(());
    }
    match s {
        S::Ack { tag, multiple } => basic_settle(conn, cx, ch, tag, multiple, Settle::Ack),
        S::Nack {
            tag,
            multiple,
            requeue,
        } => basic_settle(
            conn,
            cx,
            ch,
            tag,
            multiple,
            if requeue {
                Settle::Requeue
            } else {
                Settle::Discard
            },
        ),
        S::Reject { tag, requeue } => basic_settle(
            conn,
            cx,
            ch,
            tag,
            false,
            if requeue {
                Settle::Requeue
            } else {
                Settle::Discard
            },
        ),
    }
}

pub fn content_body(conn: &Conn, cx: &Cx, ch: u16, body: Bytes) -> AmqpResult<()> {
    let mut st = conn.state.borrow_mut();
    let vhost = st.vhost.clone();
    let Some(c) = st.channels.get_mut(&ch) else {
        return Err(AmqpError::channel_error("expected 'channel.open'"));
    };
    if c.closing {
        return Ok(());
    }
    let Some(p) = c.publish.as_mut() else {
        return Err(AmqpError::unexpected_frame(
            "expected method frame, got non method frame instead",
        ));
    };
    let progress = p.on_body(body)?;
    finish(cx, conn, &vhost, c, progress);
    Ok(())
}

fn finish(cx: &Cx, conn: &Conn, vhost: &str, c: &mut Channel, progress: Progress) {
    if let Progress::Done(msg, mandatory, headers) = progress {
        c.publish = None;
        publish_complete(cx, conn, vhost, c, msg, mandatory, headers);
    }
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
                    let (home, queue, consumer) = h.credit;
                    cx.link.outbox.push(
                        home,
                        ShardMsg::Credit {
                            queue,
                            consumer,
                            n: 1,
                        },
                    );
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

async fn channel_open(conn: &Conn, cx: &Cx, ch: u16, exists: bool) -> AmqpResult<()> {
    if exists {
        return Err(AmqpError::channel_error("second 'channel.open' seen"));
    }
    // Like RabbitMQ, channel_max bounds the number of open channels.
    let (max, open) = {
        let st = conn.state.borrow();
        (st.channel_max, st.channels.len())
    };
    if max > 0 && open >= max as usize {
        return Err(AmqpError::not_allowed(format!(
            "number of channels opened ({open}) has reached the negotiated channel_max ({max})"
        )));
    }
    conn.state
        .borrow_mut()
        .channels
        .insert(ch, Channel::new(ch));
    super::limits::admit_channel(cx, conn, ch).await?;
    let vh = vhost(conn);
    with_channel(conn, ch, |c, _| c.stats.vhost = vh);
    reply(
        conn,
        ch,
        AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
    );
    Ok(())
}

fn channel_close(conn: &Conn, cx: &Cx, ch: u16) -> AmqpResult<()> {
    let removed = conn.state.borrow_mut().channels.remove(&ch);
    if let Some(mut c) = removed {
        conn.release_channel(cx, &mut c);
    }
    reply(
        conn,
        ch,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );
    Ok(())
}

fn channel_flow(conn: &Conn, ch: u16, active: bool) -> AmqpResult<()> {
    with_channel(conn, ch, |c, _| c.flow_active = active);
    if active {
        conn.release_held(ch);
    }
    reply(
        conn,
        ch,
        AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active })),
    );
    Ok(())
}

/// Test-only fault injection, off unless set in the broker's environment
/// at start-up: declaring an exchange named `WARREN_TEST_PANIC_EXCHANGE`
/// panics the connection task, so tests can show what a panic does (the
/// process exits non-zero at once; see `main`); one named
/// `WARREN_TEST_STALL_EXCHANGE` blocks the shard's thread for 8 s, so tests
/// can show that the health checks report a stalled shard.
mod test_hooks {
    use std::sync::OnceLock;

    static PANIC_ON: OnceLock<Option<String>> = OnceLock::new();
    static STALL_ON: OnceLock<Option<String>> = OnceLock::new();

    pub fn maybe_panic(exchange: &str) {
        let on = PANIC_ON.get_or_init(|| std::env::var("WARREN_TEST_PANIC_EXCHANGE").ok());
        if on.as_deref() == Some(exchange) {
            panic!("test hook: exchange.declare of {exchange}");
        }
        let stall = STALL_ON.get_or_init(|| std::env::var("WARREN_TEST_STALL_EXCHANGE").ok());
        if stall.as_deref() == Some(exchange) {
            std::thread::sleep(std::time::Duration::from_secs(8));
        }
    }
}

async fn exchange_declare(conn: &Conn, cx: &Cx, ch: u16, d: exchange::Declare) -> AmqpResult<()> {
    test_hooks::maybe_panic(d.exchange.as_str());
    if !d.passive {
        check(cx, conn, Access::Configure, "exchange", d.exchange.as_str())?;
    }
    let nowait = d.nowait;
    let op = MetaOp::ExchangeDeclare {
        vhost: vhost(conn),
        name: d.exchange.to_string(),
        kind: d.kind.to_string(),
        passive: d.passive,
        durable: d.durable,
        auto_delete: d.auto_delete,
        internal: d.internal,
        args: d.arguments,
    };
    meta(cx, op).await?;
    if !nowait {
        reply(
            conn,
            ch,
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
        );
    }
    Ok(())
}

async fn exchange_delete(conn: &Conn, cx: &Cx, ch: u16, d: exchange::Delete) -> AmqpResult<()> {
    check(cx, conn, Access::Configure, "exchange", d.exchange.as_str())?;
    let op = MetaOp::ExchangeDelete {
        vhost: vhost(conn),
        name: d.exchange.to_string(),
        if_unused: d.if_unused,
    };
    meta(cx, op).await?;
    if !d.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
        );
    }
    Ok(())
}

/// What distinguishes the four bind methods (queue/exchange, bind/unbind).
struct BindArgs {
    dest: String,
    dest_is_queue: bool,
    unbind: bool,
    nowait: bool,
}

/// queue.bind, queue.unbind, exchange.bind, exchange.unbind: write access
/// on the destination, read access on the source, then the authority.
async fn bind(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    source: &str,
    key: &str,
    arguments: amq_protocol::types::FieldTable,
    b: BindArgs,
) -> AmqpResult<()> {
    let kind = if b.dest_is_queue { "queue" } else { "exchange" };
    check(cx, conn, Access::Write, kind, &b.dest)?;
    check(cx, conn, Access::Read, "exchange", source)?;
    let op = bind_op(
        conn,
        source,
        &b.dest,
        b.dest_is_queue,
        key,
        arguments,
        b.unbind,
    );
    meta(cx, op).await?;
    if b.nowait {
        return Ok(());
    }
    let ok = match (b.dest_is_queue, b.unbind) {
        (true, false) => AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
        (true, true) => AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
        (false, false) => AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
        (false, true) => AMQPClass::Exchange(exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {})),
    };
    reply(conn, ch, ok);
    Ok(())
}

fn bind_op(
    conn: &Conn,
    source: &str,
    dest: &str,
    dest_is_queue: bool,
    key: &str,
    args: amq_protocol::types::FieldTable,
    unbind: bool,
) -> MetaOp {
    MetaOp::Bind {
        vhost: vhost(conn),
        source: source.to_string(),
        dest: dest.to_string(),
        dest_is_queue,
        key: key.to_string(),
        args,
        owner: conn.id,
        unbind,
    }
}

async fn queue_declare(conn: &Conn, cx: &Cx, ch: u16, d: queue::Declare) -> AmqpResult<()> {
    // A server-named queue gets its name here, so the configure permission
    // is checked against the name it will really have (as RabbitMQ does).
    let server_named = d.queue.as_str().is_empty() && !d.passive;
    let name = if server_named {
        format!("amq.gen-{}", crate::meta::authority::random_suffix())
    } else {
        d.queue.to_string()
    };
    if !d.passive {
        check(cx, conn, Access::Configure, "queue", &name)?;
    }
    let nowait = d.nowait;
    let op = MetaOp::QueueDeclare {
        vhost: vhost(conn),
        name,
        server_named,
        passive: d.passive,
        durable: d.durable,
        exclusive: d.exclusive,
        auto_delete: d.auto_delete,
        args: d.arguments,
        owner: conn.id,
    };
    let MetaReply::QueueDeclared {
        name,
        messages,
        consumers,
    } = meta(cx, op).await?
    else {
        return Err(AmqpError::internal_error("bad reply to queue.declare"));
    };
    with_channel(conn, ch, |c, _| c.last_queue = Some(name.clone()));
    if !nowait {
        reply(
            conn,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: name.into(),
                message_count: messages,
                consumer_count: consumers,
            })),
        );
    }
    Ok(())
}

async fn queue_purge(conn: &Conn, cx: &Cx, ch: u16, p: queue::Purge) -> AmqpResult<()> {
    let name = queue_name(conn, ch, p.queue.as_str())?;
    check(cx, conn, Access::Read, "queue", &name)?;
    let vh = vhost(conn);
    let (id, home) = lookup_queue(cx, conn, &vh, &name)?;
    let n = match cx.call(home, Request::Purge(id)).await {
        Response::Purged(n) => n,
        _ => return Err(no_queue(&name, &vh)),
    };
    if !p.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                message_count: n,
            })),
        );
    }
    Ok(())
}

async fn queue_delete(conn: &Conn, cx: &Cx, ch: u16, d: queue::Delete) -> AmqpResult<()> {
    let name = queue_name(conn, ch, d.queue.as_str())?;
    check(cx, conn, Access::Configure, "queue", &name)?;
    let op = MetaOp::QueueDelete {
        vhost: vhost(conn),
        name,
        if_unused: d.if_unused,
        if_empty: d.if_empty,
        owner: Some(conn.id),
    };
    let messages = match meta(cx, op).await? {
        MetaReply::Deleted { messages } => messages,
        _ => 0,
    };
    if !d.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count: messages,
            })),
        );
    }
    Ok(())
}

fn basic_publish(conn: &Conn, cx: &Cx, ch: u16, p: basic::Publish) -> AmqpResult<()> {
    if p.immediate {
        return Err(AmqpError::not_implemented("immediate=true"));
    }
    if !conn.published.replace(true) && cx.conns.blocked.get() {
        ConnTable::notify_blocked(conn, true);
    }
    // Permission check, cached per channel for the last exchange (the
    // common case publishes to one exchange) until permissions change.
    let epoch = cx.table().permission_epoch;
    let cached = with_channel(conn, ch, |c, _| {
        c.publish_allowed.as_ref().is_some_and(|(e, x)| {
            *e == epoch && crate::message::same(x.as_str(), p.exchange.as_str())
        })
    })
    .unwrap_or(false);
    if !cached {
        check(cx, conn, Access::Write, "exchange", p.exchange.as_str())?;
        with_channel(conn, ch, |c, _| {
            c.publish_allowed = Some((epoch, p.exchange.clone()))
        });
    }
    let vh = vhost(conn);
    if !p.exchange.as_str().is_empty() {
        let t = cx.table();
        match t.exchange(&vh, p.exchange.as_str()) {
            None => {
                return Err(crate::meta::authority::no_exchange(
                    p.exchange.as_str(),
                    &vh,
                ))
            }
            Some(x) if x.def.internal => {
                return Err(AmqpError::access_refused(format!(
                    "cannot publish to internal exchange '{}' in vhost '{vh}'",
                    p.exchange
                )))
            }
            _ => {}
        }
    }
    with_channel(conn, ch, |c, _| c.publish = Some(PendingPublish::new(p)));
    Ok(())
}

async fn basic_consume(conn: &Rc<Conn>, cx: &Cx, ch: u16, c: basic::Consume) -> AmqpResult<()> {
    let name = queue_name(conn, ch, c.queue.as_str())?;
    check(cx, conn, Access::Read, "queue", &name)?;
    let vh = vhost(conn);
    let (qid, home) = lookup_queue(cx, conn, &vh, &name)?;
    let tag = if c.consumer_tag.as_str().is_empty() {
        format!("amq.ctag-{}", crate::meta::authority::random_suffix())
    } else {
        c.consumer_tag.to_string()
    };
    let prefetch = {
        let st = conn.state.borrow();
        let Some(chan) = st.channels.get(&ch) else {
            return Ok(());
        };
        if chan.consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        chan.prefetch
    };
    let id: ConsumerId = cx.conns.new_consumer_id();
    // Register the route first so deliveries that race the reply land.
    cx.conns.consumers.borrow_mut().insert(
        id,
        ConsumerRoute {
            conn: conn.id,
            channel: ch,
            tag: Rc::from(tag.as_str()),
            no_ack: c.no_ack,
        },
    );
    with_channel(conn, ch, |chan, _| {
        chan.consumers.insert(
            tag.clone(),
            ChannelConsumer {
                id,
                queue: qid,
                home,
                no_ack: c.no_ack,
                exclusive: c.exclusive,
            },
        )
    });
    let spec = ConsumerSpec {
        id,
        conn: conn.id,
        channel: ch,
        tag: tag.clone(),
        no_ack: c.no_ack,
        exclusive: c.exclusive,
        prefetch,
    };
    // consume-ok must precede the first delivery: hold deliveries by
    // writing the reply before the queue can dispatch (the queue only
    // dispatches once it has processed this request, after which its
    // deliveries queue up behind our reply in the write buffer only if we
    // write the reply first). So pause flow for this channel until then.
    with_channel(conn, ch, |chan, _| chan.flow_active = false);
    let result = match cx.call(home, Request::Consume(qid, spec)).await {
        Response::Consumed(r) => r,
        _ => Err(no_queue(&name, &vh)),
    };
    let mut resume_flow = false;
    match &result {
        Ok(()) => {
            if !c.nowait {
                reply(
                    conn,
                    ch,
                    AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                        consumer_tag: tag.clone().into(),
                    })),
                );
            }
            resume_flow = true;
        }
        Err(_) => {
            cx.conns.consumers.borrow_mut().remove(&id);
            with_channel(conn, ch, |chan, _| chan.consumers.remove(&tag));
        }
    }
    with_channel(conn, ch, |chan, _| chan.flow_active = true);
    if resume_flow {
        conn.release_held(ch);
    }
    result
}

async fn basic_cancel(conn: &Conn, cx: &Cx, ch: u16, c: basic::Cancel) -> AmqpResult<()> {
    let tag = c.consumer_tag.to_string();
    let found = with_channel(conn, ch, |chan, _| chan.consumers.remove(&tag)).flatten();
    if let Some(cons) = found {
        cx.call(cons.home, Request::Cancel(cons.queue, cons.id))
            .await;
        cx.conns.consumers.borrow_mut().remove(&cons.id);
    }
    if !c.nowait {
        reply(
            conn,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                consumer_tag: tag.into(),
            })),
        );
    }
    Ok(())
}

async fn basic_get(conn: &Conn, cx: &Cx, ch: u16, g: basic::Get) -> AmqpResult<()> {
    let name = queue_name(conn, ch, g.queue.as_str())?;
    check(cx, conn, Access::Read, "queue", &name)?;
    let vh = vhost(conn);
    let (qid, home) = lookup_queue(cx, conn, &vh, &name)?;
    let got = match cx
        .call(
            home,
            Request::Get {
                queue: qid,
                no_ack: g.no_ack,
            },
        )
        .await
    {
        Response::Got(g) => g,
        _ => return Err(no_queue(&name, &vh)),
    };
    let Some(got) = got else {
        reply(
            conn,
            ch,
            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
        );
        return Ok(());
    };
    let tag = with_channel(conn, ch, |c, _| {
        let t = c.next_tag;
        c.next_tag += 1;
        c.stats.deliver += 1;
        if !g.no_ack {
            c.unacked.insert(
                t,
                Unacked {
                    queue: qid,
                    home,
                    seq: got.seq,
                },
            );
        }
        t
    });
    let Some(tag) = tag else {
        // Channel vanished meanwhile: give the message back.
        if !g.no_ack {
            settle_grouped(
                cx,
                [Unacked {
                    queue: qid,
                    home,
                    seq: got.seq,
                }],
                Settle::Requeue,
            );
        }
        return Ok(());
    };
    let mut out = conn.out.borrow_mut();
    crate::codec::write_method(
        &mut out,
        ch,
        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: tag,
            redelivered: got.redelivered,
            exchange: got.msg.exchange.clone(),
            routing_key: got.msg.routing_key.clone(),
            message_count: got.remaining,
        })),
    );
    crate::codec::write_content(
        &mut out,
        ch,
        &got.msg.props,
        &got.msg.body,
        conn.frame_max.get(),
    );
    drop(out);
    conn.out_notify.notify();
    Ok(())
}

fn basic_settle(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    tag: u64,
    multiple: bool,
    how: Settle,
) -> AmqpResult<()> {
    let result = with_channel(conn, ch, |c, _| -> AmqpResult<Vec<(u64, Unacked)>> {
        let taken: Vec<(u64, Unacked)> = if multiple {
            // Deliveries still held back were never seen by the client.
            let held_from = c.held.front().map(|h| h.delivery_tag).unwrap_or(u64::MAX);
            let keys: Vec<u64> = if tag == 0 {
                c.unacked.range(..held_from).map(|(k, _)| *k).collect()
            } else {
                c.unacked
                    .range(..=tag.min(held_from.saturating_sub(1)))
                    .map(|(k, _)| *k)
                    .collect()
            };
            // RabbitMQ: `multiple` up to a tag that is not outstanding
            // (already settled, or never issued) settles nothing: 406.
            if tag != 0 && (keys.is_empty() || !c.unacked.contains_key(&tag)) {
                return Err(AmqpError::precondition_failed(format!(
                    "unknown delivery tag {tag}"
                )));
            }
            keys.into_iter()
                .filter_map(|k| c.unacked.remove(&k).map(|u| (k, u)))
                .collect()
        } else {
            let held = c.held.front().is_some_and(|h| tag >= h.delivery_tag);
            let found = if held { None } else { c.unacked.remove(&tag) };
            match found {
                Some(u) => vec![(tag, u)],
                None => {
                    return Err(AmqpError::precondition_failed(format!(
                        "unknown delivery tag {tag}"
                    )))
                }
            }
        };
        if how == Settle::Ack {
            c.stats.ack += taken.len() as u64;
        }
        if let Some(tx) = &mut c.tx {
            tx.push(TxOp::Settle { tags: taken, how });
            return Ok(Vec::new());
        }
        Ok(taken)
    });
    let taken = result.unwrap_or(Ok(Vec::new()))?;
    settle_grouped(cx, taken.into_iter().map(|(_, u)| u), how);
    conn.release_held(ch);
    conn.resume_paused(cx, ch);
    Ok(())
}

fn tx_method(conn: &Conn, cx: &Cx, ch: u16, m: tx::AMQPMethod) -> AmqpResult<()> {
    match m {
        tx::AMQPMethod::Select(_) => {
            let confirm = with_channel(conn, ch, |c, _| {
                if c.confirm {
                    return true;
                }
                if c.tx.is_none() {
                    c.tx = Some(Vec::new());
                }
                false
            })
            .unwrap_or(false);
            if confirm {
                return Err(AmqpError::precondition_failed(
                    "cannot switch from confirm to tx mode",
                ));
            }
            reply(
                conn,
                ch,
                AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
            );
            Ok(())
        }
        tx::AMQPMethod::Commit(_) => {
            let mut st = conn.state.borrow_mut();
            let vh = st.vhost.clone();
            let Some(c) = st.channels.get_mut(&ch) else {
                return Ok(());
            };
            let Some(ops) = c.tx.replace(Vec::new()) else {
                return Err(AmqpError::precondition_failed(
                    "channel is not transactional",
                ));
            };
            // Publishes are tracked like publisher confirms (internally: a
            // tx channel never sees basic.ack); commit-ok waits until every
            // one is confirmed by its queues, i.e. persistent messages in
            // durable queues are on disk (see `Conn::flush_confirms`).
            for op in ops {
                match op {
                    TxOp::Publish {
                        msg,
                        mandatory,
                        headers,
                    } => route_and_send(cx, conn, &vh, c, msg, mandatory, headers.as_ref(), true),
                    TxOp::Settle { tags, how } => {
                        settle_grouped(cx, tags.into_iter().map(|(_, u)| u), how)
                    }
                }
            }
            let upto = c.next_pub_seq - 1;
            let done =
                c.commit_waiters.is_empty() && c.pending_confirms.range(..=upto).next().is_none();
            if !done {
                c.commit_waiters.push_back(upto);
                return Ok(());
            }
            drop(st);
            reply(
                conn,
                ch,
                AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
            );
            Ok(())
        }
        tx::AMQPMethod::Rollback(_) => {
            let r = with_channel(conn, ch, |c, _| {
                let Some(ops) = c.tx.replace(Vec::new()) else {
                    return false;
                };
                for op in ops {
                    if let TxOp::Settle { tags, .. } = op {
                        // Rolled-back acks leave the messages unacked.
                        c.unacked.extend(tags);
                    }
                }
                true
            });
            if r != Some(true) {
                return Err(AmqpError::precondition_failed(
                    "channel is not transactional",
                ));
            }
            reply(
                conn,
                ch,
                AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
            );
            Ok(())
        }
        _ => Err(AmqpError::command_invalid("unexpected tx method")),
    }
}
