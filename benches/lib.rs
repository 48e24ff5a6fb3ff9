//! Criterion benches of hot paths live beside this file; see pick.rs.
