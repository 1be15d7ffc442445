//! The DMPD agent engine.
