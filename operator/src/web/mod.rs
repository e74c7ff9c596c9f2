//! The status page: the report, what is failing and why, and what changed,
//! in a browser (docs/design.md "The status page").
//!
//! - [`model`]: the [`Snapshot`] of one report run the pages render from,
//!   published after each run and swapped in whole, and the changes;
//! - [`index`]: lookups and the failing objects grouped by root cause;
//! - [`query`]: the objects filter and pagination;
//! - [`html`] and [`pages`]: server-side rendered HTML, every value from the
//!   cluster escaped, inline CSS, a strict Content-Security-Policy;
//! - [`json`]: the same data under `/api/v1/`;
//! - [`server`]: `--web-addr`, read-only.
//!
//! `flux-reporter report --from FILE -o html` renders the same pages into
//! one file ([`pages::file`]).

pub mod fixture;
pub mod html;
pub mod index;
pub mod json;
pub mod model;
pub mod pages;
pub mod query;
pub mod server;

pub use model::{Change, InstanceView, Origin, Published, Snapshot};
