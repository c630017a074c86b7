//! The contract every `SearchIndex` backend meets, as runnable checks: SQLite
//! runs them in unit tests, PostgreSQL in the integration tests.

use time::OffsetDateTime;

use super::{Change, Cursor, Filter, Row, SealMark, SearchIndex};

/// A row for checks: version 1 is `no_answer`, later ones `confirmed`.
pub fn row(id: &str, version: u32, minute: i64, account: &str) -> Row {
    Row {
        record_id: id.into(),
        version,
        sha256: format!("{version:064}"),
        account_id: account.into(),
        confirmation_number: format!("CN-{id}"),
        phone_hmac: format!("p-{account}"),
        kind: "billing".into(),
        outcome: if version > 1 {
            "confirmed"
        } else {
            "no_answer"
        }
        .into(),
        status: "complete".into(),
        agent_id: "agent-7".into(),
        requested_at: OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute),
        hold_n: 0,
        held: false,
        purged: false,
    }
}

async fn ids(ix: &dyn SearchIndex, filter: &Filter) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = ix
            .search(filter, after.as_ref(), 2)
            .await
            .unwrap_or_else(|e| panic!("search: {e}"));
        assert!(page.rows.len() <= 2, "a page holds at most its limit");
        seen.extend(page.rows.iter().map(|r| r.record_id.clone()));
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    seen
}

async fn fresh(ix: &dyn SearchIndex) -> u64 {
    let g = ix
        .start_generation()
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    ix.switch_generation(g, &SealMark::none(), "fp")
        .await
        .unwrap_or_else(|e| panic!("switch: {e}"));
    g
}

async fn apply(ix: &dyn SearchIndex, g: u64, changes: &[Change]) {
    ix.apply(g, changes, None)
        .await
        .unwrap_or_else(|e| panic!("apply: {e}"));
}

/// Runs every check in turn, each on a fresh generation.
pub async fn run_all(ix: &dyn SearchIndex) {
    rows_only_move_forward_whatever_order_updates_arrive_in(ix).await;
    pages_follow_a_stable_order_and_filters_combine(ix).await;
    every_outcome_a_record_can_have_is_found_by_its_own_filter(ix).await;
    a_purged_row_keeps_only_its_id_and_never_comes_back(ix).await;
    a_new_generation_replaces_the_old_at_once(ix).await;
    the_last_seal_moves_only_forward_on_the_current_generation(ix).await;
}

/// Older versions and older hold facts change nothing.
pub async fn rows_only_move_forward_whatever_order_updates_arrive_in(ix: &dyn SearchIndex) {
    let g = fresh(ix).await;
    apply(ix, g, &[Change::Record(Box::new(row("a", 2, 1, "acc")))]).await;
    apply(ix, g, &[Change::Record(Box::new(row("a", 1, 1, "acc")))]).await;
    let page = ix
        .search(&Filter::default(), None, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].version, 2);
    assert_eq!(page.rows[0].outcome, "confirmed");
    let hold = |n, held| Change::Hold {
        record_id: "a".into(),
        n,
        held,
    };
    apply(ix, g, &[hold(2, false), hold(1, true)]).await;
    let held = Filter {
        held: Some(true),
        ..Filter::default()
    };
    assert!(
        ids(ix, &held).await.is_empty(),
        "hold 1 came after release 2"
    );
    apply(ix, g, &[hold(3, true)]).await;
    assert_eq!(ids(ix, &held).await, ["a"]);
    let page = ix
        .search(&held, None, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((page.rows[0].hold_n, page.rows[0].held), (3, true));
}

/// Newest request first, ties by id, pages of the limit, filters combined.
pub async fn pages_follow_a_stable_order_and_filters_combine(ix: &dyn SearchIndex) {
    let g = fresh(ix).await;
    let rows: Vec<Change> = [
        ("a", 1, "x"),
        ("b", 2, "y"),
        ("c", 2, "x"),
        ("d", 3, "x"),
        ("e", 4, "z"),
    ]
    .into_iter()
    .map(|(id, minute, account)| Change::Record(Box::new(row(id, 1, minute, account))))
    .collect();
    apply(ix, g, &rows).await;
    assert_eq!(ids(ix, &Filter::default()).await, ["e", "d", "c", "b", "a"]);
    let x_since_2 = Filter {
        account_id: Some("x".into()),
        from: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(2)),
        to: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(4)),
        ..Filter::default()
    };
    assert_eq!(ids(ix, &x_since_2).await, ["d", "c"]);
    let by_number = Filter {
        confirmation_number: Some("CN-b".into()),
        ..Filter::default()
    };
    assert_eq!(ids(ix, &by_number).await, ["b"]);
    let by_phone = Filter {
        phone_hmac: Some("p-z".into()),
        ..Filter::default()
    };
    assert_eq!(ids(ix, &by_phone).await, ["e"]);
    let none = Filter {
        agent_id: Some("agent-8".into()),
        ..Filter::default()
    };
    assert!(ids(ix, &none).await.is_empty());
}

/// Each outcome a record can have, `locked` and `disputed` included, is kept as
/// written and found by its own filter alone.
pub async fn every_outcome_a_record_can_have_is_found_by_its_own_filter(ix: &dyn SearchIndex) {
    let g = fresh(ix).await;
    let outcomes: Vec<&str> = crate::confirmations::Outcome::ALL
        .into_iter()
        .filter(|o| o.has_record())
        .map(|o| o.as_str())
        .collect();
    let rows: Vec<Change> = outcomes
        .iter()
        .zip(1..)
        .map(|(outcome, minute)| {
            let mut r = row(outcome, 1, minute, "x");
            r.outcome = (*outcome).into();
            Change::Record(Box::new(r))
        })
        .collect();
    apply(ix, g, &rows).await;
    for outcome in &outcomes {
        let only = Filter {
            outcome: Some((*outcome).into()),
            ..Filter::default()
        };
        assert_eq!(ids(ix, &only).await, [*outcome], "outcome={outcome}");
    }
}

/// A tombstone clears the row down to its id; a later version does not revive it.
pub async fn a_purged_row_keeps_only_its_id_and_never_comes_back(ix: &dyn SearchIndex) {
    let g = fresh(ix).await;
    apply(
        ix,
        g,
        &[
            Change::Record(Box::new(row("a", 1, 1, "x"))),
            Change::Record(Box::new(row("b", 1, 2, "x"))),
        ],
    )
    .await;
    apply(
        ix,
        g,
        &[Change::Purged {
            record_id: "a".into(),
        }],
    )
    .await;
    apply(ix, g, &[Change::Record(Box::new(row("a", 5, 1, "x")))]).await;
    let page = ix
        .search(&Filter::default(), None, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = page
        .rows
        .iter()
        .find(|r| r.record_id == "a")
        .unwrap_or_else(|| panic!("purged row kept"));
    assert!(a.purged);
    assert_eq!(
        (a.version, a.account_id.as_str(), a.phone_hmac.as_str()),
        (0, "", "")
    );
    let x = Filter {
        account_id: Some("x".into()),
        ..Filter::default()
    };
    assert_eq!(ids(ix, &x).await, ["b"]);
}

/// Rows written to a new generation are invisible until the switch, then alone.
pub async fn a_new_generation_replaces_the_old_at_once(ix: &dyn SearchIndex) {
    let old = fresh(ix).await;
    apply(ix, old, &[Change::Record(Box::new(row("old", 1, 1, "x")))]).await;
    let new = ix
        .start_generation()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(new > old);
    apply(ix, new, &[Change::Record(Box::new(row("new", 1, 2, "x")))]).await;
    assert_eq!(ids(ix, &Filter::default()).await, ["old"]);
    let mark = SealMark {
        seal: 9,
        sha256: "9f".into(),
    };
    ix.switch_generation(new, &mark, "fp2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(ix, &Filter::default()).await, ["new"]);
    let state = ix.state().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.generation, new);
    assert_eq!(state.last_seal, mark);
    assert_eq!(state.phone_fingerprint.as_deref(), Some("fp2"));
}

/// A seal mark moves forward only, and only for the current generation.
pub async fn the_last_seal_moves_only_forward_on_the_current_generation(ix: &dyn SearchIndex) {
    let g = fresh(ix).await;
    let mark = |n: u64| SealMark {
        seal: n,
        sha256: format!("{n:02x}"),
    };
    ix.apply(g, &[], Some(&mark(5)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ix.apply(g, &[], Some(&mark(4)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ix.apply(g + 1, &[], Some(&mark(8)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let state = ix.state().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.last_seal, mark(5));
}
