//! Who may do what through Kennel's API service (`kenneld`).
//!
//! * [`role`]: the three roles and the [`Principal`] a request acts as:
//!   its role, its tenant and the VEs it may touch.
//! * [`token`]: the bearer tokens handed to clients, and how their secret
//!   is made.
//! * [`store`]: the token file below the state root; tokens are stored
//!   hashed (Argon2id), never as given.
//!
//! The CLI (`kennel api token ...`) and the service share this crate, so
//! a token the CLI makes is the token the service checks.

mod error;
pub mod role;
pub mod store;
pub mod token;

pub use error::ApiAccessError;
pub use role::{Principal, Role, Tenant};
pub use store::{NewToken, TokenRecord, TokenStore};
pub use token::{Token, TokenId};
