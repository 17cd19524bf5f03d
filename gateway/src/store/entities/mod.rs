//! sea-orm entities of the gateway's tables, in the classic
//! `DeriveEntityModel` style (`Model` + `Relation` + `ActiveModelBehavior`).
//! They mirror the `migrations` crate (which owns the DDL) and are private
//! to the store: the rest of the gateway only sees the record types in
//! `store/mod.rs`.
//!
//! A `Relation` is declared only where a query joins through it (a room
//! member's user): the foreign keys and their `ON DELETE` rules are the
//! migrations' (the database enforces them), and nothing loads related rows
//! through sea-orm, so more relations would only be an unchecked copy.

pub mod external_identity;
pub mod message;
pub mod room;
pub mod room_ban;
pub mod room_member;
pub mod user;
