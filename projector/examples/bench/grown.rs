//! State that must not grow (design §9, §15): a redemption on a product with 10,000
//! placed, unfulfilled redemptions, and by an account with 10,000 purchases, each
//! beside the same on a fresh one, in alternating open-loop rounds.

use std::sync::Arc;

use crate::loadgen::{open_loop, Run};
use crate::report::Row;
use crate::scenarios::{connect, send, Bench};
use crate::setup;

const OPEN: usize = 10_000;
const ROUNDS: u32 = 4;

/// Both rows.
pub async fn rows(bench: &Arc<Bench>) -> anyhow::Result<Vec<Row>> {
    let mut db = connect(&bench.db_url).await?;
    let (busy, fresh) =
        (bench.api.product(1, 1_000_000_000).await?, bench.api.product(1, 1_000_000_000).await?);
    setup::open_reservations(&mut db, &busy, OPEN).await?;
    let buyer = Arc::new(bench.api.customer(1_000_000_000).await?);
    let (a, b) = (buyer.clone(), buyer);
    let product_runs = paired(
        bench,
        move |b2: &Bench, _| b2.redeem_as(&a.token, &busy),
        move |b2: &Bench, _| b2.redeem_as(&b.token, &fresh),
    )
    .await?;

    let (rich, fresh) = (bench.api.customer(1_000_000_000).await?, bench.api.customer(1_000_000_000).await?);
    setup::many_lots(&mut db, &rich.id, OPEN).await?;
    let (rich, fresh) = (Arc::new(rich), Arc::new(fresh));
    let account_runs = paired(
        bench,
        move |b2: &Bench, n| b2.redeem_as(&rich.token, &b2.products[n % b2.products.len()]),
        move |b2: &Bench, n| b2.redeem_as(&fresh.token, &b2.products[n % b2.products.len()]),
    )
    .await?;
    Ok(vec![
        row("Redemption p50 on a product with 10,000 open redemptions", "fresh product p50", product_runs),
        row("Redemption p50 by an account with 10,000 purchases", "fresh account p50", account_runs),
    ])
}

fn row(target: &'static str, baseline: &'static str, [grown, fresh]: [Run; 2]) -> Row {
    let ([f50, f99, _], [g50, g99, g999]) = (fresh.percentiles_ms(), grown.percentiles_ms());
    let met = g50 <= 1.2 * f50 && g99 <= 1.2 * f99 && grown.failures() + fresh.failures() == 0;
    Row::new(target, g50, "ms", "p50 and p99 ≤ 1.2× fresh")
        .latency([g50, g99, g999])
        .against(baseline, f50, "ms")
        .met(met)
        .note(format!("p99 {g99:.1} vs {f99:.1} ms"))
}

/// The two request makers in alternating open-loop rounds at 50/s, after one warm-up
/// request each (the first command on a grown stream folds it and writes a snapshot).
async fn paired<A, B>(bench: &Arc<Bench>, grown: A, fresh: B) -> anyhow::Result<[Run; 2]>
where
    A: Fn(&Bench, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
    B: Fn(&Bench, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    anyhow::ensure!(send(grown(bench, 0)).await == Some(201), "a redemption on the grown stream failed");
    anyhow::ensure!(send(fresh(bench, 0)).await == Some(201), "a redemption on the fresh stream failed");
    connect(&bench.db_url).await?.batch_execute("CHECKPOINT").await?;
    let (grown, fresh) = (Arc::new(grown), Arc::new(fresh));
    let mut runs = [Run::empty(), Run::empty()];
    for _ in 0..ROUNDS {
        let (b, g) = (bench.clone(), grown.clone());
        runs[0].merge(open_loop(50.0, bench.duration / ROUNDS, move |n| send(g(&b, n as usize))).await);
        let (b, f) = (bench.clone(), fresh.clone());
        runs[1].merge(open_loop(50.0, bench.duration / ROUNDS, move |n| send(f(&b, n as usize))).await);
    }
    Ok(runs)
}
