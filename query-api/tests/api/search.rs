//! Full-text search, its filters, and paging without duplicates or gaps.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::*;

async fn all_pages(s: &Stack, query: &str, at: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/products?{query}&limit=7&cursor={c}"),
            None => format!("/v1/products?{query}&limit=7"),
        };
        let page = s.read(&path, "", at).await;
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|p| p["id"].as_str().expect("id").to_owned()).collect()
}

#[tokio::test]
async fn search_matches_descriptions_honours_filters_and_pages_cleanly() {
    let s = stack().await;
    let mugs = s.cmd.create("/v1/categories", json!({ "name": "Mugs", "description": "" })).await;
    let spoons = s.cmd.create("/v1/categories", json!({ "name": "Spoons", "description": "" })).await;
    let mut ceramic = Vec::new();
    for i in 1..=30 {
        let description = if i == 17 { "A glazed ceramic mug" } else { "A ceramic mug" };
        let id = s
            .cmd
            .create(
                "/v1/products",
                json!({ "name": format!("Mug {i}"), "description": description, "category_id": mugs,
                        "point_cost": i * 10, "initial_stock": 1, "in_offer_pool": i % 3 == 0 }),
            )
            .await;
        ceramic.push((id, i * 10, i % 3 == 0));
    }
    for i in 0..5 {
        s.cmd
            .create(
                "/v1/products",
                json!({ "name": format!("Spoon {i}"), "description": "A wooden spoon", "category_id": spoons, "point_cost": 5 }),
            )
            .await;
    }
    let at = s.head().await;

    // Twice: the second walk is served from the search cache.
    for _ in 0..2 {
        let found = ids(&all_pages(&s, "q=ceramic", &at).await);
        assert_eq!(found.len(), 30, "every match once");
        let unique: HashSet<&String> = found.iter().collect();
        let expected: HashSet<&String> = ceramic.iter().map(|(id, ..)| id).collect();
        assert_eq!(unique, expected, "no duplicates, no gaps");
    }

    let glazed = ids(&all_pages(&s, "q=glazed", &at).await);
    assert_eq!(glazed, vec![ceramic[16].0.clone()], "a word only one description has");
    assert!(all_pages(&s, &format!("q=ceramic&category_id={spoons}"), &at).await.is_empty());
    assert_eq!(all_pages(&s, &format!("category_id={spoons}"), &at).await.len(), 5);

    let cheap: HashSet<String> =
        ids(&all_pages(&s, "q=ceramic&max_points=100", &at).await).into_iter().collect();
    let want: HashSet<String> =
        ceramic.iter().filter(|(_, cost, _)| *cost <= 100).map(|(id, ..)| id.clone()).collect();
    assert_eq!(cheap, want);
    let offers: HashSet<String> = ids(&all_pages(&s, "in_offer_pool=true", &at).await).into_iter().collect();
    let want: HashSet<String> =
        ceramic.iter().filter(|(.., offer)| *offer).map(|(id, ..)| id.clone()).collect();
    assert_eq!(offers, want);

    for bad in ["category_id=mugs", "limit=0", "max_points=lots", "max_points=-1", "cursor=x"] {
        let res = s.get(&format!("/v1/products?{bad}"), None, &[]).await;
        assert_eq!(res.status(), 422, "{bad}");
        assert_eq!(res.json::<Value>().await.expect("json")["code"], "validation_failed", "{bad}");
    }
}
