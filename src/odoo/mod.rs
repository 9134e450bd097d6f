//! Client for Odoo's external API.

pub mod domain;
