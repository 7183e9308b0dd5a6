//! given / when / then for decisions: `given([events]).when(command).then([events])`.

use std::fmt::Debug;

use crate::Decide;

pub struct Given<A: Decide>(A);

pub fn given<A: Decide>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<A::Event> = events.into_iter().collect();
    Given(A::fold(&events))
}

pub struct Then<A: Decide>(Result<Vec<A::Event>, A::Error>);

impl<A: Decide> Given<A> {
    pub fn when(self, command: A::Command) -> Then<A> {
        Then(self.0.decide(command))
    }
}

impl<A: Decide> Then<A>
where
    A::Event: PartialEq + Debug,
    A::Error: PartialEq + Debug,
{
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        assert_eq!(self.0, Ok(expected.into_iter().collect()));
    }

    #[track_caller]
    pub fn then_err(self, expected: A::Error) {
        assert_eq!(self.0, Err(expected));
    }
}
