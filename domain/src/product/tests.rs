use chrono::{Duration, TimeZone};
use uuid::Uuid;

use super::*;
use crate::testing::given;
use crate::CategoryId;

fn pid() -> ProductId {
    ProductId(Uuid::from_u128(1))
}
fn rid(n: u128) -> RedemptionId {
    RedemptionId(Uuid::from_u128(10 + n))
}
fn listed() -> ProductEvent {
    ProductEvent::ProductListed {
        product_id: pid(),
        details: ProductDetails {
            name: "Mug".into(),
            description: "A mug".into(),
            category_id: CategoryId(Uuid::from_u128(2)),
            point_cost: 100,
            image_url: None,
            in_offer_pool: false,
        },
    }
}
fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(100 + n))
}
/// Minutes after the start of the test's hour.
fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).single().expect("date") + Duration::minutes(minutes)
}
fn oid(n: u128) -> OfferId {
    OfferId(Uuid::from_u128(50 + n))
}
/// Offer `n` at 60 points from minute `from` to minute `to`, with `units` and `limit`.
fn terms(n: u128, from: i64, to: i64, units: Option<i64>, limit: Option<i64>) -> OfferTerms {
    OfferTerms {
        offer_id: oid(n),
        point_cost: 60,
        starts_at: t(from),
        ends_at: t(to),
        units,
        per_customer_limit: limit,
        title: None,
    }
}
fn offer_created(terms: OfferTerms) -> ProductEvent {
    ProductEvent::OfferCreated { product_id: pid(), terms, created_at: t(-10) }
}
fn sold(n: u128, q: i64, offer: u128, buyer: u128) -> ProductEvent {
    ProductEvent::StockReserved {
        product_id: pid(),
        redemption_id: rid(n),
        quantity: q,
        offer_id: Some(oid(offer)),
        user_id: Some(user(buyer)),
    }
}
fn order(buyer: u128, quantity: i64) -> Order {
    Order { user_id: user(buyer), quantity, offer_only: true, max_points: None }
}
fn received(q: i64) -> ProductEvent {
    ProductEvent::StockReceived { product_id: pid(), quantity: q, reason: "delivery".into() }
}
fn reserved(n: u128, q: i64) -> ProductEvent {
    ProductEvent::StockReserved {
        product_id: pid(),
        redemption_id: rid(n),
        quantity: q,
        offer_id: None,
        user_id: None,
    }
}

#[test]
fn reserving_more_than_is_available_is_rejected() {
    given::<Product>([listed(), received(3), reserved(1, 2)])
        .when(ProductCommand::Reserve { redemption_id: rid(2), quantity: 2, buyer: user(1), offer_id: None })
        .then_err(ProductError::OutOfStock { requested: 2, available: 1 });
}

#[test]
fn a_delisted_product_cannot_be_reserved() {
    given::<Product>([listed(), received(3), ProductEvent::ProductDelisted { product_id: pid() }])
        .when(ProductCommand::Reserve { redemption_id: rid(1), quantity: 1, buyer: user(1), offer_id: None })
        .then_err(ProductError::Unavailable);
}

#[test]
fn shipping_and_releasing_settle_the_reservation_exactly() {
    given::<Product>([listed(), received(3), reserved(1, 2)])
        .when(ProductCommand::Ship { redemption_id: rid(1) })
        .then([ProductEvent::StockShipped { product_id: pid(), redemption_id: rid(1), quantity: 2 }]);
    given::<Product>([
        listed(),
        received(3),
        reserved(1, 2),
        ProductEvent::StockReleased { product_id: pid(), redemption_id: rid(1), quantity: 2, offer_id: None },
    ])
    .when(ProductCommand::Release { redemption_id: rid(1), now: t(0) })
    .then_err(ProductError::UnknownReservation);
}

#[test]
fn an_adjustment_cannot_take_available_stock_below_zero() {
    given::<Product>([listed(), received(3), reserved(1, 2)])
        .when(ProductCommand::AdjustStock { delta: -2, reason: "broken".into() })
        .then_err(ProductError::OutOfStock { requested: 2, available: 1 });
}

#[test]
fn listing_with_initial_stock_receives_it() {
    let ProductEvent::ProductListed { product_id, details } = listed() else { unreachable!() };
    given::<Product>([]).when(ProductCommand::List { product_id, details, initial_stock: 5 }).then([
        listed(),
        ProductEvent::StockReceived { product_id: pid(), quantity: 5, reason: "initial stock".into() },
    ]);
}

#[test]
fn inside_the_window_an_order_gets_the_offer_price_and_outside_the_list_price() {
    let p = Product::fold(&[listed(), received(10), offer_created(terms(1, 0, 60, None, None))]);
    let offer = Quote { point_cost: 60, points: 120, offer_id: Some(oid(1)) };
    let list = Quote { point_cost: 100, points: 200, offer_id: None };
    assert_eq!(p.quote(&order(1, 2), t(0)), Ok(offer));
    assert_eq!(p.quote(&order(1, 2), t(59)), Ok(offer));
    assert_eq!(p.quote(&order(1, 2), t(-1)), Ok(list));
    assert_eq!(p.quote(&order(1, 2), t(60)), Ok(list), "ends_at is exclusive");
}

#[test]
fn past_the_offers_units_an_order_is_refused_or_pays_the_list_price_whole() {
    let p = Product::fold(&[
        listed(),
        received(10),
        offer_created(terms(1, 0, 60, Some(3), None)),
        sold(1, 2, 1, 1),
    ]);
    assert_eq!(p.quote(&order(2, 2), t(5)), Err(ProductError::OfferSoldOut { units_left: 1 }));
    let accepting_list = Order { offer_only: false, ..order(2, 2) };
    assert_eq!(p.quote(&accepting_list, t(5)), Ok(Quote { point_cost: 100, points: 200, offer_id: None }));
    assert_eq!(p.quote(&order(2, 1), t(5)).map(|q| q.offer_id), Ok(Some(oid(1))));
}

#[test]
fn a_customer_cannot_buy_past_the_per_customer_limit() {
    let p = Product::fold(&[
        listed(),
        received(10),
        offer_created(terms(1, 0, 60, None, Some(2))),
        sold(1, 2, 1, 1),
    ]);
    assert_eq!(p.quote(&order(1, 1), t(5)), Err(ProductError::OfferLimitReached { limit: 2, bought: 2 }));
    assert_eq!(p.quote(&order(2, 2), t(5)).map(|q| q.points), Ok(120), "another customer still can");
    given::<Product>([
        listed(),
        received(10),
        offer_created(terms(1, 0, 60, None, Some(2))),
        sold(1, 2, 1, 1),
    ])
    .when(ProductCommand::Reserve {
        redemption_id: rid(2),
        quantity: 1,
        buyer: user(1),
        offer_id: Some(oid(1)),
    })
    .then_err(ProductError::OfferLimitReached { limit: 2, bought: 2 });
}

#[test]
fn max_points_refuses_a_price_above_it_and_names_the_current_price() {
    let p = Product::fold(&[listed(), received(10), offer_created(terms(1, 0, 60, None, None))]);
    let capped = Order { max_points: Some(60), ..order(1, 1) };
    assert!(p.quote(&capped, t(30)).is_ok());
    let list = Quote { point_cost: 100, points: 100, offer_id: None };
    assert_eq!(p.quote(&capped, t(60)), Err(ProductError::PriceChanged(list)));
}

#[test]
fn a_cancelled_redemption_gives_its_units_back_to_the_offer_only_while_it_is_on() {
    let history =
        [listed(), received(10), offer_created(terms(1, 0, 60, Some(2), Some(1))), sold(1, 1, 1, 1)];
    let released = |offer_id| ProductEvent::StockReleased {
        product_id: pid(),
        redemption_id: rid(1),
        quantity: 1,
        offer_id,
    };
    given::<Product>(history.clone())
        .when(ProductCommand::Release { redemption_id: rid(1), now: t(30) })
        .then([released(Some(oid(1)))]);
    given::<Product>(history.clone())
        .when(ProductCommand::Release { redemption_id: rid(1), now: t(60) })
        .then([released(None)]);
    let mut p = Product::fold(&history);
    p.apply(&released(Some(oid(1))));
    let offer = p.offer(oid(1)).expect("offer");
    assert_eq!((offer.sold, offer.bought_by(user(1))), (0, 0));
}

#[test]
fn offers_on_one_product_may_not_overlap_unless_the_earlier_one_is_over() {
    let history = [listed(), received(10), offer_created(terms(1, 0, 60, None, None))];
    given::<Product>(history.clone())
        .when(ProductCommand::CreateOffer { terms: terms(2, 59, 90, None, None), now: t(-5) })
        .then_err(ProductError::OfferOverlaps);
    given::<Product>(history.clone())
        .when(ProductCommand::CreateOffer { terms: terms(2, 60, 90, None, None), now: t(-5) })
        .then([ProductEvent::OfferCreated {
            product_id: pid(),
            terms: terms(2, 60, 90, None, None),
            created_at: t(-5),
        }]);
    let mut cancelled = history.to_vec();
    cancelled.push(ProductEvent::OfferCancelled {
        product_id: pid(),
        offer_id: oid(1),
        reason: None,
        at: t(10),
    });
    given::<Product>(cancelled)
        .when(ProductCommand::CreateOffer { terms: terms(2, 20, 90, None, None), now: t(15) })
        .then([ProductEvent::OfferCreated {
            product_id: pid(),
            terms: terms(2, 20, 90, None, None),
            created_at: t(15),
        }]);
}

#[test]
fn an_offer_must_lower_the_price_end_in_the_future_last_at_most_31_days_and_fit_the_stock() {
    let product = || given::<Product>([listed(), received(10)]);
    let invalid = |why| ProductError::Invalid(why);
    let expensive = OfferTerms { point_cost: 100, ..terms(1, 0, 60, None, None) };
    product()
        .when(ProductCommand::CreateOffer { terms: expensive, now: t(0) })
        .then_err(invalid("an offer's point_cost must be below the product's point_cost"));
    product()
        .when(ProductCommand::CreateOffer { terms: terms(1, -60, -1, None, None), now: t(0) })
        .then_err(invalid("ends_at must be in the future"));
    product()
        .when(ProductCommand::CreateOffer { terms: terms(1, 10, 5, None, None), now: t(0) })
        .then_err(invalid("starts_at must be before ends_at"));
    product()
        .when(ProductCommand::CreateOffer { terms: terms(1, 0, 31 * 24 * 60 + 1, None, None), now: t(0) })
        .then_err(invalid("an offer's window is at most 31 days"));
    product()
        .when(ProductCommand::CreateOffer { terms: terms(1, 0, 60, Some(11), None), now: t(0) })
        .then_err(invalid("units must be at most the product's available stock"));
    given::<Product>([listed(), received(10), offer_created(terms(1, 0, 60, None, None))])
        .when(ProductCommand::CancelOffer { offer_id: oid(1), reason: None, now: t(60) })
        .then_err(ProductError::OfferOver);
}
