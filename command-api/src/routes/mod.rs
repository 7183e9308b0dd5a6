//! The command API's HTTP surface, one module per area. The table below is the only
//! place routes are registered, and the OpenAPI document (`/openapi.json`, `/docs`) is
//! generated from the same lines, so the two cannot drift apart.

use infra::http::openapi::{doc, object, Access::*};
use serde_json::Value;

pub mod accounts;
pub mod auth;
pub mod catalog;
pub mod experiments;
pub mod health;
pub mod offers;
pub mod packages;
pub mod profile;
pub mod purchases;
pub mod redemptions;
pub mod webhooks;

/// A command's answer: these fields and the `position` to read your write at.
fn ack(fields: &[(&str, &str)]) -> Value {
    let mut all = fields.to_vec();
    all.push(("position", "string"));
    object(&all)
}

fn session() -> Value {
    object(&[("token", "string"), ("expires_at", "time"), ("refresh_token", "string")])
}

fn id() -> Value {
    ack(&[("id", "uuid")])
}

infra::api_routes! {
    get "/healthz" => health::healthz;
        doc("Liveness", Public).reply(200, object(&[("status", "string")]));
    get "/readyz" => health::readyz;
        doc("Readiness: Postgres reachable and migrated (503 otherwise)", Public).reply(200, object(&[("status", "string")]));
    get "/metrics" => health::metrics;
        doc("Prometheus metrics", Public).text("text/plain; version=0.0.4");
    post "/v1/auth/register" => auth::register;
        doc("Register a customer (signed in at once)", Public).body::<auth::Registration>()
            .reply(201, ack(&[("user_id", "uuid"), ("token", "string"), ("expires_at", "time"), ("refresh_token", "string")]))
            .problems(&["conflict"]);
    post "/v1/auth/login" => auth::login;
        doc("Log in: an access token and a refresh token", Public).body::<auth::Login>().reply(200, session()).problems(&["unauthenticated"]);
    post "/v1/auth/refresh" => auth::refresh;
        doc("Spend a refresh token for the next pair (reuse revokes the chain)", Public).body::<auth::RefreshRequest>().reply(200, session()).problems(&["unauthenticated"]);
    post "/v1/auth/logout" => auth::logout;
        doc("Revoke a refresh token's chain", SignedIn).body::<auth::RefreshRequest>().reply(204, Value::Null);
    patch "/v1/me" => profile::change_profile;
        doc("Change one's name or e-mail", SignedIn).body::<profile::ProfileChanges>().reply(200, ack(&[("user_id", "uuid")])).problems(&["conflict"]);
    delete "/v1/me" => profile::erase_me;
        doc("Erase one's personal data (history is kept under the user id)", SignedIn).reply(204, Value::Null);
    delete "/v1/users/{id}" => profile::erase_user;
        doc("Erase a user's personal data", Admin).reply(204, Value::Null);
    post "/v1/me/password" => profile::change_password;
        doc("Change one's password (revokes every session)", SignedIn).body::<profile::PasswordChange>().reply(200, ack(&[("user_id", "uuid")]));
    post "/v1/users/{id}/roles" => auth::grant_role;
        doc("Grant a role", Admin).body::<auth::RoleGrant>().reply(200, ack(&[("user_id", "uuid"), ("role", "string")]));
    delete "/v1/users/{id}/roles/{role}" => auth::revoke_role;
        doc("Revoke a role (not one's own admin role)", Admin).reply(200, ack(&[("user_id", "uuid"), ("role", "string"), ("revoked", "boolean")])).problems(&["invalid_state"]);
    post "/v1/categories" => catalog::create_category;
        doc("Create a category", Admin).body::<catalog::NewCategory>().reply(201, id());
    patch "/v1/categories/{id}" => catalog::revise_category;
        doc("Rename or describe a category", Admin).body::<catalog::CategoryRevision>().reply(200, id());
    post "/v1/products" => catalog::create_product;
        doc("List a product", Admin).body::<catalog::NewProduct>().reply(201, id()).problems(&["not_found"]);
    patch "/v1/products/{id}" => catalog::revise_product;
        doc("Revise a product", Admin).body::<domain::product::ProductChanges>().reply(200, id()).problems(&["invalid_state"]);
    post "/v1/products/{id}/delist" => catalog::delist_product;
        doc("Delist a product", Admin).reply(200, ack(&[("id", "uuid"), ("active", "boolean"), ("on_hand", "integer"), ("available", "integer")])).problems(&["invalid_state"]);
    post "/v1/products/{id}/relist" => catalog::relist_product;
        doc("Relist a product", Admin).reply(200, ack(&[("id", "uuid"), ("active", "boolean"), ("on_hand", "integer"), ("available", "integer")])).problems(&["invalid_state"]);
    post "/v1/products/{id}/stock" => catalog::change_stock;
        doc("Receive or adjust stock", Admin).body::<catalog::StockChange>().reply(200, ack(&[("id", "uuid"), ("active", "boolean"), ("on_hand", "integer"), ("available", "integer")])).problems(&["invalid_state"]);
    post "/v1/offers" => offers::create;
        doc("Create a golden-hour offer", Admin).body::<offers::NewOffer>().reply(201, ack(&[("id", "uuid"), ("product_id", "uuid")])).problems(&["not_found", "invalid_state"]);
    post "/v1/offers/{id}/cancel" => offers::cancel;
        doc("Cancel an offer", Admin).body::<redemptions::Cancellation>().reply(200, ack(&[("id", "uuid"), ("status", "string"), ("ended_at", "time")])).problems(&["invalid_state"]);
    post "/v1/credit-packages" => packages::create_package;
        doc("Create a credit package", Admin).body::<packages::NewPackage>().reply(201, id());
    patch "/v1/credit-packages/{id}" => packages::revise_package;
        doc("Revise a credit package (pending purchases keep their terms)", Admin).body::<packages::PackageRevision>().reply(200, id()).problems(&["invalid_state"]);
    post "/v1/credit-packages/{id}/retire" => packages::retire_package;
        doc("Retire a credit package", Admin).reply(200, id()).problems(&["invalid_state"]);
    post "/v1/credit-purchases" => purchases::start_purchase;
        doc("Start buying a credit package", Customer).body::<purchases::NewPurchase>().reply(201, ack(&[("id", "uuid"), ("status", "string"), ("package_id", "uuid"), ("price", "string"), ("currency", "string"), ("points", "integer")])).problems(&["not_found", "invalid_state"]);
    post "/v1/payments/webhook" => purchases::payment_webhook;
        doc("The payment provider settles, fails or refunds a purchase", Signature).body::<purchases::PaymentEvent>().reply(200, ack(&[("id", "uuid"), ("status", "string")])).problems(&["not_found", "invalid_state"]);
    post "/v1/redemptions" => redemptions::place;
        doc("Redeem points for a product", Customer).body::<redemptions::NewRedemption>()
            .reply(201, ack(&[("id", "uuid"), ("status", "string"), ("product_id", "uuid"), ("quantity", "integer"), ("points", "integer"), ("point_cost", "integer"), ("offer_id", "uuid?"), ("balance_after", "integer")]))
            .problems(&["not_found", "insufficient_points", "out_of_stock", "product_unavailable", "offer_sold_out", "offer_limit_reached", "price_changed"]);
    post "/v1/redemptions/{id}/cancel" => redemptions::cancel;
        doc("Cancel a placed redemption (refunds its points)", Owner).body::<redemptions::Cancellation>().reply(200, ack(&[("id", "uuid"), ("status", "string")])).problems(&["invalid_state"]);
    post "/v1/redemptions/{id}/fulfil" => redemptions::fulfil;
        doc("Mark a redemption fulfilled (ships its stock)", Admin).reply(200, ack(&[("id", "uuid"), ("status", "string")])).problems(&["invalid_state"]);
    post "/v1/accounts/{user_id}/adjustments" => accounts::adjust;
        doc("Adjust an account's points by hand", Admin).body::<accounts::NewAdjustment>().reply(201, ack(&[("user_id", "uuid"), ("delta", "integer"), ("balance_after", "integer")])).problems(&["insufficient_points"]);
    post "/v1/interactions" => accounts::record_interaction;
        doc("Record a view, click or wishlist", Customer).body::<accounts::NewInteraction>().reply(202, object(&[("accepted", "integer")])).problems(&["not_found"]);
    post "/v1/interactions/batch" => accounts::record_interactions, limit accounts::MAX_BATCH_BODY_BYTES;
        doc("Record up to 500 interactions", Customer).body::<accounts::InteractionBatch>().reply(202, object(&[("accepted", "integer")])).problems(&["not_found"]);
    post "/v1/experiments" => experiments::start;
        doc("Start an experiment (one running per key)", Admin).body::<experiments::NewExperiment>().reply(201, ack(&[("id", "uuid"), ("key", "string")]));
    post "/v1/experiments/{id}/stop" => experiments::stop;
        doc("Stop an experiment", Admin).reply(200, ack(&[("id", "uuid"), ("status", "string")])).problems(&["invalid_state"]);
    post "/v1/webhook-endpoints" => webhooks::create;
        doc("Subscribe an endpoint (its secret is shown once)", Admin).body::<webhooks::NewEndpoint>()
            .reply(201, ack(&[("id", "uuid"), ("secret", "string"), ("url", "string"), ("event_types", "array"), ("description", "string"), ("created_at", "time"), ("enabled", "boolean")]));
    delete "/v1/webhook-endpoints/{id}" => webhooks::delete;
        doc("Remove an endpoint and its deliveries", Admin).reply(204, Value::Null);
    post "/v1/webhook-endpoints/{id}/rotate-secret" => webhooks::rotate_secret;
        doc("Rotate the signing secret (the old one signs too for 24 hours)", Admin).reply(200, ack(&[("id", "uuid"), ("secret", "string"), ("previous_secret_expires_at", "time")]));
    post "/v1/webhook-endpoints/{id}/replay" => webhooks::replay;
        doc("Send again what the endpoint was sent from a position on", Admin).body::<webhooks::ReplayRequest>().reply(202, ack(&[("id", "uuid"), ("from_position", "integer"), ("queued", "integer")]));
}

/// The document `/openapi.json` serves.
pub fn document() -> infra::http::openapi::Document {
    infra::http::openapi::Document::new(
        "Tally command API",
        "Every write of Tally: commands appended to the event store. Errors are application/problem+json with a stable `code`.",
        &operations(),
    )
}
