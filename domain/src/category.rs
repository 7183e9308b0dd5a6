//! Product categories: a name and a description.

use serde::{Deserialize, Serialize};

use crate::ids::CategoryId;
use crate::{Aggregate, Decide, DomainEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CategoryEvent {
    CategoryCreated {
        category_id: CategoryId,
        name: String,
        description: String,
    },
    CategoryRevised {
        category_id: CategoryId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

impl DomainEvent for CategoryEvent {}

#[derive(Debug, Clone, Default)]
pub struct Category {
    pub id: Option<CategoryId>,
    pub name: String,
}

impl Aggregate for Category {
    type Event = CategoryEvent;
    const STREAM: &'static str = "category";

    fn apply(&mut self, event: &CategoryEvent) {
        match event {
            CategoryEvent::CategoryCreated { category_id, name, .. } => {
                self.id = Some(*category_id);
                self.name = name.clone();
            }
            CategoryEvent::CategoryRevised { name: Some(name), .. } => self.name = name.clone(),
            CategoryEvent::CategoryRevised { .. } => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CategoryCommand {
    Create { category_id: CategoryId, name: String, description: String },
    Revise { name: Option<String>, description: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error("the category does not exist")]
    NotFound,
    #[error("the category already exists")]
    AlreadyExists,
    #[error("name must be 1 to 200 characters")]
    InvalidName,
    #[error("description must be at most 2000 characters")]
    InvalidDescription,
}

fn validate(name: Option<&str>, description: Option<&str>) -> Result<(), CategoryError> {
    if name.is_some_and(|n| !crate::is_valid_name(n)) {
        return Err(CategoryError::InvalidName);
    }
    if description.is_some_and(|d| !crate::is_valid_description(d)) {
        return Err(CategoryError::InvalidDescription);
    }
    Ok(())
}

impl Decide for Category {
    type Command = CategoryCommand;
    type Error = CategoryError;

    fn decide(&self, command: CategoryCommand) -> Result<Vec<CategoryEvent>, CategoryError> {
        match (self.id, command) {
            (None, CategoryCommand::Create { category_id, name, description }) => {
                validate(Some(&name), Some(&description))?;
                Ok(vec![CategoryEvent::CategoryCreated { category_id, name, description }])
            }
            (Some(_), CategoryCommand::Create { .. }) => Err(CategoryError::AlreadyExists),
            (None, _) => Err(CategoryError::NotFound),
            (Some(category_id), CategoryCommand::Revise { name, description }) => {
                validate(name.as_deref(), description.as_deref())?;
                Ok(vec![CategoryEvent::CategoryRevised { category_id, name, description }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::testing::given;

    #[test]
    fn a_category_needs_a_name() {
        given::<Category>([])
            .when(CategoryCommand::Create {
                category_id: CategoryId(Uuid::nil()),
                name: "  ".into(),
                description: String::new(),
            })
            .then_err(CategoryError::InvalidName);
    }
}
