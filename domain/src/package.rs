//! Credit packages: what a customer can buy, for how much money, for how many points.
//! A retired package cannot be bought.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{is_valid_amount, PackageId};
use crate::{Aggregate, Decide, DomainEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageTerms {
    pub name: String,
    pub description: String,
    pub price: Decimal,
    pub currency: String,
    pub points: i64,
    pub points_valid_days: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PackageEvent {
    PackageCreated {
        package_id: PackageId,
        #[serde(flatten)]
        terms: PackageTerms,
    },
    /// Only the fields present change. Purchases already started keep the terms they
    /// started with (their `PurchaseStarted` carries them).
    PackageRevised {
        package_id: PackageId,
        #[serde(flatten)]
        changes: PackageChanges,
    },
    PackageRetired {
        package_id: PackageId,
    },
}

impl DomainEvent for PackageEvent {}

/// A revision of a package's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_valid_days: Option<u32>,
}

impl PackageChanges {
    pub fn is_empty(&self) -> bool {
        *self == PackageChanges::default()
    }

    /// `terms` with these changes.
    pub fn applied_to(&self, terms: &PackageTerms) -> PackageTerms {
        let mut t = terms.clone();
        if let Some(v) = &self.name {
            t.name = v.clone();
        }
        if let Some(v) = &self.description {
            t.description = v.clone();
        }
        if let Some(v) = self.price {
            t.price = v;
        }
        if let Some(v) = &self.currency {
            t.currency = v.clone();
        }
        if let Some(v) = self.points {
            t.points = v;
        }
        if let Some(v) = self.points_valid_days {
            t.points_valid_days = Some(v);
        }
        t
    }
}

#[derive(Debug, Clone, Default)]
pub struct Package {
    pub id: Option<PackageId>,
    pub terms: Option<PackageTerms>,
    pub retired: bool,
}

impl Aggregate for Package {
    type Event = PackageEvent;
    const STREAM: &'static str = "package";

    fn apply(&mut self, event: &PackageEvent) {
        match event {
            PackageEvent::PackageCreated { package_id, terms } => {
                self.id = Some(*package_id);
                self.terms = Some(terms.clone());
            }
            PackageEvent::PackageRevised { changes, .. } => {
                if let Some(t) = self.terms.as_mut() {
                    *t = changes.applied_to(t);
                }
            }
            PackageEvent::PackageRetired { .. } => self.retired = true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageCommand {
    Create { package_id: PackageId, terms: PackageTerms },
    Revise(PackageChanges),
    Retire,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("the package does not exist")]
    NotFound,
    #[error("the package already exists")]
    AlreadyExists,
    #[error("the package is retired")]
    Retired,
    #[error("{0}")]
    Invalid(&'static str),
}

/// How many decimals a currency's amounts have (ISO 4217's minor unit): 2 unless
/// listed here.
pub fn minor_units(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// Checks a package's terms: a name, a positive price in a 3-letter ISO currency code
/// with no more decimals than the currency has, positive points, and a positive
/// validity when one is given.
pub fn validate_terms(t: &PackageTerms) -> Result<(), PackageError> {
    if !crate::is_valid_name(&t.name) {
        return Err(PackageError::Invalid("name must be 1 to 200 characters"));
    }
    if !crate::is_valid_description(&t.description) {
        return Err(PackageError::Invalid("description must be at most 2000 characters"));
    }
    if t.currency.len() != 3 || !t.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(PackageError::Invalid("currency must be an ISO 4217 code such as EUR"));
    }
    if t.price <= Decimal::ZERO || t.price > Decimal::from(1_000_000_000) {
        return Err(PackageError::Invalid("price must be a positive amount"));
    }
    if t.price.scale() > minor_units(&t.currency) {
        return Err(PackageError::Invalid("price has more decimals than its currency"));
    }
    if !is_valid_amount(t.points) {
        return Err(PackageError::Invalid("points must be a positive whole number"));
    }
    if t.points_valid_days.is_some_and(|d| d == 0 || d > 36_500) {
        return Err(PackageError::Invalid("points_valid_days must be 1 to 36500"));
    }
    Ok(())
}

impl Package {
    /// The terms a customer may buy now.
    pub fn buyable(&self) -> Result<&PackageTerms, PackageError> {
        match (&self.terms, self.retired) {
            (None, _) => Err(PackageError::NotFound),
            (Some(_), true) => Err(PackageError::Retired),
            (Some(t), false) => Ok(t),
        }
    }
}

impl Decide for Package {
    type Command = PackageCommand;
    type Error = PackageError;

    fn decide(&self, command: PackageCommand) -> Result<Vec<PackageEvent>, PackageError> {
        match (self.id, command) {
            (None, PackageCommand::Create { package_id, terms }) => {
                validate_terms(&terms)?;
                Ok(vec![PackageEvent::PackageCreated { package_id, terms }])
            }
            (Some(_), PackageCommand::Create { .. }) => Err(PackageError::AlreadyExists),
            (None, _) => Err(PackageError::NotFound),
            (Some(_), _) if self.retired => Err(PackageError::Retired),
            (Some(package_id), PackageCommand::Revise(changes)) => {
                if changes.is_empty() {
                    return Err(PackageError::Invalid("a revision must change at least one field"));
                }
                if let Some(terms) = &self.terms {
                    validate_terms(&changes.applied_to(terms))?;
                }
                Ok(vec![PackageEvent::PackageRevised { package_id, changes }])
            }
            (Some(package_id), PackageCommand::Retire) => {
                Ok(vec![PackageEvent::PackageRetired { package_id }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::testing::given;

    fn terms(price: &str, currency: &str, points: i64) -> PackageTerms {
        PackageTerms {
            name: "Starter".into(),
            description: String::new(),
            price: price.parse().expect("decimal"),
            currency: currency.into(),
            points,
            points_valid_days: None,
        }
    }

    #[test]
    fn a_package_needs_a_positive_price_an_iso_currency_and_points() {
        let id = PackageId(Uuid::nil());
        for bad in [terms("0", "EUR", 10), terms("9.99", "euro", 10), terms("9.99", "EUR", 0)] {
            assert!(matches!(
                Package::default().decide(PackageCommand::Create { package_id: id, terms: bad }),
                Err(PackageError::Invalid(_))
            ));
        }
    }

    #[test]
    fn a_retired_package_cannot_be_bought_or_retired_again() {
        let id = PackageId(Uuid::nil());
        let events = [
            PackageEvent::PackageCreated { package_id: id, terms: terms("9.99", "EUR", 100) },
            PackageEvent::PackageRetired { package_id: id },
        ];
        assert_eq!(Package::fold(&events).buyable(), Err(PackageError::Retired));
        given::<Package>(events).when(PackageCommand::Retire).then_err(PackageError::Retired);
    }
}
