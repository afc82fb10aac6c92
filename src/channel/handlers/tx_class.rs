//! The `tx` class: tx.select, tx.commit, tx.rollback.

use super::*;

pub(super) fn tx_method(conn: &Conn, cx: &Cx, ch: u16, m: tx::AMQPMethod) -> AmqpResult<()> {
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
