//! Client for Odoo's external API.
