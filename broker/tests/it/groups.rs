//! Consumer groups: a rebalance with two members, and committed offsets that
//! survive a coordinator move while the old coordinator is fenced.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::ObjectStore;
use riptide_broker::env::Ids;
use riptide_broker::groups::{log_id, Group, JoinRequest, SNAPSHOT_MIN_RECORDS};
use riptide_broker::storage::log::{Cache, LogOptions, PartitionLog};
use riptide_broker::storage::{commit_seq, log_prefix};
use riptide_broker::txn::Marker;
use riptide_wire::{ResponseError, NO_ERROR};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

fn opts(store: Arc<dyn ObjectStore>, node_id: i32) -> LogOptions {
    LogOptions {
        node_id,
        bug: None,
        store,
        ids: Arc::new(Ids::new(node_id as u64)),
        cache: Arc::new(Cache::new(1 << 20)),
        appended: Arc::new(Notify::new()),
        max_commit_bytes: 1 << 20,
        delete_delay: std::time::Duration::from_secs(60),
    }
}

fn join(member: &str) -> JoinRequest {
    JoinRequest {
        member_id: member.into(),
        client_id: "c".into(),
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
        require_known_member_id: false,
    }
}

#[tokio::test(start_paused = true)]
async fn two_members_join_sync_and_get_their_assignments() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let g = Group::open("g", &opts(store, 1)).await.unwrap();
    let (a, b) = tokio::join!(g.join(join("")), g.join(join("")));
    assert_eq!((a.error, b.error), (NO_ERROR, NO_ERROR));
    assert_eq!(a.generation, 1);
    assert_eq!(a.generation, b.generation);
    assert_eq!(a.leader, b.leader);
    let (leader, follower) = if a.member_id == a.leader {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(leader.members.len(), 2, "the leader sees every member");
    assert!(follower.members.is_empty());
    let plan = vec![
        (leader.member_id.clone(), Bytes::from_static(b"p0")),
        (follower.member_id.clone(), Bytes::from_static(b"p1")),
    ];
    let (l, f) = tokio::join!(
        g.sync(&leader.member_id, 1, plan),
        g.sync(&follower.member_id, 1, vec![])
    );
    assert_eq!(l.unwrap().2, Bytes::from_static(b"p0"));
    assert_eq!(f.unwrap().2, Bytes::from_static(b"p1"));
    assert_eq!(g.heartbeat(&follower.member_id, 1).await, NO_ERROR);
    assert_eq!(
        g.heartbeat(&follower.member_id, 0).await,
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        g.heartbeat("stranger", 1).await,
        ResponseError::UnknownMemberId.code()
    );

    // The follower goes silent while the leader heartbeats: after the
    // follower's session timeout the group rebalances.
    let mut seen = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        seen.push(g.heartbeat(&leader.member_id, 1).await);
    }
    assert_eq!(seen[0], NO_ERROR);
    assert_eq!(
        seen.last(),
        Some(&ResponseError::RebalanceInProgress.code()),
        "{seen:?}"
    );
    let again = g.join(join(&leader.member_id)).await;
    assert_eq!((again.error, again.generation), (NO_ERROR, 2));
    assert_eq!(again.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn offsets_survive_a_coordinator_move_and_the_old_one_is_fenced() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let old = Group::open("g", &opts(store.clone(), 1)).await.unwrap();
    old.commit("", -1, vec![("t".into(), 0, 42, None)])
        .await
        .unwrap();

    let new = Group::open("g", &opts(store, 2)).await.unwrap();
    let got = new.committed(Some(vec![("t".into(), 0)])).await;
    assert_eq!(got[0].1, Some((42, None)));

    let stale = old.commit("", -1, vec![("t".into(), 0, 7, None)]).await;
    assert_eq!(stale, Err(ResponseError::NotCoordinator.code()));
    new.commit("", -1, vec![("t".into(), 0, 50, None)])
        .await
        .unwrap();
    let got = new.committed(None).await;
    assert_eq!(got[0].1, Some((50, None)));
}

#[tokio::test(start_paused = true)]
async fn a_reopened_group_never_reuses_a_member_id() {
    // Found by `riptide sim --scenario groups --seed 152`: a coordinator that
    // opened the group again restarted its member counter, so a stale member
    // and a new one shared an id and both owned every partition.
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let o = opts(store, 1);
    let first = Group::open("g", &o).await.unwrap();
    let stale = first.join(join("")).await;
    first.close();
    let second = Group::open("g", &o).await.unwrap();
    let fresh = second.join(join("")).await;
    assert_ne!(stale.member_id, fresh.member_id);
    assert_eq!(
        second.heartbeat(&stale.member_id, fresh.generation).await,
        ResponseError::UnknownMemberId.code()
    );
}

fn join_kip394(member: &str) -> JoinRequest {
    JoinRequest {
        require_known_member_id: true,
        ..join(member)
    }
}

#[tokio::test(start_paused = true)]
async fn a_join_without_a_member_id_is_given_one_and_admitted_when_it_comes_back_with_it() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let g = Group::open("g", &opts(store, 1)).await.unwrap();
    let first = g.join(join_kip394("")).await;
    assert_eq!(first.error, ResponseError::MemberIdRequired.code());
    assert!(!first.member_id.is_empty(), "the answer carries the new id");
    assert_eq!(first.generation, -1);
    assert_eq!(
        g.heartbeat(&first.member_id, 0).await,
        ResponseError::UnknownMemberId.code(),
        "an id handed out is not yet a member"
    );
    let second = g.join(join_kip394(&first.member_id)).await;
    assert_eq!(second.error, NO_ERROR);
    assert_eq!(second.member_id, first.member_id);
    assert_eq!(second.leader, first.member_id);
    assert_eq!(second.generation, 1);
}

#[tokio::test(start_paused = true)]
async fn a_member_id_handed_out_and_never_used_expires_after_the_session_timeout() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let g = Group::open("g", &opts(store, 1)).await.unwrap();
    let first = g.join(join_kip394("")).await;
    assert_eq!(first.error, ResponseError::MemberIdRequired.code());
    tokio::time::sleep(Duration::from_secs(11)).await;
    let late = g.join(join_kip394(&first.member_id)).await;
    assert_eq!(late.error, ResponseError::UnknownMemberId.code());
}

fn marker(epoch: i16, commit: bool, coordinator_epoch: i32) -> Marker {
    Marker {
        producer_id: 7,
        epoch,
        commit,
        coordinator_epoch,
    }
}

/// KIP-890 part 2: a transaction's marker carries the bumped epoch, so offsets of that
/// transaction that arrive after it (a delayed TxnOffsetCommit) are refused, and ignored if
/// they reached the chain anyway; they never ride on the producer's next transaction.
#[tokio::test(start_paused = true)]
async fn offsets_of_a_transaction_that_ended_never_commit_with_the_next_one() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let g = Group::open("g", &opts(store.clone(), 1)).await.unwrap();
    let pid = 7;
    g.txn_commit(pid, 0, vec![("t".into(), 0, 10, None)])
        .await
        .unwrap();
    assert!(g.unstable("t", 0).await);
    g.end_txn(marker(1, true, 1)).await.unwrap();
    assert_eq!(g.committed(None).await[0].1, Some((10, None)));

    // The ended transaction's epoch is fenced; the next transaction's is not.
    let late = g.txn_commit(pid, 0, vec![("t".into(), 0, 99, None)]).await;
    assert_eq!(late, Err(ResponseError::InvalidProducerEpoch.code()));
    assert!(!g.unstable("t", 0).await);
    g.txn_commit(pid, 1, vec![("t".into(), 0, 20, None)])
        .await
        .unwrap();
    g.end_txn(marker(2, true, 1)).await.unwrap();
    assert_eq!(g.committed(None).await[0].1, Some((20, None)));

    // A marker with nothing pending still records its epoch, durably: a new coordinator
    // refuses the old epoch too.
    g.end_txn(marker(3, false, 2)).await.unwrap();
    let moved = Group::open("g", &opts(store, 2)).await.unwrap();
    let late = moved
        .txn_commit(pid, 2, vec![("t".into(), 0, 5, None)])
        .await;
    assert_eq!(late, Err(ResponseError::InvalidProducerEpoch.code()));
    assert_eq!(moved.committed(None).await[0].1, Some((20, None)));

    // A deposed coordinator (epoch 1) delivering a late marker cannot end what is pending now.
    moved
        .txn_commit(pid, 3, vec![("t".into(), 0, 30, None)])
        .await
        .unwrap();
    let late = moved.end_txn(marker(3, true, 1)).await;
    assert_eq!(
        late,
        Err(ResponseError::TransactionCoordinatorFenced.code())
    );
    assert!(moved.unstable("t", 0).await);
    moved.end_txn(marker(4, true, 2)).await.unwrap();
    assert_eq!(moved.committed(None).await[0].1, Some((30, None)));
}

/// The commit objects of group `g`'s chain.
async fn group_commits(store: &Arc<dyn ObjectStore>) -> Vec<u64> {
    let listed: Vec<_> = store
        .list(Some(&log_prefix(&log_id("g"), 0)))
        .try_collect()
        .await
        .unwrap();
    let mut seqs: Vec<u64> = listed
        .iter()
        .filter_map(|m| commit_seq(&m.location))
        .collect();
    seqs.sort_unstable();
    seqs
}

#[tokio::test(start_paused = true)]
async fn a_long_group_chain_is_snapshotted_trimmed_and_opened_from_its_snapshot() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut o = opts(store.clone(), 1);
    o.delete_delay = Duration::ZERO;
    let g = Group::open("g", &o).await.unwrap();
    // A marker fences producer 7's epoch 1 (coordinator epoch 2), then its next transaction
    // leaves offsets pending.
    g.txn_commit(7, 1, vec![("t".into(), 3, 5, None)])
        .await
        .unwrap();
    g.end_txn(marker(2, true, 2)).await.unwrap();
    g.txn_commit(7, 2, vec![("t".into(), 1, 77, Some("txn".into()))])
        .await
        .unwrap();
    let commits = 4 * SNAPSHOT_MIN_RECORDS as i64;
    for i in 0..commits {
        g.commit("", -1, vec![("t".into(), (i % 3) as i32, i, None)])
            .await
            .unwrap();
    }
    let before = g.committed(None).await;
    // The keeper writes a snapshot, moves the log start to it and deletes what is below.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Deleted below the oldest partition checkpoint kept (commit 128 of 262 here).
    let left = group_commits(&store).await;
    assert!(
        left[0] as i64 >= commits / 2,
        "commits below the snapshot were not deleted: {left:?}"
    );

    let moved = Group::open("g", &opts(store.clone(), 2)).await.unwrap();
    assert_eq!(moved.committed(None).await, before);
    assert!(moved.unstable("t", 1).await, "pending offsets were lost");
    // The fences came through: an old epoch's offsets and an old coordinator's marker are
    // refused; the pending transaction commits.
    let late = moved.txn_commit(7, 1, vec![("t".into(), 0, 9, None)]).await;
    assert_eq!(late, Err(ResponseError::InvalidProducerEpoch.code()));
    let stale = moved.end_txn(marker(3, true, 1)).await;
    assert_eq!(
        stale,
        Err(ResponseError::TransactionCoordinatorFenced.code())
    );
    moved.end_txn(marker(3, true, 2)).await.unwrap();
    let got = moved.committed(Some(vec![("t".into(), 1)])).await;
    assert_eq!(got[0].1, Some((77, Some("txn".into()))));
    // The old coordinator is fenced by the new one's claim.
    let stale = g.commit("", -1, vec![("t".into(), 0, 1, None)]).await;
    assert_eq!(stale, Err(ResponseError::NotCoordinator.code()));
    // The log start is at the snapshot: opening replayed the snapshot and what follows it.
    let log = PartitionLog::new(&log_id("g"), 0, &opts(store, 3));
    log.open().await.unwrap();
    assert!(log.log_start() >= commits, "log start {}", log.log_start());
}

#[tokio::test(start_paused = true)]
async fn a_short_group_chain_is_left_alone() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut o = opts(store.clone(), 1);
    o.delete_delay = Duration::ZERO;
    let g = Group::open("g", &o).await.unwrap();
    for i in 0..SNAPSHOT_MIN_RECORDS as i64 - 2 {
        g.commit("", -1, vec![("t".into(), 0, i, None)])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The claim, then one commit per offset commit: no snapshot, nothing trimmed.
    let left = group_commits(&store).await;
    assert_eq!(
        left,
        (0..SNAPSHOT_MIN_RECORDS as u64 - 1).collect::<Vec<_>>()
    );
}
