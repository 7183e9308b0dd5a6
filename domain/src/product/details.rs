//! The catalog fields of a product, their revisions and their validation.

use serde::{Deserialize, Serialize};

use super::ProductError;
use crate::ids::{is_valid_amount, CategoryId};

/// The catalog fields of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetails {
    pub name: String,
    pub description: String,
    pub category_id: CategoryId,
    pub point_cost: i64,
    pub image_url: Option<String>,
    pub in_offer_pool: bool,
}

/// A revision: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProductChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<CategoryId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_cost: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_offer_pool: Option<bool>,
}

impl ProductChanges {
    pub fn is_empty(&self) -> bool {
        *self == ProductChanges::default()
    }
}

/// Applies a revision to catalog details (shared with the read side's fold).
pub fn apply_changes(d: &mut ProductDetails, c: &ProductChanges) {
    if let Some(v) = &c.name {
        d.name = v.clone();
    }
    if let Some(v) = &c.description {
        d.description = v.clone();
    }
    if let Some(v) = c.category_id {
        d.category_id = v;
    }
    if let Some(v) = c.point_cost {
        d.point_cost = v;
    }
    if let Some(v) = &c.image_url {
        d.image_url = Some(v.clone());
    }
    if let Some(v) = c.in_offer_pool {
        d.in_offer_pool = v;
    }
}

pub fn validate_details(d: &ProductDetails) -> Result<(), ProductError> {
    validate_name(&d.name)?;
    validate_description(&d.description)?;
    if !is_valid_amount(d.point_cost) {
        return Err(ProductError::Invalid("point_cost must be a positive whole number"));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), ProductError> {
    if !crate::is_valid_name(name) {
        return Err(ProductError::Invalid("name must be 1 to 200 characters"));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<(), ProductError> {
    if !crate::is_valid_description(description) {
        return Err(ProductError::Invalid("description must be at most 2000 characters"));
    }
    Ok(())
}

/// A revision: at least one field, each valid.
pub(super) fn validate_changes(changes: &ProductChanges) -> Result<(), ProductError> {
    if changes.is_empty() {
        return Err(ProductError::Invalid("a revision must change at least one field"));
    }
    if let Some(name) = &changes.name {
        validate_name(name)?;
    }
    if let Some(description) = &changes.description {
        validate_description(description)?;
    }
    if changes.point_cost.is_some_and(|c| !is_valid_amount(c)) {
        return Err(ProductError::Invalid("point_cost must be a positive whole number"));
    }
    Ok(())
}
