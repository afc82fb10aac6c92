//! Warren's per-shard liveness check: every shard answers through its
//! mailbox, so a stalled shard shows as a failed health check.

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
    });
}
