//! Reconcilers, one per kind, sharing one context.
