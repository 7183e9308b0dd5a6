//! The command API's HTTP surface (the README's "Command API" table), one module per area.

use actix_web::web;

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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::scope("/v1")
                .route("/auth/register", web::post().to(auth::register))
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/me", web::patch().to(profile::change_profile))
                .route("/me", web::delete().to(profile::erase_me))
                .route("/users/{id}", web::delete().to(profile::erase_user))
                .route("/me/password", web::post().to(profile::change_password))
                .route("/users/{id}/roles", web::post().to(auth::grant_role))
                .route("/users/{id}/roles/{role}", web::delete().to(auth::revoke_role))
                .route("/categories", web::post().to(catalog::create_category))
                .route("/categories/{id}", web::patch().to(catalog::revise_category))
                .route("/products", web::post().to(catalog::create_product))
                .route("/products/{id}", web::patch().to(catalog::revise_product))
                .route("/products/{id}/delist", web::post().to(catalog::delist_product))
                .route("/products/{id}/relist", web::post().to(catalog::relist_product))
                .route("/products/{id}/stock", web::post().to(catalog::change_stock))
                .route("/offers", web::post().to(offers::create))
                .route("/offers/{id}/cancel", web::post().to(offers::cancel))
                .route("/credit-packages", web::post().to(packages::create_package))
                .route("/credit-packages/{id}", web::patch().to(packages::revise_package))
                .route("/credit-packages/{id}/retire", web::post().to(packages::retire_package))
                .route("/credit-purchases", web::post().to(purchases::start_purchase))
                .route("/payments/webhook", web::post().to(purchases::payment_webhook))
                .route("/redemptions", web::post().to(redemptions::place))
                .route("/redemptions/{id}/cancel", web::post().to(redemptions::cancel))
                .route("/redemptions/{id}/fulfil", web::post().to(redemptions::fulfil))
                .route("/accounts/{user_id}/adjustments", web::post().to(accounts::adjust))
                .route("/interactions", web::post().to(accounts::record_interaction))
                .service(
                    // 500 items with recommendation ids pass the shared 64 KiB limit.
                    web::resource("/interactions/batch")
                        .app_data(web::PayloadConfig::new(accounts::MAX_BATCH_BODY_BYTES))
                        .route(web::post().to(accounts::record_interactions)),
                )
                .route("/experiments", web::post().to(experiments::start))
                .route("/experiments/{id}/stop", web::post().to(experiments::stop))
                .route("/webhook-endpoints", web::post().to(webhooks::create))
                .route("/webhook-endpoints/{id}", web::delete().to(webhooks::delete))
                .route("/webhook-endpoints/{id}/rotate-secret", web::post().to(webhooks::rotate_secret))
                .route("/webhook-endpoints/{id}/replay", web::post().to(webhooks::replay)),
        );
}
