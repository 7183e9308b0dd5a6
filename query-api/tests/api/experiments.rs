//! Experiments end to end: sticky assignment, exposures, conversions attributed by
//! window and directly, and results that match a hand count exactly.

use serde_json::{json, Value};

use crate::support::*;

async fn get_json(s: &Stack, path: &str, token: &str) -> Value {
    let at = s.head().await;
    s.read(path, token, &at).await
}

async fn redeem(s: &Stack, token: &str, body: Value) -> String {
    let res = s.cmd.post("/v1/redemptions", Some(token), body).await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned()
}

async fn click(s: &Stack, token: &str, product: &str, recommendation: Option<&str>) {
    let body = json!({ "product_id": product, "kind": "click", "recommendation_id": recommendation });
    assert_eq!(s.cmd.post("/v1/interactions", Some(token), body).await.status(), 202);
}

#[tokio::test]
async fn results_match_a_hand_count_of_a_scripted_workload() {
    let s = stack().await;
    let cat = s.cmd.create("/v1/categories", json!({ "name": "Tea", "description": "" })).await;
    let product = |name: &str| json!({ "name": name, "description": "Loose leaf", "category_id": cat, "point_cost": 10, "initial_stock": 100 });
    let (a, b) = (
        s.cmd.create("/v1/products", product("Assam")).await,
        s.cmd.create("/v1/products", product("Bancha")).await,
    );
    // Someone redeemed A before, so `popular` shows A (and only A).
    let seed = s.cmd.customer_with_points(100).await;
    redeem(&s, &seed.token, json!({ "product_id": a, "quantity": 1 })).await;
    let experiment = s
        .cmd
        .create(
            "/v1/experiments",
            json!({ "key": "recommendations", "variants": [{ "name": "rules", "weight": 1 }, { "name": "popular", "weight": 1 }],
                    "attribution_hours": 1 }),
        )
        .await;

    // Customers until each variant has enough; each asks for its assignment twice.
    let (mut rules, mut popular) = (Vec::new(), Vec::new());
    while rules.len() < 4 || popular.len() < 3 {
        assert!(rules.len() + popular.len() < 60, "the split never filled both variants");
        let c = s.cmd.customer_with_points(100).await;
        let path = format!("/v1/experiments/{experiment}/assignment");
        let first = get_json(&s, &path, &c.token).await;
        assert_eq!(get_json(&s, &path, &c.token).await["variant"], first["variant"], "sticky");
        match first["variant"].as_str() {
            Some("rules") => rules.push(c),
            Some("popular") => popular.push(c),
            other => panic!("unexpected variant {other:?}"),
        }
    }
    // Every one of them is shown one recommendation.
    let mut shown = Vec::new();
    for c in rules.iter().chain(popular.iter()) {
        let reco = s.recommend(&c.token, 5).await;
        assert_eq!(reco["experiment"]["id"], experiment.as_str(), "{reco}");
        shown.push(reco);
    }
    let (rules_shown, popular_shown) = shown.split_at(rules.len());
    assert!(rules_shown
        .iter()
        .all(|r| r["variant"] == "rules" && r["products"].as_array().map(Vec::len) == Some(2)));
    assert!(popular_shown.iter().all(|r| r["variant"] == "popular" && r["products"][0]["id"] == a.as_str()));
    assert!(
        popular_shown.iter().all(|r| r["products"].as_array().map(Vec::len) == Some(1)),
        "{popular_shown:?}"
    );
    let rec = |r: &Value| r["recommendation_id"].as_str().expect("id").to_owned();

    // rules: r0 redeems A (shown: converts); r1 redeems B twice (2 conversions, 1 user);
    // r2 redeems A and cancels (does not count); r3's exposure is moved 2 hours back,
    // past the 1-hour window, then r3 redeems A (does not count). One click, direct.
    redeem(&s, &rules[0].token, json!({ "product_id": a, "quantity": 1 })).await;
    redeem(&s, &rules[1].token, json!({ "product_id": b, "quantity": 1 })).await;
    redeem(&s, &rules[1].token, json!({ "product_id": b, "quantity": 1 })).await;
    let cancelled = redeem(&s, &rules[2].token, json!({ "product_id": a, "quantity": 1 })).await;
    let res =
        s.cmd.post(&format!("/v1/redemptions/{cancelled}/cancel"), Some(&rules[2].token), json!({})).await;
    assert_eq!(res.status(), 200);
    let db = s.cmd.db.client().await.expect("db");
    db.execute(
        "UPDATE behaviour.exposures SET at = at - interval '2 hours' WHERE id = $1::text::uuid",
        &[&rec(&rules_shown[3])],
    )
    .await
    .expect("age the exposure");
    redeem(&s, &rules[3].token, json!({ "product_id": a, "quantity": 1 })).await;
    click(&s, &rules[0].token, &a, Some(&rec(&rules_shown[0]))).await;
    click(&s, &rules[0].token, &a, None).await;

    // popular: p0 redeems B, never shown to it, but names the recommendation (direct:
    // counts); p1 redeems B without naming it (not shown: does not count). Two clicks.
    let direct = rec(&popular_shown[0]);
    redeem(&s, &popular[0].token, json!({ "product_id": b, "quantity": 1, "recommendation_id": direct }))
        .await;
    redeem(&s, &popular[1].token, json!({ "product_id": b, "quantity": 1 })).await;
    click(&s, &popular[0].token, &a, Some(&direct)).await;
    click(&s, &popular[1].token, &a, Some(&rec(&popular_shown[1]))).await;

    let results = get_json(&s, &format!("/v1/experiments/{experiment}/results"), &s.cmd.admin).await;
    let (nr, np) = (rules.len() as i64, popular.len() as i64);
    let want_rules = json!({ "name": "rules", "users_assigned": nr, "users_exposed": nr, "exposures": nr, "clicks": 1,
                             "conversions": 3, "converting_users": 2, "conversion_rate": 2.0 / nr as f64, "points_redeemed": 30 });
    let want_popular = json!({ "name": "popular", "users_assigned": np, "users_exposed": np, "exposures": np, "clicks": 2,
                               "conversions": 1, "converting_users": 1, "conversion_rate": 1.0 / np as f64, "points_redeemed": 10 });
    let got = results["variants"].as_array().expect("variants");
    // Rates are floats: compared within 1e-12 (JSON parsing need not round-trip them).
    let rate =
        |v: &mut Value| v.as_object_mut().and_then(|o| o.remove("conversion_rate")).and_then(|r| r.as_f64());
    let (mut rules_got, mut want_rules, mut want_popular) = (got[0].clone(), want_rules, want_popular);
    let mut popular_got = got[1].clone();
    let versus = popular_got.as_object_mut().expect("object").remove("versus_first").expect("a comparison");
    for (got, want) in [(&mut rules_got, &mut want_rules), (&mut popular_got, &mut want_popular)] {
        let (g, w) = (rate(got).expect("a rate"), rate(want).expect("a rate"));
        assert!((g - w).abs() < 1e-12, "conversion_rate {g} instead of {w}: {results}");
        assert_eq!(got, want, "{results}");
    }

    // The comparison, by the formula of design §12 written out again here.
    let (p0, p1) = (2.0 / nr as f64, 1.0 / np as f64);
    let se = (p0 * (1.0 - p0) / nr as f64 + p1 * (1.0 - p1) / np as f64).sqrt();
    assert!((versus["difference"].as_f64().expect("difference") - (p1 - p0)).abs() < 1e-12, "{versus}");
    assert!((versus["ci95"][0].as_f64().expect("low") - (p1 - p0 - 1.959_964 * se)).abs() < 1e-6, "{versus}");
    let p_value = versus["p_value"].as_f64().expect("p");
    assert!(p_value > 0.0 && p_value <= 1.0, "{versus}");

    let metrics = s.get("/metrics", None, &[]).await.text().await.expect("text");
    let line = format!("tally_experiment_conversions{{experiment=\"{experiment}\",variant=\"rules\"}} 3");
    assert!(metrics.contains(&line), "{metrics}");
    assert!(metrics.contains(&format!(
        "tally_experiment_exposures_total{{experiment=\"{experiment}\",variant=\"popular\"}} {np}"
    )));

    // Stopped, the default split takes over again.
    let res = s.cmd.post(&format!("/v1/experiments/{experiment}/stop"), Some(&s.cmd.admin), json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(s.recommend(&rules[0].token, 5).await["experiment"], Value::Null);
}

#[tokio::test]
async fn experiment_reads_refuse_the_wrong_callers_and_unknown_ids() {
    let s = stack().await;
    let c = s.cmd.customer_with_points(10).await;
    let experiment = s
        .cmd
        .create(
            "/v1/experiments",
            json!({ "key": "recommendations", "variants": [{ "name": "rules", "weight": 1 }] }),
        )
        .await;
    let cases = [
        (format!("/v1/experiments/{experiment}/results"), Some(c.token.as_str()), 403),
        (format!("/v1/experiments/{experiment}/results"), None, 401),
        (format!("/v1/experiments/{experiment}/assignment"), Some(s.cmd.admin.as_str()), 403),
        (format!("/v1/experiments/{}/results", uuid::Uuid::new_v4()), Some(s.cmd.admin.as_str()), 404),
        ("/v1/experiments/nope/assignment".to_owned(), Some(c.token.as_str()), 404),
    ];
    let at = s.head().await;
    for (path, token, status) in cases {
        let res = s.get(&path, token, &[("X-Tally-Min-Position", &at)]).await;
        assert_eq!(res.status(), status, "{path}");
    }
}
