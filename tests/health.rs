//! Warren's per-shard liveness check: every shard answers through its
//! mailbox, so a stalled shard shows as a failed health check, in
//! `/api/health/checks/shards` and in RabbitMQ's `checks/alarms`.

mod common;
mod mgmt;

use common::*;
use mgmt::Api;

#[test]
fn every_shard_answers_the_liveness_check() {
    for_each_shard_count(|shards| {
        let b = Broker::start(shards);
        let a = Api::new(b.mgmt_port).get("/api/health/checks/shards");
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json["status"], "ok");
        assert_eq!(a.json["shards"], shards);
        // Any user who may use the API may ask (as for the other checks).
        let anonymous = Api::anonymous(b.mgmt_port).get("/api/health/checks/shards");
        assert_eq!(anonymous.status, 401);
        let alarms = Api::new(b.mgmt_port).get("/api/health/checks/alarms");
        assert_eq!((alarms.status, &alarms.json["status"]), (200, &"ok".into()));
    });
}

#[test]
fn a_stalled_shard_fails_the_liveness_and_alarms_checks() {
    let b = Broker::start_with_env(2, &[], &[("WARREN_TEST_STALL_EXCHANGE", "stall")]);
    run_async(2, |_| async {
        // Stall shard 1 (the management API is served by shard 0).
        let conn = connect_on_shard(&b, 1).await;
        let ch = open_channel(&conn).await;
        let stalled = tokio::spawn(async move {
            let _ = ch
                .exchange_declare(
                    "stall",
                    lapin::ExchangeKind::Fanout,
                    Default::default(),
                    Default::default(),
                )
                .await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let port = b.mgmt_port;
        // Both checks at once: each waits up to 5 s of the 8 s stall.
        let ask =
            |path: &'static str| tokio::task::spawn_blocking(move || Api::new(port).get(path));
        let (shards, alarms) = (
            ask("/api/health/checks/shards"),
            ask("/api/health/checks/alarms"),
        );
        let (shards, alarms) = (shards.await.unwrap(), alarms.await.unwrap());
        assert_eq!(shards.status, 503, "{}", shards.text);
        assert!(
            shards.json["reason"].as_str().unwrap().contains("[1]"),
            "{}",
            shards.text
        );
        assert_eq!(alarms.status, 503, "{}", alarms.text);
        stalled.await.unwrap();
        // Once the shard is back, so is the check.
        let again =
            tokio::task::spawn_blocking(move || Api::new(port).get("/api/health/checks/shards"))
                .await
                .unwrap();
        assert_eq!(again.status, 200, "{}", again.text);
    });
}
