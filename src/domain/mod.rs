//! Small domain types that cannot hold a bad value: ids, numbers, phones, changes.
//! Each parses its input once at the edge; the rest of callproof trusts them.

mod change;
mod confirmation_number;
mod ids;
mod kind;
mod locale;
mod phone;

pub use change::{mask_value, ChangeItem, FieldError, Masking, SECRET_VALUE};
pub use confirmation_number::ConfirmationNumber;
pub use ids::ConfirmationId;
pub use kind::ChangeKind;
pub use locale::Locale;
pub use phone::PhoneNumber;
