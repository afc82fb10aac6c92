//! The `exchange` class: exchange.declare, exchange.delete, and bindings
//! (exchange.bind / unbind and queue.bind / unbind share [`bind`]).

use super::*;

/// Test-only fault injection, off unless set in the broker's environment
/// at start-up: declaring an exchange named `WARREN_TEST_PANIC_EXCHANGE`
/// panics the connection task, so tests can show what a panic does (the
/// process exits non-zero at once; see `main`); one named
/// `WARREN_TEST_STALL_EXCHANGE` blocks the shard's thread for 8 s, so tests
/// can show that the health checks report a stalled shard.
pub(super) mod test_hooks {
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

pub(super) async fn exchange_declare(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    d: exchange::Declare,
) -> AmqpResult<()> {
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

pub(super) async fn exchange_delete(
    conn: &Conn,
    cx: &Cx,
    ch: u16,
    d: exchange::Delete,
) -> AmqpResult<()> {
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
pub(super) struct BindArgs {
    /// The queue or exchange bound to the source.
    pub dest: String,
    pub dest_is_queue: bool,
    /// queue.unbind / exchange.unbind rather than bind.
    pub unbind: bool,
    pub nowait: bool,
}

/// queue.bind, queue.unbind, exchange.bind, exchange.unbind: write access
/// on the destination, read access on the source, then the authority.
pub(super) async fn bind(
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
    // Binding from a topic exchange also needs the topic read permission
    // on the key (RabbitMQ's `check_read_permitted_on_topic`).
    check_topic(cx, conn, Access::Read, source, key)?;
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

pub(super) fn bind_op(
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
