//! The Odoo domain type: parsed from JSON or from the Python-literal form users
//! copy out of Odoo, validated, and serialised back.
