//! The state a guard keeps in the bpffs: where it is pinned ([`layout`]), the lock that
//! serialises changes ([`lock`]), the one service per bpffs and namespace ([`service`]),
//! whether a guard is really attached ([`health`]), typed handles on the pinned maps
//! ([`maps`]), batch reads of the source map ([`batch`]), and whether pinned maps fit this
//! version ([`schema`]).

pub mod batch;
pub mod bpffs;
pub mod health;
pub mod layout;
pub mod lock;
pub mod maps;
pub mod private;
pub mod schema;
pub mod service;

pub use layout::Pins;
pub use lock::Lock;
pub use maps::Guard;
